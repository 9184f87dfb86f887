package main

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"ocelot/datastore"
)

type fakeStatus datastore.Status

func (f fakeStatus) Status() datastore.Status { return datastore.Status(f) }

// TestDatastoreHealth: an unreachable etcd makes the agent unready, with
// a detail that says so, and never unlive.
func TestDatastoreHealth(t *testing.T) {
	h := newHealth()
	h.register(datastoreReporter, 0)
	srv := httptest.NewServer(h.handler())
	defer srv.Close()
	get := func(path string) (int, string) {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	reportDatastore(h, fakeStatus{Connected: true, Since: time.Now()})
	if code, body := get("/readiness"); code != http.StatusOK {
		t.Fatalf("connected: readiness %d\n%s", code, body)
	}
	reportDatastore(h, fakeStatus{Connected: false, Since: time.Now().Add(-42 * time.Second),
		Err: errors.New("probing etcd: context deadline exceeded\n(second line)")})
	code, body := get("/readiness")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "etcd unreachable for 42s: probing etcd: context deadline exceeded (second line)") {
		t.Errorf("disconnected: readiness %d\n%s", code, body)
	}
	if code, body := get("/liveness"); code != http.StatusOK {
		t.Errorf("disconnected: liveness %d\n%s", code, body)
	}
}
