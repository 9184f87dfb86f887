package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"ocelot/config"
	"ocelot/explain"
)

// Bounds of the explain socket.
const (
	maxExplainRequest = 4 << 10 // bytes of a request
	maxExplainAnswer  = 4 << 20 // bytes of an answer
	explainTimeout    = 10 * time.Second
	maxExplainClients = 4 // answered at once; more are told to wait
)

// explainer answers queries: the dataplane.
type explainer interface {
	Explain(ctx context.Context, q explain.Query) (explain.Answer, error)
}

// explainServer serves "ocelot explain" on a local unix socket, root
// only: the socket is created with mode 0600 in a directory that only
// its owner may write, and a peer must be root (or the agent's user).
type explainServer struct {
	path string
	dp   explainer
	log  *slog.Logger
	ln   net.Listener
	busy chan struct{}
}

// listenExplain creates the socket. The socket appears at path already
// with mode 0600: it is made in a private directory next to path and
// renamed into place, so no one can connect in between.
func listenExplain(path string, dp explainer, log *slog.Logger) (*explainServer, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("explain socket: %w", err)
	}
	if err := checkPrivateDir(dir); err != nil {
		return nil, fmt.Errorf("explain socket: %w", err)
	}
	if st, err := os.Lstat(path); err == nil {
		if st.Mode()&fs.ModeSocket == 0 {
			return nil, fmt.Errorf("explain socket: %s exists and is not a socket; not replacing it", path)
		}
		if err := os.Remove(path); err != nil { // a previous agent's
			return nil, fmt.Errorf("explain socket: %w", err)
		}
	}
	tmp, err := os.MkdirTemp(dir, ".ocelot-explain-")
	if err != nil {
		return nil, fmt.Errorf("explain socket: %w", err)
	}
	defer func() { _ = os.RemoveAll(tmp) }() // the socket was renamed out of it
	ln, err := net.Listen("unix", filepath.Join(tmp, "s"))
	if err != nil {
		return nil, fmt.Errorf("explain socket: %w", err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	if err := os.Chmod(filepath.Join(tmp, "s"), 0o600); err != nil {
		_ = ln.Close()
		return nil, fmt.Errorf("explain socket: %w", err)
	}
	if err := os.Rename(filepath.Join(tmp, "s"), path); err != nil {
		_ = ln.Close()
		return nil, fmt.Errorf("explain socket: %w", err)
	}
	return &explainServer{path: path, dp: dp, log: log, ln: ln, busy: make(chan struct{}, maxExplainClients)}, nil
}

// checkPrivateDir refuses a directory that is a symbolic link, is not
// ours, or that others may write: someone could put their own socket in
// our place.
func checkPrivateDir(dir string) error {
	st, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	switch {
	case !st.IsDir():
		return fmt.Errorf("%s is not a directory", dir)
	case !ok || int(sys.Uid) != os.Geteuid():
		return fmt.Errorf("%s is not owned by the agent's user", dir)
	case st.Mode().Perm()&0o022 != 0:
		return fmt.Errorf("%s may be written by others (mode %v)", dir, st.Mode().Perm())
	}
	return nil
}

// serve answers connections until ctx ends, then removes the socket.
func (s *explainServer) serve(ctx context.Context) {
	go func() {
		<-ctx.Done()
		_ = s.ln.Close()
		_ = os.Remove(s.path) // the next start replaces a socket left behind
	}()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			if ctx.Err() == nil {
				s.log.Error("explain socket stopped", "err", err)
			}
			return
		}
		select {
		case s.busy <- struct{}{}:
			go func() {
				defer func() { <-s.busy }()
				s.handle(ctx, c)
			}()
		default:
			if c.SetDeadline(time.Now().Add(time.Second)) == nil {
				writeAnswer(c, explain.Answer{Error: "the agent is answering other queries; try again"})
			}
			_ = c.Close()
		}
	}
}

// handle answers one query: one JSON request line in, one JSON answer
// out, both bounded.
func (s *explainServer) handle(ctx context.Context, c net.Conn) {
	defer func() { _ = c.Close() }()
	if err := c.SetDeadline(time.Now().Add(explainTimeout)); err != nil {
		return // without a deadline a client could hold a slot for ever
	}
	if err := peerAllowed(c); err != nil {
		s.log.Warn("explain socket: connection refused", "err", err)
		return
	}
	line, err := bufio.NewReader(io.LimitReader(c, maxExplainRequest+1)).ReadBytes('\n')
	if len(line) > maxExplainRequest {
		writeAnswer(c, explain.Answer{Error: fmt.Sprintf("the request is longer than %d bytes", maxExplainRequest)})
		return
	}
	if err != nil && !errors.Is(err, io.EOF) {
		return
	}
	var q explain.Query
	dec := json.NewDecoder(strings.NewReader(string(line)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&q); err != nil {
		writeAnswer(c, explain.Answer{Error: "the request is not a query: " + err.Error()})
		return
	}
	qctx, cancel := context.WithTimeout(ctx, explainTimeout/2)
	defer cancel()
	a, err := s.dp.Explain(qctx, q)
	if err != nil {
		a = explain.Answer{Error: "the dataplane did not answer in time: " + err.Error()}
	}
	writeAnswer(c, a)
}

func writeAnswer(w io.Writer, a explain.Answer) {
	b, err := json.Marshal(a)
	if err != nil || len(b) > maxExplainAnswer {
		b, _ = json.Marshal(explain.Answer{Error: fmt.Sprintf("the answer is larger than %d bytes", maxExplainAnswer)})
	}
	_, _ = w.Write(append(b, '\n')) // the client went away: nothing to do
}

// peerAllowed admits root and the agent's own user.
func peerAllowed(c net.Conn) error {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return errors.New("not a unix socket")
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return err
	}
	var cred *syscall.Ucred
	var credErr error
	if err := raw.Control(func(fd uintptr) {
		cred, credErr = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	}); err != nil {
		return err
	}
	if credErr != nil {
		return credErr
	}
	if cred.Uid != 0 && int(cred.Uid) != os.Geteuid() {
		return fmt.Errorf("peer uid %d is not root", cred.Uid)
	}
	return nil
}

