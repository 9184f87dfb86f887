package livemigration

import (
	"fmt"
	"net"
	"os"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// packetConn is an AF_PACKET socket bound to one interface that passes
// only ARP and RARP frames.
type packetConn struct {
	f  *os.File
	rc syscall.RawConn
}

// arpOrRARP is a classic BPF program: accept a frame whose EtherType is
// ARP or RARP (its first 64 bytes), drop anything else in the kernel.
var arpOrRARP = []unix.SockFilter{
	{Code: unix.BPF_LD | unix.BPF_H | unix.BPF_ABS, K: 12},
	{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, Jt: 1, Jf: 0, K: etherARP},
	{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, Jt: 0, Jf: 1, K: etherRARP},
	{Code: unix.BPF_RET | unix.BPF_K, K: 64},
	{Code: unix.BPF_RET | unix.BPF_K, K: 0},
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
	prog := unix.SockFprog{Len: uint16(len(arpOrRARP)), Filter: (*unix.SockFilter)(unsafe.Pointer(&arpOrRARP[0]))}
	if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &prog); err != nil {
		_ = syscall.Close(fd)
		return nil, fmt.Errorf("packet filter: %w", err)
	}
	if err := syscall.Bind(fd, &syscall.SockaddrLinklayer{Protocol: uint16(proto), Ifindex: ifi.Index}); err != nil {
		_ = syscall.Close(fd)
		return nil, fmt.Errorf("binding a packet socket to %s: %w", iface, err)
	}
	// Non-blocking, so the runtime's poller waits for frames and Close
	// wakes a reader.
	f := os.NewFile(uintptr(fd), "packet:"+iface)
	rc, err := f.SyscallConn()
	if err != nil {
		_ = f.Close()
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
