package netlab

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

const (
	envNetns         = "OCELOT_TEST_NETNS"        // the namespace a re-run test binary is in
	envParentNetns   = "OCELOT_TEST_PARENT_NETNS" // the namespace it was started from
	envRequireKernel = "OCELOT_REQUIRE_KERNEL"    // "1": a kernel test that cannot run fails
)

// KernelRequired reports whether kernel and lab tests must run
// (OCELOT_REQUIRE_KERNEL set to anything but "" or "0", as in CI).
func KernelRequired() bool {
	v := os.Getenv(envRequireKernel)
	return v != "" && v != "0"
}

// Unavailable ends a test that cannot run here: it skips, or, when
// KernelRequired, fails with the reason.
func Unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if KernelRequired() {
		t.Fatalf("%s; %s is set, so this test must run", msg, envRequireKernel)
	}
	t.Skip(msg)
}

// Main runs the package's tests inside a new network namespace when the
// process is root and not in -short mode, removing the namespace (and with
// it every rule, set, link and route the tests made) afterwards. Call it
// from TestMain. When the namespace cannot be made, the tests run where
// they are and the kernel tests among them skip, or, when KernelRequired,
// the whole run fails.
func Main(m *testing.M) {
	flag.Parse()
	if os.Getenv(envNetns) != "" || os.Geteuid() != 0 || testing.Short() {
		os.Exit(m.Run())
	}
	code, err := reexecInNetns()
	if err != nil {
		if KernelRequired() {
			fmt.Fprintf(os.Stderr, "netlab: %v; %s is set, so the kernel tests must run: failing\n", err, envRequireKernel)
			os.Exit(1)
		}
		fmt.Fprintf(os.Stderr, "netlab: %v; running without kernel tests\n", err)
		os.Exit(m.Run())
	}
	os.Exit(code)
}

// InOwnNetns runs main inside a new network namespace of its own: the
// process re-executes itself there and the namespace, with everything in
// it, is deleted when it exits. For programs such as the demo.
func InOwnNetns(main func() int) int {
	if os.Getenv(envNetns) != "" {
		return main()
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "this needs root (network namespaces, iptables)")
		return 1
	}
	code, err := reexecInNetns()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return code
}

// reexecInNetns re-runs this executable with the same arguments inside a
// fresh namespace and returns its exit code.
func reexecInNetns() (int, error) {
	name := fmt.Sprintf("ocelot-t%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		return 0, fmt.Errorf("cannot create namespace %s: %v: %s", name, err, out)
	}
	defer cleanupPrefix(name + "-")
	defer exec.Command("ip", "netns", "del", name).Run()
	self, _ := os.Executable()
	cmd := exec.Command("ip", append([]string{"netns", "exec", name, self}, os.Args[1:]...)...)
	parent, _ := os.Readlink("/proc/self/ns/net")
	cmd.Env = append(os.Environ(), envNetns+"="+name, envParentNetns+"="+parent)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), nil
	}
	if err != nil {
		return 0, err
	}
	return 0, nil
}

// cleanupPrefix kills the processes of, and deletes, namespaces a crashed
// test left behind.
func cleanupPrefix(prefix string) {
	out, _ := exec.Command("ip", "netns", "list").Output()
	for _, line := range strings.Split(string(out), "\n") {
		name, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		if strings.HasPrefix(name, prefix) {
			killAll(name)
			exec.Command("ip", "netns", "del", name).Run()
		}
	}
}

// killAll kills every process running in a namespace.
func killAll(ns string) {
	out, _ := exec.Command("ip", "netns", "pids", ns).Output()
	for _, f := range strings.Fields(string(out)) {
		if pid, err := strconv.Atoi(f); err == nil && pid != os.Getpid() {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// Prefix is the name prefix for namespaces made by this test process.
func Prefix() string {
	if ns := os.Getenv(envNetns); ns != "" {
		return ns + "-"
	}
	return fmt.Sprintf("ocelot-t%d-", os.Getpid())
}

// inOwnNetns reports whether the process runs in the namespace Main made
// for it, not the one it was started from.
func inOwnNetns() bool {
	self, err := os.Readlink("/proc/self/ns/net")
	parent := os.Getenv(envParentNetns)
	return err == nil && parent != "" && self != parent
}

// Require ends a test that changes the kernel unless the process runs in
// a namespace of its own (see Main): a skip, or a failure when
// KernelRequired.
func Require(t testing.TB) {
	t.Helper()
	if testing.Short() {
		Unavailable(t, "kernel test skipped in -short mode")
	}
	if os.Geteuid() != 0 {
		Unavailable(t, "kernel test needs root")
	}
	if os.Getenv(envNetns) == "" || !inOwnNetns() {
		Unavailable(t, "kernel test needs its own network namespace (run through netlab.Main)")
	}
}

// RequireRoot ends a test that creates its own namespaces (and never
// touches the one it runs in) unless running as root: a skip, or a
// failure when KernelRequired.
func RequireRoot(t testing.TB) {
	t.Helper()
	if testing.Short() {
		Unavailable(t, "lab test skipped in -short mode")
	}
	if os.Geteuid() != 0 {
		Unavailable(t, "lab test needs root")
	}
}

// T is what the lab helpers need of a test; testing.TB has it, and so can
// a program such as the demo.
type T interface {
	Helper()
	Failed() bool
	Fatalf(format string, args ...any)
	Logf(format string, args ...any)
	Cleanup(func())
}

// Run runs a command and returns its combined output, failing the test on error.
func Run(t T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// Try runs a command and returns its output and error.
func Try(name string, args ...string) (string, error) {
	var b bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = &b, &b
	err := cmd.Run()
	return b.String(), err
}
