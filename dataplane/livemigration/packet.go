package livemigration

import (
	"fmt"
	"net"
	"os"
	"syscall"
)

// packetConn is an AF_PACKET socket bound to one interface that passes
// only ARP and RARP frames.
type packetConn struct {
	f  *os.File
	rc syscall.RawConn
}

// arpOrRARP is a classic BPF program: accept a frame whose EtherType is
// ARP or RARP (its first 64 bytes), drop anything else in the kernel.
var arpOrRARP = []syscall.SockFilter{
	{Code: syscall.BPF_LD | syscall.BPF_H | syscall.BPF_ABS, K: 12},
	{Code: syscall.BPF_JMP | syscall.BPF_JEQ | syscall.BPF_K, Jt: 1, Jf: 0, K: etherARP},
	{Code: syscall.BPF_JMP | syscall.BPF_JEQ | syscall.BPF_K, Jt: 0, Jf: 1, K: etherRARP},
	{Code: syscall.BPF_RET | syscall.BPF_K, K: 64},
	{Code: syscall.BPF_RET | syscall.BPF_K, K: 0},
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// ListenPacket opens a capture of the ARP and RARP frames on an interface
// of this network namespace. It only reads: nothing is sent and the
// interface is not changed (not even promiscuous: a tap's host side sees
// every frame the VM sends).
func ListenPacket(iface string) (Capture, error) {
	ifi, err := net.InterfaceByName(iface)
	if err != nil {
		return nil, err
	}
	proto := int(htons(syscall.ETH_P_ALL))
	fd, err := syscall.Socket(syscall.AF_PACKET, syscall.SOCK_RAW|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, proto)
	if err != nil {
		return nil, fmt.Errorf("packet socket: %w", err)
	}
	if err := syscall.AttachLsf(fd, arpOrRARP); err != nil {
		syscall.Close(fd)
		return nil, fmt.Errorf("packet filter: %w", err)
	}
	if err := syscall.Bind(fd, &syscall.SockaddrLinklayer{Protocol: uint16(proto), Ifindex: ifi.Index}); err != nil {
		syscall.Close(fd)
		return nil, fmt.Errorf("binding a packet socket to %s: %w", iface, err)
	}
	// Non-blocking, so the runtime's poller waits for frames and Close
	// wakes a reader.
	f := os.NewFile(uintptr(fd), "packet:"+iface)
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, err
	}
	return &packetConn{f: f, rc: rc}, nil
}

func (c *packetConn) Next(buf []byte) (n int, incoming bool, err error) {
	var from syscall.Sockaddr
	rerr := c.rc.Read(func(fd uintptr) bool {
		n, from, err = syscall.Recvfrom(int(fd), buf, 0)
		return err != syscall.EAGAIN
	})
	if rerr != nil {
		return 0, false, rerr
	}
	if err != nil {
		return 0, false, err
	}
	ll, ok := from.(*syscall.SockaddrLinklayer)
	return n, ok && ll.Pkttype != syscall.PACKET_OUTGOING, nil
}

func (c *packetConn) Close() error { return c.f.Close() }
