package netlab

import (
	"fmt"
	"net"
	"net/netip"
	"syscall"
)

// SendGARP sends one gratuitous ARP request for ip (sender and target
// address both ip) from iface in ns (nil: this namespace), as a guest
// announces itself when it resumes after a live migration.
func SendGARP(ns *NS, iface string, ip netip.Addr) error {
	send := func() error {
		ifi, err := net.InterfaceByName(iface)
		if err != nil {
			return err
		}
		a := ip.As4()
		frame := []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
		frame = append(frame, ifi.HardwareAddr...)
		frame = append(frame, 0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1)
		frame = append(frame, ifi.HardwareAddr...)
		frame = append(frame, a[:]...)
		frame = append(frame, 0, 0, 0, 0, 0, 0)
		frame = append(frame, a[:]...)
		return SendFrame(iface, frame)
	}
	if ns == nil {
		return send()
	}
	return ns.Do(send)
}

// SendFrame writes one raw Ethernet frame out of iface in the calling
// thread's namespace.
func SendFrame(iface string, frame []byte) error {
	ifi, err := net.InterfaceByName(iface)
	if err != nil {
		return err
	}
	fd, err := syscall.Socket(syscall.AF_PACKET, syscall.SOCK_RAW|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("packet socket: %w", err)
	}
	defer syscall.Close(fd)
	return syscall.Sendto(fd, frame, 0, &syscall.SockaddrLinklayer{Ifindex: ifi.Index, Halen: 6, Addr: [8]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}})
}
