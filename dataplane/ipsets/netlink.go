package ipsets

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"ocelot/dataplane/internal/nlsock"
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
	raw     *nlsock.Raw
	timeout time.Duration
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
	raw, err := nlsock.OpenRaw(timeout)
	if err != nil {
		return nil, err
	}
	return &NetlinkSocket{raw: raw, timeout: timeout}, nil
}

// Close closes the socket.
func (s *NetlinkSocket) Close() error { return s.raw.Close() }

// Write implements Netlink. On an error, the changes before the failing
// member have taken effect (each is idempotent: write them all again).
func (s *NetlinkSocket) Write(changes []Change) error {
	n := 0
	for _, c := range changes {
		for nets := c.Nets; len(nets) > 0; n++ {
			k := min(len(nets), membersPerMessage)
			s.appendChange(c.Set, c.Add, nets[:k])
			nets = nets[k:]
		}
	}
	var first error
	err := s.raw.Exchange(nil, func(seq uint32, errno syscall.Errno) error {
		if errno != 0 && first == nil {
			first = fmt.Errorf("IP set change %d of %d: %w", seq+1, n, ipsetErr(errno))
		}
		return nil
	})
	if err != nil {
		// Replies may be left unread: the next write gets a new socket.
		if raw, oerr := nlsock.OpenRaw(s.timeout); oerr == nil {
			_ = s.raw.Close() // replaced
			s.raw = raw
		}
		return fmt.Errorf("writing IP set changes: %w", err)
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

// appendChange queues one ADD or DEL message of nets to set, without
// NLM_F_EXCL: -exist semantics.
func (s *NetlinkSocket) appendChange(set string, add bool, nets []netip.Prefix) {
	cmd := uint16(cmdDel)
	if add {
		cmd = cmdAdd
	}
	r := s.raw
	r.Begin(subsysIPSet<<8|cmd, unix.NLM_F_ACK, unix.AF_INET) // the set's own family applies
	r.Attr(attrProtocol, []byte{ipsetProtocol})
	r.Attr(attrSetName, append([]byte(set), 0))
	r.Attr(attrLineNo, binary.NativeEndian.AppendUint32(nil, 0))
	adt := r.Nest(attrADT)
	for _, n := range nets {
		data := r.Nest(attrData)
		ip := r.Nest(attrIP)
		if n.Addr().Is4() {
			r.Attr(attrIPv4|unix.NLA_F_NET_BYTEORDER, n.Addr().AsSlice())
		} else {
			r.Attr(attrIPv6|unix.NLA_F_NET_BYTEORDER, n.Addr().AsSlice())
		}
		r.End(ip)
		r.Attr(attrCIDR, []byte{uint8(n.Bits())})
		r.End(data)
	}
	r.End(adt)
	r.Finish()
}
