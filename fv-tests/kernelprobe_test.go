package fvtests

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"runtime"
	"unsafe"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// kernelProbe reads a host namespace's IPv4 filter table and IP sets
// straight from the kernel (getsockopt and netlink on sockets opened in
// that namespace), so that the benchmark's observer costs microseconds
// where iptables-save and ipset test cost a process each.
type kernelProbe struct {
	fd int // raw IPv4 socket in the namespace
	nl *netlink.Handle
}

func newKernelProbe(nsName string) (*kernelProbe, error) {
	ns, err := netns.GetFromName(nsName)
	if err != nil {
		return nil, err
	}
	defer ns.Close()
	nl, err := netlink.NewHandleAt(ns, unix.NETLINK_NETFILTER)
	if err != nil {
		return nil, err
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		return nil, err
	}
	defer orig.Close()
	if err := netns.Set(ns); err != nil {
		return nil, err
	}
	fd, serr := unix.Socket(unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_RAW)
	if err := netns.Set(orig); err != nil {
		panic(err) // this thread is in the wrong namespace: do not let it run on
	}
	if serr != nil {
		return nil, serr
	}
	return &kernelProbe{fd: fd, nl: nl}, nil
}

func (p *kernelProbe) Close() { unix.Close(p.fd); p.nl.Close() }

const (
	iptSoGetInfo    = 64 // IPT_SO_GET_INFO
	iptSoGetEntries = 65 // IPT_SO_GET_ENTRIES
	iptInfoSize     = 84 // struct ipt_getinfo
	iptEntriesHdr   = 40 // struct ipt_get_entries up to entrytable (8-aligned)
)

func (p *kernelProbe) getsockopt(opt int, buf []byte) error {
	n := uint32(len(buf))
	_, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(p.fd), unix.SOL_IP, uintptr(opt),
		uintptr(unsafe.Pointer(&buf[0])), uintptr(unsafe.Pointer(&n)), 0)
	if e != 0 {
		return e
	}
	return nil
}

// filterTable returns the IPv4 filter table's rule blob.
func (p *kernelProbe) filterTable() ([]byte, error) {
	info := make([]byte, iptInfoSize)
	copy(info, "filter")
	if err := p.getsockopt(iptSoGetInfo, info); err != nil {
		return nil, fmt.Errorf("IPT_SO_GET_INFO: %w", err)
	}
	size := binary.NativeEndian.Uint32(info[80:])
	buf := make([]byte, iptEntriesHdr+int(size))
	copy(buf, "filter")
	binary.NativeEndian.PutUint32(buf[32:], size)
	if err := p.getsockopt(iptSoGetEntries, buf); err != nil {
		return nil, fmt.Errorf("IPT_SO_GET_ENTRIES: %w", err)
	}
	return buf[iptEntriesHdr:], nil
}

// hasDestPort reports whether any rule of the filter table has a
// multiport destination-port match on port (xt_multiport_v1: the match
// header is a u16 size, a 29-byte name and a revision byte; then flags,
// count, ports[15], pflags[15]).
func (p *kernelProbe) hasDestPort(port uint16) (bool, error) {
	blob, err := p.filterTable()
	if err != nil {
		return false, err
	}
	name := []byte("multiport\x00")
	for off := 0; ; {
		i := bytes.Index(blob[off:], name)
		if i < 0 {
			return false, nil
		}
		h := off + i - 2 // match header start
		off += i + len(name)
		if h < 0 || h+34+30+15 > len(blob) || blob[h+31] != 1 || blob[h+32] != 1 { // revision 1, destination ports
			continue
		}
		count := int(blob[h+33])
		for k := 0; k < count && k < 15; k++ {
			if binary.NativeEndian.Uint16(blob[h+34+2*k:]) == port && blob[h+64+k] == 0 {
				return true, nil
			}
		}
	}
}

// inSet reports whether an IPv4 address is in a hash:net set.
func (p *kernelProbe) inSet(set, ip string) (bool, error) {
	return p.nl.IpsetTest(set, &netlink.IPSetEntry{IP: net.ParseIP(ip).To4(), CIDR: 32})
}

// tableInfo is what IPT_SO_GET_INFO says of a table's rules.
type tableInfo struct{ entries, size uint32 }

// filterInfo reads the IPv4 filter table's rule count and size.
func (p *kernelProbe) filterInfo() (tableInfo, error) {
	info := make([]byte, iptInfoSize)
	copy(info, "filter")
	if err := p.getsockopt(iptSoGetInfo, info); err != nil {
		return tableInfo{}, fmt.Errorf("IPT_SO_GET_INFO: %w", err)
	}
	return tableInfo{binary.NativeEndian.Uint32(info[76:]), binary.NativeEndian.Uint32(info[80:])}, nil
}
