package netlab

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// The test binary doubles as the child whose outcome the tests check.
const envChild = "NETLAB_TEST_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(envChild) == "main" {
		Main(m) // exits
	}
	os.Exit(m.Run())
}

// child runs this test binary with extra environment and reports whether
// it failed, and its output.
func child(t *testing.T, run string, env ...string) (bool, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run="+run, "-test.v")
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		t.Fatalf("running the child: %v", err)
	}
	return err != nil, string(out)
}

// TestUnavailable: a test that cannot run skips, unless
// OCELOT_REQUIRE_KERNEL is set: then it fails, naming the reason.
func TestUnavailable(t *testing.T) {
	if os.Getenv(envChild) == "unavailable" {
		Unavailable(t, "no kernel here")
		return
	}
	for _, c := range []struct {
		value    string
		wantFail bool
	}{{"", false}, {"0", false}, {"1", true}} {
		failed, out := child(t, "^TestUnavailable$", envChild+"=unavailable", envRequireKernel+"="+c.value)
		if failed != c.wantFail || !strings.Contains(out, "no kernel here") {
			t.Errorf("%s=%q: failed %v, want %v\n%s", envRequireKernel, c.value, failed, c.wantFail, out)
		}
		if !c.wantFail && !strings.Contains(out, "--- SKIP") {
			t.Errorf("%s=%q: not skipped\n%s", envRequireKernel, c.value, out)
		}
	}
}

// TestMainCannotMakeNamespace: when Main cannot create the namespace (here:
// no ip command), the run goes on without kernel tests, unless
// OCELOT_REQUIRE_KERNEL is set: then it fails.
func TestMainCannotMakeNamespace(t *testing.T) {
	RequireRoot(t)
	for _, required := range []string{"", "1"} {
		failed, out := child(t, "^$", envChild+"=main", "PATH=/nonexistent", envNetns+"=", envRequireKernel+"="+required)
		if failed != (required == "1") {
			t.Errorf("%s=%q: failed %v\n%s", envRequireKernel, required, failed, out)
		}
	}
}
