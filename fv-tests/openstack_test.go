package fvtests

import (
	"crypto/sha512"
	"encoding/hex"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"ocelot/fv-tests/lab"
	"ocelot/internal/netlab"
)

// clientNet is where the labs' clients live (outside the cloud).
const clientNet = "198.18.0.0/24"

// allowClients is a security-group rule letting the clients in.
var allowClients = lab.SGRule{"action": "Allow", "ipVersion": 4, "source": map[string]any{"nets": []string{clientNet}}}

// pingStream pings an address from ns every 100 ms until stopped and
// remembers when replies came.
type pingStream struct {
	mu      sync.Mutex
	replies []time.Time
	sent    int
	stop    chan struct{}
	done    chan struct{}
}

func startPings(ns *netlab.NS, ip string) *pingStream {
	p := &pingStream{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		for {
			ok := netlab.Pings(ns, ip, 300*time.Millisecond)
			p.mu.Lock()
			p.sent++
			if ok {
				p.replies = append(p.replies, time.Now())
			}
			p.mu.Unlock()
			select {
			case <-p.stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	return p
}

// end stops the stream and returns the replies, the pings sent, and the
// longest time without a reply between the first and last reply.
func (p *pingStream) end() (replies, sent int, gap time.Duration) {
	close(p.stop)
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := 1; i < len(p.replies); i++ {
		gap = max(gap, p.replies[i].Sub(p.replies[i-1]))
	}
	return len(p.replies), p.sent, gap
}

// repliesSince counts the replies after t.
func (p *pingStream) repliesSince(t time.Time) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, r := range p.replies {
		if r.After(t) {
			n++
		}
	}
	return n
}

// TestLiveMigration moves a VM from host A to host B as Nova and the
// Neutron driver do, with a TCP connection and a ping stream from a
// client outside the cloud running throughout. The lab's core stands in
// for BGP: it routes the VM's address to the host whose route to it has
// the lowest metric.
//
//   - Before the VM announces itself, B holds the VM's route back
//     (checked against A's route and the traffic still going to A) while
//     reporting its port up (Nova waits for that).
//   - The VM's gratuitous ARP gives B the route at the elevated priority
//     (the control: B does route it now), and the traffic follows.
//   - When the driver ends the migration, B keeps the elevated priority
//     for the convergence time, then returns to normal.
//   - The connection never breaks and the pings resume.
func TestLiveMigration(t *testing.T) {
	const convergence = 3 * time.Second
	l := newLab(t)
	a := l.AddHost("r1-compute1", "RegionOne", fmt.Sprintf("LiveMigrationRouteConvergenceTime = %d", int(convergence.Seconds())))
	b := l.AddHost("r1-compute2", "RegionOne", fmt.Sprintf("LiveMigrationRouteConvergenceTime = %d", int(convergence.Seconds())))
	client := l.AddClient("cli", "198.18.0.50")
	vm := a.AddVM("vm", 5)
	vm.Serve(80)
	l.PutSG("RegionOne", sgWeb, allowClients)
	vm.Plug(map[string]string{sgWeb: "web"})
	chosen := l.FollowRoutes(vm.IP, a, b)
	ready(t, a, b)
	netlab.Eventually(t, "the VM reachable through A", wait, func() bool { return chosen() == a && netlab.Pings(client, vm.IP, time.Second) })
	conn, err := netlab.Dial(client, net.JoinHostPort(vm.IP, "80"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer abort(conn)
	if !netlab.Echoes(conn, 5*time.Second) {
		t.Fatal("no echo on the long-lived connection")
	}
	pings := startPings(client, vm.IP)

	// Nova plugs the port on B; the driver writes the LiveMigration, then
	// B's endpoint.
	target := vm.PrepareMigration(b)
	l.Put(target.LiveMigrationKey(), lab.LiveMigrationJSON(vm, target))
	target.Plug(vm.SGs)
	netlab.Eventually(t, "B reports the target port up", wait, func() bool {
		v, _ := l.Get(target.StatusKey())
		return strings.Contains(v, `"up"`)
	})
	// B's port is programmed and up, and still B does not route the VM's
	// address, for as long as the VM has not moved: A does.
	for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if dev, m, ok := b.Route(vm.IP); ok {
			t.Fatalf("B routes the VM before it moved: dev %s metric %d", dev, m)
		}
	}
	if dev, m, ok := a.Route(vm.IP); !ok || dev != vm.HostSide || m != 1024 || chosen() != a {
		t.Fatalf("A's route %s %d %v; core chose %v", dev, m, ok, chosen())
	}
	if !netlab.Echoes(conn, 5*time.Second) || pings.repliesSince(time.Now().Add(-time.Second)) == 0 {
		t.Fatal("traffic to the VM on A broke before the migration")
	}

	// The VM resumes on B and announces itself.
	cutover := time.Now()
	vm.Cutover(target)
	netlab.Eventually(t, "B routes the VM at the elevated priority", 5*time.Second, func() bool {
		dev, m, ok := b.Route(vm.IP)
		return ok && dev != "" && m == 512
	})
	t.Logf("GARP to elevated route on B: %v", time.Since(cutover).Round(time.Millisecond))
	netlab.Eventually(t, "the core routes the VM to B", 5*time.Second, func() bool { return chosen() == b })
	if !netlab.Echoes(conn, 20*time.Second) {
		t.Fatal("the long-lived connection broke in the migration")
	}
	netlab.Eventually(t, "pings answered from B", 10*time.Second, func() bool { return pings.repliesSince(time.Now().Add(-time.Second)) > 0 })

	// The driver ends the migration: the source endpoint and the
	// LiveMigration go. B keeps the elevated priority for the
	// convergence time, then normal.
	vm.Unplug()
	l.Delete(target.LiveMigrationKey())
	ended := time.Now()
	netlab.Eventually(t, "B's route back at the normal priority", convergence+10*time.Second, func() bool {
		_, m, ok := b.Route(vm.IP)
		return ok && m == 1024
	})
	held := time.Since(ended)
	if held < convergence-500*time.Millisecond {
		t.Errorf("the elevated priority ended %v after the migration; want the convergence time, %v", held, convergence)
	}
	if _, _, ok := a.Route(vm.IP); ok {
		t.Error("A still routes the VM")
	}
	if !netlab.Echoes(conn, 5*time.Second) {
		t.Error("the long-lived connection broke after the migration")
	}
	replies, sent, gap := pings.end()
	t.Logf("elevated priority held %v after the migration (convergence time %v); pings: %d of %d answered, longest gap %v",
		held.Round(time.Millisecond), convergence, replies, sent, gap.Round(time.Millisecond))
	if gap > 5*time.Second {
		t.Errorf("the ping stream stopped for %v", gap)
	}
}

// sink counts the bytes it receives on every connection to it.
type sink struct {
	n     atomic.Int64
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
}

// startSink listens until the test ends, then aborts what is left (a
// sender's reset can be dropped as out of window, leaving a socket that
// would hold the namespace).
func startSink(t *testing.T, ns *netlab.NS, addr string) *sink {
	s := &sink{}
	if err := ns.Do(func() (err error) { s.ln, err = net.Listen("tcp", addr); return }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.ln.Close()
		s.mu.Lock()
		defer s.mu.Unlock()
		closeAll(s.conns)
	})
	go func() {
		for {
			c, err := s.ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns = append(s.conns, c)
			s.mu.Unlock()
			go func() {
				defer c.Close()
				buf := make([]byte, 64<<10)
				for {
					n, err := c.Read(buf)
					s.n.Add(int64(n))
					if err != nil {
						return
					}
				}
			}()
		}
	}()
	return s
}

// throughput sends as much as it can from ns to a sink at addr for the
// span of a measuring window (after a settling time: slow start and the
// bucket's burst) and returns the payload rate the sink saw in it, in
// bits per second.
func throughput(t *testing.T, ns *netlab.NS, s *sink, addr string, settle, window time.Duration) float64 {
	t.Helper()
	c, err := netlab.Dial(ns, addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	defer abort(c) // what is still queued must not load the next measurement
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 64<<10)
		c.SetWriteDeadline(time.Now().Add(settle + window + 200*time.Millisecond))
		for {
			if _, err := c.Write(buf); err != nil {
				return
			}
		}
	}()
	time.Sleep(settle)
	n0, t0 := s.n.Load(), time.Now()
	time.Sleep(window)
	n1, t1 := s.n.Load(), time.Now()
	<-done
	return float64(n1-n0) * 8 / t1.Sub(t0).Seconds()
}

// udpBurst sends n datagrams from ns to a fresh receiver in dst as fast
// as it can and returns how many arrived within a second.
func udpBurst(t *testing.T, from, to *netlab.NS, ip string, port, n int) int {
	t.Helper()
	var pc net.PacketConn
	if err := to.Do(func() (err error) { pc, err = net.ListenPacket("udp4", net.JoinHostPort(ip, fmt.Sprint(port))); return }); err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	var c net.Conn
	if err := from.Do(func() (err error) { c, err = net.Dial("udp4", net.JoinHostPort(ip, fmt.Sprint(port))); return }); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := 0; i < n; i++ {
		c.Write([]byte("ocelot"))
	}
	got := 0
	buf := make([]byte, 64)
	for pc.SetReadDeadline(time.Now().Add(time.Second)); ; got++ {
		if _, _, err := pc.ReadFrom(buf); err != nil {
			return got
		}
	}
}

// connections opens up to n echo connections from ns to addr and returns
// those that echoed; the caller closes them.
func connections(ns *netlab.NS, addr string, n int) []net.Conn {
	var out []net.Conn
	for i := 0; i < n; i++ {
		c, err := netlab.Dial(ns, addr, time.Second)
		if err != nil {
			break
		}
		if !netlab.Echoes(c, time.Second) {
			c.Close()
			break
		}
		out = append(out, c)
	}
	return out
}

// abort closes a connection with a reset: it ends at once (its conntrack
// entry too), and nothing queued is sent after it. A graceful close to
// the lab's echo servers, which never close their side, would leave the
// socket waiting for a minute, and with it the client's namespace and
// the link a later test's client of the same name needs.
func abort(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	c.Close()
}

func closeAll(cs []net.Conn) {
	for _, c := range cs {
		abort(c)
	}
}

// TestQoSControls: a VM's QoS controls, as the Neutron driver writes them,
// measured with real traffic between the VM and a client outside the
// cloud. Each limit is paired with its control: the same measurement
// without the controls, before they are set and after they go.
//
//   - bandwidth: a bulk TCP transfer each way runs within 15 % of the
//     configured rate (the payload, so a little under it: headers count
//     against the bucket); without the limits, many times faster;
//   - packet rate: of a burst of UDP datagrams each way, about the
//     bucket's burst arrives; without the limit, all;
//   - connections: the VM takes its maximum and refuses the next; one
//     closed makes room; without the limit, more connect;
//   - when the controls go, so do the token buckets, the IFB device and
//     the rules.
func TestQoSControls(t *testing.T) {
	const toVM, fromVM = 20_000_000, 10_000_000 // bit/s
	l := newLab(t)
	h := l.AddHost("r1-compute1", "RegionOne")
	client := l.AddClient("qcli", "198.18.0.60")
	vm := h.AddVM("vm", 7)
	vm.Serve(80)
	l.PutSG("RegionOne", sgWeb, allowClients)
	vm.Plug(map[string]string{sgWeb: "web"})
	ready(t, h)
	netlab.Eventually(t, "the VM reachable", wait, func() bool {
		cs := connections(client, vm.IP+":80", 1) // closed with a reset: see abort
		closeAll(cs)
		return len(cs) == 1
	})
	vmSink, clientSink := startSink(t, vm.NS, vm.IP+":5001"), startSink(t, client, "198.18.0.60:5001")
	unlimited := func(when string) {
		t.Helper()
		in := throughput(t, client, vmSink, vm.IP+":5001", 200*time.Millisecond, 600*time.Millisecond)
		out := throughput(t, vm.NS, clientSink, "198.18.0.60:5001", 200*time.Millisecond, 600*time.Millisecond)
		t.Logf("%s: %.0f Mbit/s to the VM, %.0f Mbit/s from it", when, in/1e6, out/1e6)
		if in < 5*toVM || out < 5*fromVM {
			t.Errorf("%s: %.1f Mbit/s to the VM, %.1f from it; want far above the limits", when, in/1e6, out/1e6)
		}
		if got := udpBurst(t, client, vm.NS, vm.IP, 9000, 100); got != 100 {
			t.Errorf("%s: %d of 100 datagrams arrived", when, got)
		}
		cs := connections(client, vm.IP+":80", 6)
		closeAll(cs)
		if len(cs) != 6 {
			t.Errorf("%s: %d of 6 connections", when, len(cs))
		}
	}
	unlimited("before the controls")

	// Bandwidth, both ways.
	vm.QoS = map[string]any{"ingressBandwidth": toVM, "ingressBurst": 400_000, "egressBandwidth": fromVM, "egressBurst": 400_000}
	vm.Plug(vm.SGs)
	ifb := ifbName(vm.HostSide)
	netlab.Eventually(t, "token buckets on the tap and "+ifb, wait, func() bool {
		tap, _ := h.Exec("tc", "qdisc", "show", "dev", vm.HostSide)
		dev, _ := h.Exec("tc", "qdisc", "show", "dev", ifb)
		return strings.Contains(tap, "tbf 1: root") && strings.Contains(dev, "tbf 1: root")
	})
	for _, c := range []struct {
		what string
		from *netlab.NS
		s    *sink
		addr string
		want float64
	}{{"to the VM", client, vmSink, vm.IP + ":5001", toVM}, {"from the VM", vm.NS, clientSink, "198.18.0.60:5001", fromVM}} {
		got := throughput(t, c.from, c.s, c.addr, 500*time.Millisecond, 2*time.Second)
		t.Logf("bandwidth %s: %.2f Mbit/s measured, %.0f Mbit/s configured (%+.1f %%)", c.what, got/1e6, c.want/1e6, (got/c.want-1)*100)
		if got < 0.85*c.want || got > 1.15*c.want {
			t.Errorf("bandwidth %s: %.2f Mbit/s, want %.0f ±15 %%", c.what, got/1e6, c.want/1e6)
		}
	}

	// Packet rate, both ways (no bandwidth limits).
	vm.QoS = map[string]any{"ingressPacketRate": 10, "ingressPacketBurst": 5, "egressPacketRate": 10, "egressPacketBurst": 5}
	vm.Plug(vm.SGs)
	netlab.Eventually(t, "packet-rate limits in the rules, the buckets gone", wait, func() bool {
		save := rulesOf(t, h)
		tap, _ := h.Exec("tc", "qdisc", "show", "dev", vm.HostSide)
		return strings.Count(save, pick(h, "--limit 10/sec", "limit rate 10/second")) == 2 && !strings.Contains(tap, "tbf")
	})
	for _, c := range []struct {
		what     string
		from, to *netlab.NS
		ip       string
	}{{"to the VM", client, vm.NS, vm.IP}, {"from the VM", vm.NS, client, "198.18.0.60"}} {
		got := udpBurst(t, c.from, c.to, c.ip, 9000, 100)
		t.Logf("packet rate %s: %d of a burst of 100 datagrams arrived (rate 10/s, burst 5)", c.what, got)
		if got < 3 || got > 12 {
			t.Errorf("packet rate %s: %d of 100 datagrams arrived; want about the burst of 5", c.what, got)
		}
	}

	// Connections to the VM.
	vm.QoS = map[string]any{"ingressMaxConnections": 3}
	vm.Plug(vm.SGs)
	netlab.Eventually(t, "the connection limit in the rules, the rate limits gone", wait, func() bool {
		save := rulesOf(t, h)
		return strings.Contains(save, pick(h, "--connlimit-above 3", "ct count over 3")) && !strings.Contains(save, pick(h, "--limit ", "limit rate"))
	})
	cs := connections(client, vm.IP+":80", 4)
	t.Logf("connections: %d of 4 taken (limit 3)", len(cs))
	if len(cs) != 3 {
		t.Errorf("connection limit 3: %d connections taken", len(cs))
	}
	if len(cs) > 0 {
		abort(cs[0])
		netlab.Eventually(t, "a connection that ends makes room", wait, func() bool {
			more := connections(client, vm.IP+":80", 1)
			closeAll(more)
			return len(more) == 1
		})
	}
	closeAll(cs)

	// The controls go: all of it goes.
	vm.QoS = nil
	vm.Plug(vm.SGs)
	netlab.Eventually(t, "limits removed", wait, func() bool {
		save := rulesOf(t, h)
		tap, _ := h.Exec("tc", "qdisc", "show", "dev", vm.HostSide)
		_, err := h.Exec("ip", "link", "show", ifb)
		return !strings.Contains(save, pick(h, "--limit ", "limit rate")) && !strings.Contains(save, pick(h, "connlimit", "ct count")) && !strings.Contains(tap, "tbf") &&
			!strings.Contains(tap, "ingress") && err != nil
	})
	unlimited("after the controls went")
}

// ifbName is Felix's name for a tap's IFB device (the SHA-512 of the
// tap's name after "bwcali", 15 characters in all), computed here
// independently of the agent.
func ifbName(tap string) string {
	h := sha512.Sum512([]byte(tap))
	return ("bwcali" + hex.EncodeToString(h[:]))[:15]
}

// rulesOf is the host's IPv4 filter rules as its backend prints them:
// iptables-save, or the calico nftables table.
func rulesOf(t *testing.T, h *lab.Host) string {
	if h.Lab.NFTablesMode == "Enabled" {
		out, err := h.Exec("nft", "list", "table", "ip", "calico")
		if err != nil {
			t.Fatalf("nft list: %v %s", err, out)
		}
		return out
	}
	return h.IptablesSave(t)
}

// pick is the iptables or the nftables form of a rule's text.
func pick(h *lab.Host, iptables, nftables string) string {
	if h.Lab.NFTablesMode == "Enabled" {
		return nftables
	}
	return iptables
}
