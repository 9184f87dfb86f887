package conntrack

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"syscall"
	"time"

	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Netlink is the kernel's conntrack table over ctnetlink, in the network
// namespace of the calling thread. One Forget is one dump of every family
// (a single walk of the kernel's table, where a dump per family would walk
// it twice), parsed without allocating per entry, then one delete per
// matching entry.
type Netlink struct {
	// Timeout bounds each netlink send and receive (NetlinkTimeoutSecs);
	// 0 keeps netlink's default.
	Timeout time.Duration
}

// ctnetlink's numbers (linux/netfilter/nfnetlink.h, nfnetlink_conntrack.h).
const (
	subsysCTNetlink = 1
	ctaTupleOrig    = 1
	ctaTupleReply   = 2
	ctaTupleIP      = 1
	ctaIPv4Src      = 1
	ctaIPv4Dst      = 2
	ctaIPv6Src      = 3
	ctaIPv6Dst      = 4
	nlaTypeMask     = 0x3fff // less NLA_F_NESTED and NLA_F_NET_BYTEORDER
	nfgenmsgLen     = 4
)

// Forget implements Table.
func (n Netlink) Forget(ctx context.Context, match func(Tuple) bool) (int, error) {
	s, err := n.socket()
	if err != nil {
		return 0, err
	}
	defer s.Close()
	// Dump everything; keep the entries to delete (they are few).
	dump := nl.NewNetlinkRequest(subsysCTNetlink<<8|nl.IPCTNL_MSG_CT_GET, unix.NLM_F_DUMP)
	dump.AddData(&nl.Nfgenmsg{NfgenFamily: unix.AF_UNSPEC, Version: nl.NFNETLINK_V0})
	dump.Sockets = map[int]*nl.SocketHandle{unix.NETLINK_NETFILTER: {Socket: s}}
	var doomed [][]byte
	var parseErr error
	err = dump.ExecuteIter(unix.NETLINK_NETFILTER, 0, func(msg []byte) bool {
		t, err := parseTuple(msg)
		if err != nil {
			parseErr = err
			return true
		}
		if match(t) {
			doomed = append(doomed, append([]byte(nil), msg...))
		}
		return ctx.Err() == nil
	})
	if err != nil && !errors.Is(err, nl.ErrDumpInterrupted) {
		return 0, fmt.Errorf("dumping conntrack: %w", err)
	}
	deleted := 0
	var errs []error
	if err != nil {
		// The table changed during the dump: what it returned is deleted,
		// and the pass counts as failed, so its batch is tried again (and
		// a record of peers built from it is not trusted).
		errs = append(errs, fmt.Errorf("dumping conntrack: %w", err))
	}
	if parseErr != nil {
		errs = append(errs, parseErr)
	}
	for _, msg := range doomed {
		del := nl.NewNetlinkRequest(subsysCTNetlink<<8|nl.IPCTNL_MSG_CT_DELETE, unix.NLM_F_ACK)
		del.AddData(&nl.Nfgenmsg{NfgenFamily: msg[0], Version: nl.NFNETLINK_V0})
		del.AddRawData(msg[nfgenmsgLen:]) // the entry's own attributes identify it
		del.Sockets = dump.Sockets
		if _, err := del.Execute(unix.NETLINK_NETFILTER, 0); err != nil && !errors.Is(err, syscall.ENOENT) {
			errs = append(errs, err)
			continue
		}
		deleted++
	}
	if len(errs) > 0 {
		return deleted, fmt.Errorf("conntrack pass (%d of %d selected entries deleted): %w", deleted, len(doomed), errors.Join(errs...))
	}
	return deleted, nil
}

func (n Netlink) socket() (*nl.NetlinkSocket, error) {
	s, err := nl.GetNetlinkSocketAt(netns.None(), netns.None(), unix.NETLINK_NETFILTER)
	if err != nil {
		return nil, fmt.Errorf("opening a netfilter netlink socket: %w", err)
	}
	if n.Timeout > 0 {
		tv := unix.NsecToTimeval(n.Timeout.Nanoseconds())
		if err := s.SetSendTimeout(&tv); err != nil {
			s.Close()
			return nil, err
		}
		if err := s.SetReceiveTimeout(&tv); err != nil {
			s.Close()
			return nil, err
		}
	}
	return s, nil
}

// parseTuple reads the original and reply addresses of one conntrack
// message (its nfgenmsg, then attributes).
func parseTuple(msg []byte) (Tuple, error) {
	var t Tuple
	if len(msg) < nfgenmsgLen {
		return t, errors.New("short conntrack message")
	}
	err := attrs(msg[nfgenmsgLen:], func(typ uint16, val []byte) error {
		var src, dst *netip.Addr
		switch typ {
		case ctaTupleOrig:
			src, dst = &t.OrigSrc, &t.OrigDst
		case ctaTupleReply:
			src, dst = &t.ReplySrc, &t.ReplyDst
		default:
			return nil
		}
		return attrs(val, func(typ uint16, val []byte) error {
			if typ != ctaTupleIP {
				return nil
			}
			return attrs(val, func(typ uint16, val []byte) error {
				a, ok := netip.AddrFromSlice(val)
				if !ok {
					return nil
				}
				switch typ {
				case ctaIPv4Src, ctaIPv6Src:
					*src = a.Unmap()
				case ctaIPv4Dst, ctaIPv6Dst:
					*dst = a.Unmap()
				}
				return nil
			})
		})
	})
	return t, err
}

// attrs calls f for each netlink attribute in b.
func attrs(b []byte, f func(typ uint16, val []byte) error) error {
	for len(b) >= 4 {
		l := int(binary.NativeEndian.Uint16(b))
		typ := binary.NativeEndian.Uint16(b[2:]) & nlaTypeMask
		if l < 4 || l > len(b) {
			return fmt.Errorf("malformed conntrack attribute (length %d of %d)", l, len(b))
		}
		if err := f(typ, b[4:l]); err != nil {
			return err
		}
		b = b[min((l+3)&^3, len(b)):]
	}
	return nil
}
