package dataplane

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"ocelot/contract"
	"ocelot/dataplane/ifacemon"
)

func statusDirFiles(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

// Felix's status files: one per endpoint that is up, named and filled as
// Felix does; removed when it goes down or away; files of a previous run
// that no endpoint wants are removed at the first apply, other files kept.
func TestEndpointStatusFiles(t *testing.T) {
	prefix := t.TempDir()
	dir := filepath.Join(prefix, "endpoint-status")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	stale := statusFileName(epID("gone"))
	for _, name := range []string{stale, "README", ".ocelot-123"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("{}"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	h := newHarnessWith(t, func(c *Config) { c.EndpointStatusPrefix = prefix })
	h.plug("tap1")
	a, b := epID("a"), epID("b")
	h.send(policy("p"), endpoint(a, "tap1", "198.18.0.1", "p"), endpoint(b, "tap2", "198.18.0.2", "p"), contract.InSync{})
	h.apply()
	name := "openstack ns%2Fa port-a"
	if statusFileName(a) != name {
		t.Errorf("file name %q, want Felix's %q", statusFileName(a), name)
	}
	if got := statusDirFiles(t, dir); !slices.Equal(got, []string{"README", name}) {
		t.Errorf("files %q, want a's (up) and the foreign README; not b's (down), the stale one or the temporary", got)
	}
	raw, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	var st map[string]any
	if err := json.Unmarshal(raw, &st); err != nil || st["ifaceName"] != "tap1" || st["mac"] != "fa:16:3e:00:00:01" ||
		len(st["ipv4Nets"].([]any)) != 1 || st["ipv4Nets"].([]any)[0] != "198.18.0.1/32" {
		t.Errorf("content %s (%v)", raw, err)
	}

	// Its address changes: the file follows.
	h.send(endpoint(a, "tap1", "198.18.0.11", "p"))
	h.apply()
	if raw, _ := os.ReadFile(filepath.Join(dir, name)); !json.Valid(raw) || !strings.Contains(string(raw), "198.18.0.11/32") {
		t.Errorf("after the address changed: %s", raw)
	}
	// Down, then away.
	h.k.SetLink("tap1", true, false)
	h.d.onIfaces(ifacemon.Event{States: []ifacemon.State{{Name: "tap1", Index: 11, Up: true, Running: false}}})
	h.apply()
	if got := statusDirFiles(t, dir); !slices.Equal(got, []string{"README"}) {
		t.Errorf("files %q after tap1 went down", got)
	}
	h.plug("tap1")
	h.apply()
	h.send(contract.EndpointRemove{ID: a})
	h.apply()
	if got := statusDirFiles(t, dir); !slices.Equal(got, []string{"README"}) {
		t.Errorf("files %q after a went", got)
	}
}
