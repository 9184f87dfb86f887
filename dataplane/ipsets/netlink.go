package ipsets

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Change is one set's members to add or delete (-exist semantics: adding
// a present member, or deleting an absent one, is not an error).
type Change struct {
	Set  string
	Add  bool
	Nets []netip.Prefix
}

// changesOf groups member ops into changes, one per run of ops with the
// same set and kind, in order.
func changesOf(ops []Op) []Change {
	var out []Change
	for _, o := range ops {
		add := o.Kind == OpAdd
		if n := len(out); n > 0 && out[n-1].Set == o.Set && out[n-1].Add == add {
			out[n-1].Nets = append(out[n-1].Nets, o.Member.Net)
			continue
		}
		out = append(out, Change{Set: o.Set, Add: add, Nets: []netip.Prefix{o.Member.Net}})
	}
	return out
}

// NetlinkSocket writes member changes to the kernel's hash:net sets over
// one netlink socket: each change is one message listing all its members
// (the kernel finds the set by name once per message, not once per
// member), and every message of a Write goes in one send. Not safe for
// concurrent use; the dataplane goroutine is its only user.
type NetlinkSocket struct {
	fd  int
	out []byte
	in  []byte
}

// ipset's netlink numbers (linux/netfilter/ipset/ip_set.h).
const (
	subsysIPSet       = 6
	cmdAdd            = 9
	cmdDel            = 10
	ipsetProtocol     = 6
	attrProtocol      = 1
	attrSetName       = 2
	attrData          = 7
	attrADT           = 8
	attrLineNo        = 9 // required with a member list
	attrIP            = 1
	attrCIDR          = 3
	attrIPv4          = 1
	attrIPv6          = 2
	membersPerMessage = 1000 // a message's member list is one attribute, at most 64 KiB
)

// OpenNetlink opens the socket in the calling thread's namespace; timeout
// bounds each send and receive (0: none).
func OpenNetlink(timeout time.Duration) (*NetlinkSocket, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_NETFILTER)
	if err != nil {
		return nil, fmt.Errorf("opening a netfilter netlink socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		_ = unix.Close(fd)
		return nil, fmt.Errorf("binding a netfilter netlink socket: %w", err)
	}
	if timeout > 0 {
		tv := unix.NsecToTimeval(timeout.Nanoseconds())
		for _, opt := range []int{unix.SO_SNDTIMEO, unix.SO_RCVTIMEO} {
			if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, opt, &tv); err != nil {
				_ = unix.Close(fd)
				return nil, fmt.Errorf("setting the netlink timeout: %w", err)
			}
		}
	}
	return &NetlinkSocket{fd: fd, in: make([]byte, 32<<10)}, nil
}

// Close closes the socket.
func (s *NetlinkSocket) Close() error { return unix.Close(s.fd) }

// Write implements Netlink. On an error, the changes before the failing
// member have taken effect (each is idempotent: write them all again).
func (s *NetlinkSocket) Write(changes []Change) error {
	s.out = s.out[:0]
	seq := uint32(0)
	for _, c := range changes {
		for nets := c.Nets; len(nets) > 0; {
			n := min(len(nets), membersPerMessage)
			s.out = appendChange(s.out, seq, c.Set, c.Add, nets[:n])
			nets = nets[n:]
			seq++
		}
	}
	if err := unix.Sendto(s.fd, s.out, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("writing IP set changes: %w", err)
	}
	var first error
	for acked := uint32(0); acked < seq; {
		n, _, err := unix.Recvfrom(s.fd, s.in, 0)
		if err != nil {
			return fmt.Errorf("reading IP set acknowledgements: %w", err)
		}
		for b := s.in[:n]; len(b) >= unix.NLMSG_HDRLEN; {
			l := int(binary.NativeEndian.Uint32(b))
			if l < unix.NLMSG_HDRLEN || l > len(b) {
				return fmt.Errorf("malformed netlink message (length %d of %d)", l, len(b))
			}
			typ, msgSeq := binary.NativeEndian.Uint16(b[4:]), binary.NativeEndian.Uint32(b[8:])
			payload := b[unix.NLMSG_HDRLEN:l]
			b = b[min((l+3)&^3, len(b)):]
			if typ != unix.NLMSG_ERROR {
				continue
			}
			acked++
			if len(payload) < 4 {
				return errors.New("short netlink acknowledgement")
			}
			if errno := syscall.Errno(-int32(binary.NativeEndian.Uint32(payload))); errno != 0 && first == nil {
				first = fmt.Errorf("IP set change %d of %d: %w", msgSeq+1, seq, ipsetErr(errno))
			}
		}
	}
	return first
}

// ipsetErr names ipset's own error numbers (from 4096), which Errno would
// print as unknown.
func ipsetErr(e syscall.Errno) error {
	if e >= 4096 {
		return fmt.Errorf("ipset error %d", int(e))
	}
	return e
}

// appendChange appends one ADD or DEL message of nets to set.
func appendChange(b []byte, seq uint32, set string, add bool, nets []netip.Prefix) []byte {
	cmd := uint16(cmdDel)
	if add {
		cmd = cmdAdd
	}
	start := len(b)
	b = binary.NativeEndian.AppendUint32(b, 0) // length, below
	b = binary.NativeEndian.AppendUint16(b, subsysIPSet<<8|cmd)
	b = binary.NativeEndian.AppendUint16(b, unix.NLM_F_REQUEST|unix.NLM_F_ACK) // no NLM_F_EXCL: -exist
	b = binary.NativeEndian.AppendUint32(b, seq)
	b = binary.NativeEndian.AppendUint32(b, 0)
	b = append(b, unix.AF_INET, unix.NFNETLINK_V0, 0, 0) // the set's own family applies
	b = appendAttr(b, attrProtocol, []byte{ipsetProtocol})
	b = appendAttr(b, attrSetName, append([]byte(set), 0))
	b = appendAttr(b, attrLineNo, binary.NativeEndian.AppendUint32(nil, 0))
	adt := len(b)
	b = appendAttr(b, attrADT|unix.NLA_F_NESTED, nil)
	for _, n := range nets {
		data := len(b)
		b = appendAttr(b, attrData|unix.NLA_F_NESTED, nil)
		ip := len(b)
		b = appendAttr(b, attrIP|unix.NLA_F_NESTED, nil)
		if n.Addr().Is4() {
			b = appendAttr(b, attrIPv4|unix.NLA_F_NET_BYTEORDER, n.Addr().AsSlice())
		} else {
			b = appendAttr(b, attrIPv6|unix.NLA_F_NET_BYTEORDER, n.Addr().AsSlice())
		}
		endAttr(b, ip)
		b = appendAttr(b, attrCIDR, []byte{uint8(n.Bits())})
		endAttr(b, data)
	}
	endAttr(b, adt)
	binary.NativeEndian.PutUint32(b[start:], uint32(len(b)-start))
	return b
}

// appendAttr appends a netlink attribute, padded to four bytes.
func appendAttr(b []byte, typ uint16, val []byte) []byte {
	b = binary.NativeEndian.AppendUint16(b, uint16(4+len(val)))
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = append(b, val...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

// endAttr sets the length of the nested attribute at start to cover what
// was appended since.
func endAttr(b []byte, start int) {
	binary.NativeEndian.PutUint16(b[start:], uint16(len(b)-start))
}
