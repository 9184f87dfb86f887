package netlab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/vishvananda/netns"
	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// NS is a named network namespace made for a test.
type NS struct {
	Name string
}

// NewNS creates a namespace named Prefix()+suffix with loopback up, and
// deletes it when the test ends.
func NewNS(t T, suffix string) *NS {
	t.Helper()
	ns, err := CreateNS(Prefix() + suffix)
	if err != nil {
		t.Fatalf("%v", err)
	}
	t.Cleanup(ns.Delete)
	return ns
}

// CreateNS creates a namespace with loopback up. The caller deletes it.
func CreateNS(name string) (*NS, error) {
	if out, err := Try("ip", "netns", "add", name); err != nil {
		return nil, fmt.Errorf("ip netns add %s: %v: %s", name, err, out)
	}
	ns := &NS{Name: name}
	if out, err := ns.Exec("ip", "link", "set", "lo", "up"); err != nil {
		ns.Delete()
		return nil, fmt.Errorf("loopback up in %s: %v: %s", name, err, out)
	}
	return ns, nil
}

// Delete kills the namespace's processes and removes it and everything in it.
func (ns *NS) Delete() {
	killAll(ns.Name)
	Try("ip", "netns", "del", ns.Name)
}

// Exec runs a command inside the namespace.
func (ns *NS) Exec(name string, args ...string) (string, error) {
	return Try("ip", append([]string{"netns", "exec", ns.Name, name}, args...)...)
}

// MustExec runs a command inside the namespace, failing the test on error.
func (ns *NS) MustExec(t T, name string, args ...string) string {
	t.Helper()
	out, err := ns.Exec(name, args...)
	if err != nil {
		t.Fatalf("in %s: %s %s: %v\n%s", ns.Name, name, strings.Join(args, " "), err, out)
	}
	return out
}

// Do runs f on an OS thread switched into the namespace. Sockets f creates
// belong to the namespace for their whole life. The thread is discarded
// afterwards, so no other goroutine ever runs in the namespace.
func (ns *NS) Do(f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread exits with the goroutine
		h, err := netns.GetFromName(ns.Name)
		if err != nil {
			errc <- err
			return
		}
		defer h.Close()
		if err := netns.Set(h); err != nil {
			errc <- err
			return
		}
		errc <- f()
	}()
	return <-errc
}

// VM is a namespace standing for a virtual machine: one interface, eth0,
// the peer of a tap-named veth on the host side.
type VM struct {
	*NS
	IP, IP6  string // addresses on eth0
	MAC      string
	HostSide string // the tap-named interface in the host namespace
	host     *NS    // nil: this process's namespace
}

// AddVM creates a VM namespace whose eth0 (with the given MAC and /32
// address, and optional /128) is paired with hostIface in hostNS (nil: the
// namespace this process runs in). The VM's default route points at
// 169.254.1.1 via eth0, which the host answers by proxy ARP, as with
// Calico. The host side is left down: the test or agent brings it up.
func AddVM(t T, hostNS *NS, name, hostIface, mac, ip, ip6 string) *VM {
	t.Helper()
	vm := &VM{NS: NewNS(t, name), IP: ip, IP6: ip6, MAC: mac, HostSide: hostIface, host: hostNS}
	ipCmd := []string{}
	if hostNS != nil {
		ipCmd = []string{"-n", hostNS.Name}
	}
	Run(t, "ip", append(ipCmd, "link", "add", hostIface, "type", "veth", "peer", "name", "eth0", "netns", vm.Name)...)
	vm.MustExec(t, "ip", "link", "set", "eth0", "address", mac)
	vm.MustExec(t, "ip", "addr", "add", ip+"/32", "dev", "eth0")
	vm.MustExec(t, "ip", "link", "set", "eth0", "up")
	vm.MustExec(t, "ip", "route", "add", "169.254.1.1", "dev", "eth0", "scope", "link")
	vm.MustExec(t, "ip", "route", "add", "default", "via", "169.254.1.1", "dev", "eth0")
	if ip6 != "" {
		vm.MustExec(t, "sysctl", "-qw", "net.ipv6.conf.eth0.accept_dad=0")
		vm.MustExec(t, "ip", "-6", "addr", "add", ip6+"/128", "dev", "eth0")
	}
	return vm
}

// hostIP runs ip in the VM's host namespace.
func (vm *VM) hostIP(t T, args ...string) string {
	t.Helper()
	if vm.host != nil {
		return Run(t, "ip", append([]string{"-n", vm.host.Name}, args...)...)
	}
	return Run(t, "ip", args...)
}

// PlugIn brings the host side up, as Nova does when a VM starts, and
// points the VM's IPv6 default route at the host side's link-local
// address (IPv4 uses 169.254.1.1, answered by proxy ARP).
func (vm *VM) PlugIn(t T) {
	t.Helper()
	sysctl := "net.ipv6.conf." + vm.HostSide + ".accept_dad=0"
	if vm.host != nil {
		vm.host.MustExec(t, "sysctl", "-qw", sysctl)
	} else {
		Run(t, "sysctl", "-qw", sysctl)
	}
	vm.hostIP(t, "link", "set", vm.HostSide, "up")
	if vm.IP6 == "" {
		return
	}
	var ll string
	Eventually(t, "link-local address on "+vm.HostSide, 10*time.Second, func() bool {
		for _, line := range strings.Split(vm.hostIP(t, "-6", "-o", "addr", "show", "dev", vm.HostSide, "scope", "link"), "\n") {
			if f := strings.Fields(line); len(f) >= 4 && strings.HasPrefix(f[3], "fe80::") {
				ll, _, _ = strings.Cut(f[3], "/")
				return true
			}
		}
		return false
	})
	vm.Exec("ip", "-6", "route", "del", "default")
	vm.MustExec(t, "ip", "-6", "route", "add", "default", "via", ll, "dev", "eth0")
}