// cmdExplain is "ocelot explain": it asks the running agent.
//
//	ocelot explain [flags] ENDPOINT               a local endpoint: interface, port ID, workload ID or address
//	ocelot explain [flags] SRC DST [PROTO[/PORT]]  a flow; PROTO tcp (default), udp, sctp, icmp or a number;
//	                                               for icmp, /TYPE
func cmdExplain(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("explain", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("c", DefaultConfigFile, "config file (for ExplainSocketPath)")
	fs.StringVar(cfgPath, "config-file", DefaultConfigFile, "config file (for ExplainSocketPath)")
	socket := fs.String("socket", "", "the agent's explain socket (default: ExplainSocketPath)")
	asJSON := fs.Bool("json", false, "print the answer as JSON")
	sport := fs.Uint("sport", 0, "the flow's source port")
	icmpCode := fs.Int("icmp-code", -1, "the flow's ICMP code")
	fs.Usage = func() {
		fmt.Fprint(stderr, `Usage:
  ocelot explain [flags] ENDPOINT               what applies to a local endpoint (interface, port ID, workload ID or address)
  ocelot explain [flags] SRC DST [PROTO[/PORT]]  what this host does with a flow: SRC and DST are addresses or local
                                                 endpoints; PROTO is tcp (default), udp, sctp, icmp or a number,
                                                 PORT the destination port (for icmp: the type)
Flags:
`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	var q explain.Query
	switch fs.NArg() {
	case 1:
		q.Endpoint = fs.Arg(0)
	case 2, 3:
		f := &explain.Flow{Src: fs.Arg(0), Dst: fs.Arg(1), SrcPort: uint16(*sport)}
		if *sport > 65535 {
			fmt.Fprintln(stderr, "ocelot explain: --sport must be a port")
			return 2
		}
		if fs.NArg() == 3 {
			proto, port, hasPort := strings.Cut(fs.Arg(2), "/")
			f.Protocol = proto
			if hasPort {
				n, err := strconv.ParseUint(port, 10, 16)
				if err != nil {
					fmt.Fprintf(stderr, "ocelot explain: %q is not a port\n", port)
					return 2
				}
				if p := strings.ToLower(proto); strings.HasPrefix(p, "icmp") {
					t := int(n)
					f.ICMPType = &t
				} else {
					f.DstPort = uint16(n)
				}
			}
			if *icmpCode >= 0 {
				f.ICMPCode = icmpCode
			}
		}
		q.Flow = f
	default:
		fs.Usage()
		return 2
	}
	path := *socket
	if path == "" {
		cfg, problems := config.ReadLocal(*cfgPath, os.Environ()).Resolve()
		if problems.Fatal() || cfg == nil {
			fmt.Fprintf(stderr, "ocelot explain: %s does not give a usable configuration; use --socket\n", *cfgPath)
			return 1
		}
		path = cfg.ExplainSocketPath
		if path == "" {
			fmt.Fprintln(stderr, "ocelot explain: ExplainSocketPath is none: the agent serves no explain socket")
			return 1
		}
	}
	a, err := askAgent(path, q)
	if err != nil {
		fmt.Fprintf(stderr, "ocelot explain: %v\n", err)
		return 1
	}
	if *asJSON {
		b, _ := json.MarshalIndent(a, "", "  ")
		fmt.Fprintln(stdout, string(b))
	} else {
		a.WriteText(stdout)
	}
	if a.Error != "" {
		return 1
	}
	return 0
}

// askAgent sends a query to the agent's socket and reads its answer.
func askAgent(path string, q explain.Query) (explain.Answer, error) {
	c, err := net.DialTimeout("unix", path, 2*time.Second)
	if err != nil {
		if errors.Is(err, fs.ErrPermission) {
			return explain.Answer{}, fmt.Errorf("%v (the socket is root's: run as root)", err)
		}
		return explain.Answer{}, fmt.Errorf("%v (is the agent running with ExplainSocketPath = %s?)", err, path)
	}
	defer func() { _ = c.Close() }()
	if err := c.SetDeadline(time.Now().Add(explainTimeout + 2*time.Second)); err != nil {
		return explain.Answer{}, err
	}
	b, _ := json.Marshal(q)
	if _, err := c.Write(append(b, '\n')); err != nil {
		return explain.Answer{}, err
	}
	var a explain.Answer
	if err := json.NewDecoder(io.LimitReader(c, maxExplainAnswer+1)).Decode(&a); err != nil {
		return explain.Answer{}, fmt.Errorf("reading the answer: %w", err)
	}
	return a, nil
}
