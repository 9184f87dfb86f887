package main

import (
	"context"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"ocelot/explain"
)

// fakeExplainer answers from a fixed answer and records the queries.
type fakeExplainer struct {
	mu   sync.Mutex
	got  []explain.Query
	slow time.Duration
}

func (f *fakeExplainer) Explain(ctx context.Context, q explain.Query) (explain.Answer, error) {
	f.mu.Lock()
	f.got = append(f.got, q)
	f.mu.Unlock()
	select {
	case <-time.After(f.slow):
	case <-ctx.Done():
		return explain.Answer{}, ctx.Err()
	}
	if q.Flow != nil {
		return explain.Answer{InSync: true, Flow: &explain.FlowVerdict{Src: q.Flow.Src, Dst: q.Flow.Dst, Protocol: q.Flow.Protocol,
			DstPort: q.Flow.DstPort, Verdict: "denied"}}, nil
	}
	return explain.Answer{InSync: true, Endpoint: &explain.EndpointInfo{ID: "openstack/ns/vm/port", Interface: q.Endpoint}}, nil
}

func startExplain(t *testing.T, dp explainer) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "run")
	path := filepath.Join(dir, "ocelot.sock")
	srv, err := listenExplain(path, dp, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { srv.serve(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return path
}

func TestExplainSocket(t *testing.T) {
	fe := &fakeExplainer{}
	path := startExplain(t, fe)
	st, err := os.Lstat(path)
	if err != nil || st.Mode().Perm() != 0o600 || st.Mode()&os.ModeSocket == 0 {
		t.Fatalf("socket %v mode %v, want a socket with mode 0600", err, st.Mode())
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("the socket's directory holds %d entries; the private directory it was made in is left", len(entries))
	}

	code, out, errOut := run(t, "explain", "--socket", path, "tapweb")
	if code != 0 || !strings.Contains(out, "interface  tapweb") {
		t.Errorf("endpoint: code %d\n%s%s", code, out, errOut)
	}
	code, out, _ = run(t, "explain", "--socket", path, "--json", "198.18.12.5", "tapweb", "udp/53")
	if code != 0 || !strings.Contains(out, `"verdict": "denied"`) {
		t.Errorf("flow: code %d\n%s", code, out)
	}
	fe.mu.Lock()
	last := fe.got[len(fe.got)-1]
	fe.mu.Unlock()
	if last.Flow == nil || last.Flow.Protocol != "udp" || last.Flow.DstPort != 53 || last.Flow.Dst != "tapweb" {
		t.Errorf("query sent: %+v", last.Flow)
	}
	code, _, _ = run(t, "explain", "--socket", path, "198.18.12.5", "tapweb", "icmp/8")
	fe.mu.Lock()
	last = fe.got[len(fe.got)-1]
	fe.mu.Unlock()
	if code != 0 || last.Flow.ICMPType == nil || *last.Flow.ICMPType != 8 || last.Flow.DstPort != 0 {
		t.Errorf("icmp/8 sent as %+v", last.Flow)
	}

	// Requests are bounded; what is not a query is refused.
	raw := func(req string) string {
		c, err := net.Dial("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		c.Write([]byte(req))
		b := make([]byte, 4096)
		n, _ := c.Read(b)
		return string(b[:n])
	}
	if got := raw(strings.Repeat("x", maxExplainRequest+10) + "\n"); !strings.Contains(got, "longer than") {
		t.Errorf("an oversized request: %q", got)
	}
	if got := raw(`{"endpoint":"tapweb","extra":1}` + "\n"); !strings.Contains(got, "not a query") {
		t.Errorf("an unknown field: %q", got)
	}
	if code, _, errOut := run(t, "explain", "--socket", filepath.Join(t.TempDir(), "none.sock"), "tapweb"); code != 1 || !strings.Contains(errOut, "is the agent running") {
		t.Errorf("no agent: code %d %q", code, errOut)
	}
}

// A dataplane that does not answer in time gives an error answer, and
// the server stays up.
func TestExplainSocketTimeout(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for the timeout")
	}
	path := startExplain(t, &fakeExplainer{slow: time.Minute})
	code, out, _ := run(t, "explain", "--socket", path, "tapweb")
	if code != 1 || !strings.Contains(out, "did not answer in time") {
		t.Errorf("slow dataplane: code %d %q", code, out)
	}
}

func TestExplainSocketRefusesUnsafePlaces(t *testing.T) {
	open := filepath.Join(t.TempDir(), "open")
	os.Mkdir(open, 0o777)
	os.Chmod(open, 0o777)
	if _, err := listenExplain(filepath.Join(open, "s.sock"), &fakeExplainer{}, slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), "written by others") {
		t.Errorf("a world-writable directory: %v", err)
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "not-a-socket")
	os.WriteFile(file, []byte("keep me"), 0o600)
	if _, err := listenExplain(file, &fakeExplainer{}, slog.New(slog.DiscardHandler)); err == nil {
		t.Error("a regular file was replaced by the socket")
	}
	if b, _ := os.ReadFile(file); string(b) != "keep me" {
		t.Error("the file was changed")
	}
	link := filepath.Join(t.TempDir(), "link")
	os.Symlink(dir, link)
	if _, err := listenExplain(filepath.Join(link, "s.sock"), &fakeExplainer{}, slog.New(slog.DiscardHandler)); err == nil {
		t.Error("a directory reached through a symbolic link was accepted")
	}
}