// AddUplink gives a host namespace (nil: this process's) a default route
// out of an interface towards a "world" namespace, as a real compute host
// has. Proxy ARP answers a VM only for destinations routed elsewhere, so
// VMs need this to reach their gateway.
func AddUplink(t T, hostNS *NS, name string) *NS {
	t.Helper()
	world := NewNS(t, name)
	ipCmd := []string{}
	if hostNS != nil {
		ipCmd = []string{"-n", hostNS.Name}
	}
	iface := "up-" + name
	if len(iface) > 15 {
		iface = iface[:15]
	}
	Run(t, "ip", append(ipCmd, "link", "add", iface, "type", "veth", "peer", "name", "eth0", "netns", world.Name)...)
	Run(t, "ip", append(ipCmd, "link", "set", iface, "up")...)
	world.MustExec(t, "ip", "link", "set", "eth0", "up")
	Run(t, "ip", append(ipCmd, "route", "add", "default", "dev", iface)...)
	Run(t, "ip", append(ipCmd, "-6", "route", "add", "default", "dev", iface)...)
	return world
}

// Server is a TCP server in a namespace that echoes what it reads.
type Server struct {
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
}

// Serve listens on addr ("198.18.1.2:80") inside ns until the test ends.
func Serve(t T, ns *NS, addr string) *Server {
	t.Helper()
	s := &Server{}
	err := ns.Do(func() error {
		ln, err := net.Listen("tcp", addr)
		s.ln = ln
		return err
	})
	if err != nil {
		t.Fatalf("listen on %s in %s: %v", addr, ns.Name, err)
	}
	go func() {
		for {
			c, err := s.ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns = append(s.conns, c)
			s.mu.Unlock()
			go io.Copy(c, c)
		}
	}()
	t.Cleanup(s.Close)
	return s
}

// Close stops the server and its connections.
func (s *Server) Close() {
	s.ln.Close()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.conns {
		c.Close()
	}
}

// Dial opens a TCP connection from inside ns.
func Dial(ns *NS, addr string, timeout time.Duration) (net.Conn, error) {
	var c net.Conn
	err := ns.Do(func() error {
		var err error
		c, err = net.DialTimeout("tcp", addr, timeout)
		return err
	})
	return c, err
}

// Connects reports whether a TCP connection from ns to addr completes and
// carries a round trip of data within timeout.
func Connects(ns *NS, addr string, timeout time.Duration) bool {
	c, err := Dial(ns, addr, timeout)
	if err != nil {
		return false
	}
	defer c.Close()
	return Echoes(c, timeout)
}

// Echoes reports whether a message sent on c comes back within timeout.
func Echoes(c net.Conn, timeout time.Duration) bool {
	c.SetDeadline(time.Now().Add(timeout))
	defer c.SetDeadline(time.Time{})
	msg := []byte("ocelot")
	if _, err := c.Write(msg); err != nil {
		return false
	}
	buf := make([]byte, len(msg))
	_, err := io.ReadFull(c, buf)
	return err == nil && string(buf) == string(msg)
}

// Pings reports whether an ICMP (or ICMPv6) echo from ns to dst is
// answered within timeout.
func Pings(ns *NS, dst string, timeout time.Duration) bool {
	err := ns.Do(func() error { return ping(dst, timeout) })
	return err == nil
}

func ping(dst string, timeout time.Duration) error {
	ip := net.ParseIP(dst)
	if ip == nil {
		return fmt.Errorf("bad address %q", dst)
	}
	network, laddr, proto := "ip4:icmp", "0.0.0.0", 1
	var typ icmp.Type = ipv4.ICMPTypeEcho
	if ip.To4() == nil {
		network, laddr, proto, typ = "ip6:ipv6-icmp", "::", 58, ipv6.ICMPTypeEchoRequest
	}
	c, err := icmp.ListenPacket(network, laddr)
	if err != nil {
		return err
	}
	defer c.Close()
	id := os.Getpid()&0xffff ^ int(time.Now().UnixNano()&0xffff)
	msg := icmp.Message{Type: typ, Body: &icmp.Echo{ID: id, Seq: 1, Data: []byte("ocelot-ping")}}
	b, _ := msg.Marshal(nil)
	if _, err := c.WriteTo(b, &net.IPAddr{IP: ip}); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	buf := make([]byte, 1500)
	for ctx.Err() == nil {
		c.SetReadDeadline(time.Now().Add(timeout))
		n, peer, err := c.ReadFrom(buf)
		if err != nil {
			return err
		}
		m, err := icmp.ParseMessage(proto, buf[:n])
		if err != nil {
			continue
		}
		if e, ok := m.Body.(*icmp.Echo); ok && (m.Type == ipv4.ICMPTypeEchoReply || m.Type == ipv6.ICMPTypeEchoReply) &&
			e.ID == id && peer.String() == ip.String() {
			return nil
		}
	}
	return errors.New("no echo reply")
}

// Eventually polls cond every 50ms until it holds, and fails the test if
// it does not within timeout.
func Eventually(t T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	if !Within(timeout, cond) {
		t.Fatalf("timed out after %v: %s", timeout, what)
	}
}

// Within polls cond every 50ms until it holds (true) or timeout passes
// (false).
func Within(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
	return true
}
