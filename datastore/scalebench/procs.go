package scalebench

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// childEnv carries a child's role and settings, as JSON, to the test binary
// re-executed as an etcd member or a grpc-proxy.
const childEnv = "OCELOT_SCALEBENCH_CHILD"

// childSpec is what a child process runs.
type childSpec struct {
	Role string // "member" or "proxy"
	Name string
	Dir  string // data directory (member) and log file location

	// member
	ClientURL, PeerURL string
	InitialCluster     string // name=peerURL,...

	// proxy
	Listen, MetricsListen string   // host:port
	Members               []string // client URLs of the members
}

// RunChildIfAsked turns the process into an etcd member or a grpc-proxy when
// the benchmark started it as one, and then never returns. Call it first in
// TestMain. The child runs until its standard input closes (the parent
// ending closes it too) and reports readiness as one line on standard output.
func RunChildIfAsked() {
	raw := os.Getenv(childEnv)
	if raw == "" {
		return
	}
	var spec childSpec
	if err := json.Unmarshal([]byte(raw), &spec); err != nil {
		fmt.Println("error: bad", childEnv, err)
		os.Exit(2)
	}
	var stop func()
	var err error
	switch spec.Role {
	case "member":
		stop, err = runMember(spec)
	case "proxy":
		stop, err = runProxy(spec)
	default:
		err = fmt.Errorf("unknown role %q", spec.Role)
	}
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	fmt.Println("ready")
	io.Copy(io.Discard, os.Stdin) // until the parent closes it
	stop()
	os.Exit(0)
}

// child is a running member or proxy process.
type child struct {
	spec  childSpec
	cmd   *exec.Cmd
	stdin io.WriteCloser
	done  chan struct{}
	lines chan string // what the child prints: "ready" or an error
}

// startChild starts the test binary as spec.Role. It does not wait for
// readiness (members of a new cluster must start together); call ready.
func startChild(spec childSpec) (*child, error) {
	raw, _ := json.Marshal(spec)
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), childEnv+"="+string(raw))
	// A child never outlives the benchmark, even when the benchmark is killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	log, err := os.Create(spec.Dir + "/" + spec.Name + ".stderr")
	if err != nil {
		return nil, err
	}
	cmd.Stderr = log
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", spec.Name, err)
	}
	c := &child{spec: spec, cmd: cmd, stdin: stdin, done: make(chan struct{}), lines: make(chan string, 1)}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			select {
			case c.lines <- sc.Text():
			default:
			}
		}
		cmd.Wait() // after the last read, as exec requires
		log.Close()
		close(c.done)
	}()
	return c, nil
}

// ready waits until the child says it serves.
func (c *child) ready(timeout time.Duration) error {
	select {
	case line := <-c.lines:
		if line != "ready" {
			return fmt.Errorf("%s: %s (log: %s)", c.spec.Name, line, c.logTail())
		}
		return nil
	case <-c.done:
		return fmt.Errorf("%s exited before it was ready (log: %s)", c.spec.Name, c.logTail())
	case <-time.After(timeout):
		return fmt.Errorf("%s not ready after %v (log: %s)", c.spec.Name, timeout, c.logTail())
	}
}

func (c *child) logTail() string {
	b, _ := os.ReadFile(c.spec.Dir + "/" + c.spec.Name + ".stderr")
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return strings.TrimSpace(string(b))
}

func (c *child) pid() int { return c.cmd.Process.Pid }

// stop asks the child to end and kills it if it has not after 10 s.
func (c *child) stop() {
	c.stdin.Close()
	select {
	case <-c.done:
	case <-time.After(10 * time.Second):
		c.cmd.Process.Kill()
		<-c.done
	}
}

// kill ends the child at once, as a crash or a power cut would.
func (c *child) kill() {
	c.cmd.Process.Kill()
	<-c.done
}

// procStat is a process's CPU time (user and system) and resident memory.
type procStat struct {
	CPU    time.Duration
	RSSKiB int
}

// readProc reads /proc/<pid>/stat and /proc/<pid>/status.
func readProc(pid int) (procStat, error) {
	var st procStat
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return st, err
	}
	// Fields after "(comm) ": state is 0, utime 11, stime 12 (clock ticks).
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return st, errors.New("unexpected /proc stat format")
	}
	f := strings.Fields(string(b)[i+2:])
	if len(f) < 13 {
		return st, errors.New("short /proc stat")
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	st.CPU = time.Duration(ut+stime) * time.Second / clockTicks
	b, err = os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return st, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			if f := strings.Fields(rest); len(f) > 0 {
				st.RSSKiB, _ = strconv.Atoi(f[0])
			}
		}
	}
	return st, nil
}

// hostBusy reads the machine's busy CPU time since boot from /proc/stat
// (everything but idle and iowait, all CPUs together).
func hostBusy() (time.Duration, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 6 || f[0] != "cpu" {
		return 0, errors.New("unexpected /proc/stat format")
	}
	var busy int64
	for i, v := range f[1:] {
		n, _ := strconv.ParseInt(v, 10, 64)
		if i != 3 && i != 4 && i < 8 { // not idle, iowait; guest time is already in user
			busy += n
		}
	}
	return time.Duration(busy) * time.Second / clockTicks, nil
}

// clockTicks is USER_HZ, which is 100 on every Linux architecture Go supports.
const clockTicks = 100
