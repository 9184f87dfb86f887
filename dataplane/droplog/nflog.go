package droplog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"golang.org/x/sys/unix"
)

// nfnetlink_log's messages and attributes (linux/netfilter/nfnetlink_log.h).
const (
	nfulnlMsgPacket = 0
	nfulnlMsgConfig = 1

	nfulaCfgCmd     = 1
	nfulaCfgMode    = 2
	nfulaCfgNLBufSz = 3
	nfulaCfgTimeout = 4
	nfulaCfgQThresh = 5

	nfulnlCfgCmdBind   = 1
	nfulnlCfgCmdUnbind = 2
	nfulnlCopyPacket   = 2

	nfulaIfindexIndev  = 4
	nfulaIfindexOutdev = 5
	nfulaPayload       = 9
	nfulaPrefix        = 10

	nlaTypeMask = 0x3fff
	nlmsgHdrLen = 16
	nfgenLen    = 4
)

// NFLOG is a netlink socket bound to one NFLOG group: the kernel's end of
// the drop log. It is a Source.
type NFLOG struct {
	fd    int
	group uint16
	seq   uint32
	buf   []byte
}

// OpenNFLOG binds group in the calling thread's network namespace,
// copying size bytes of each packet. Only one socket may hold a group:
// another holder makes this fail.
func OpenNFLOG(group uint16, size uint32) (*NFLOG, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_NETFILTER)
	if err != nil {
		return nil, fmt.Errorf("netlink socket: %w", err)
	}
	s := &NFLOG{fd: fd, group: group, buf: make([]byte, 1<<16)}
	fail := func(what string, err error) (*NFLOG, error) {
		_ = unix.Close(fd)
		return nil, fmt.Errorf("NFLOG group %d: %s: %w", group, what, err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fail("bind", err)
	}
	// A receive buffer for bursts; a read timeout so Read returns to its
	// caller, which checks whether to stop.
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 1<<20)
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Sec: 1}); err != nil {
		return fail("read timeout", err)
	}
	if err := s.config(attr(nfulaCfgCmd, []byte{nfulnlCfgCmdBind})); err != nil {
		return fail("binding the group (is another process reading it?)", err)
	}
	mode := make([]byte, 6)
	binary.BigEndian.PutUint32(mode, size)
	mode[4] = nfulnlCopyPacket
	if err := s.config(attr(nfulaCfgMode, mode), attr(nfulaCfgNLBufSz, be32(1<<16)),
		attr(nfulaCfgQThresh, be32(32)), attr(nfulaCfgTimeout, be32(10))); err != nil {
		return fail("configuring the copy mode", err)
	}
	return s, nil
}

// Close unbinds the group and closes the socket.
func (s *NFLOG) Close() error {
	_ = s.config(attr(nfulaCfgCmd, []byte{nfulnlCfgCmdUnbind}))
	return unix.Close(s.fd)
}

// config sends a configuration message for the group and waits for the
// kernel's acknowledgement.
func (s *NFLOG) config(attrs ...[]byte) error {
	s.seq++
	msg := make([]byte, nlmsgHdrLen+nfgenLen)
	for _, a := range attrs {
		msg = append(msg, a...)
	}
	binary.NativeEndian.PutUint32(msg[0:4], uint32(len(msg)))
	binary.NativeEndian.PutUint16(msg[4:6], unix.NFNL_SUBSYS_ULOG<<8|nfulnlMsgConfig)
	binary.NativeEndian.PutUint16(msg[6:8], unix.NLM_F_REQUEST|unix.NLM_F_ACK)
	binary.NativeEndian.PutUint32(msg[8:12], s.seq)
	msg[16] = unix.AF_UNSPEC
	msg[17] = 0 // NFNETLINK_V0
	binary.BigEndian.PutUint16(msg[18:20], s.group)
	if err := unix.Sendto(s.fd, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return err
	}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		n, _, err := unix.Recvfrom(s.fd, s.buf, 0)
		if err != nil {
			if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
				continue
			}
			return err
		}
		for b := s.buf[:n]; len(b) >= nlmsgHdrLen; {
			l := int(binary.NativeEndian.Uint32(b[0:4]))
			if l < nlmsgHdrLen || l > len(b) {
				break
			}
			typ, seq := binary.NativeEndian.Uint16(b[4:6]), binary.NativeEndian.Uint32(b[8:12])
			if typ == unix.NLMSG_ERROR && seq == s.seq && l >= nlmsgHdrLen+4 {
				if code := int32(binary.NativeEndian.Uint32(b[16:20])); code != 0 {
					return unix.Errno(-code)
				}
				return nil
			}
			b = b[align(l):]
		}
	}
	return errors.New("no acknowledgement from the kernel")
}

// Read waits up to a second for logged packets.
func (s *NFLOG) Read() ([]Packet, int, error) {
	n, _, err := unix.Recvfrom(s.fd, s.buf, 0)
	switch {
	case errors.Is(err, unix.ENOBUFS):
		return nil, 1, nil // the kernel dropped what did not fit; how many it does not say
	case errors.Is(err, unix.EAGAIN), errors.Is(err, unix.EINTR):
		return nil, 0, nil
	case err != nil:
		return nil, 0, err
	}
	pkts, bad := parseMessages(s.buf[:n])
	return pkts, bad, nil
}

// parseMessages reads the NFLOG packet messages in one netlink read. The
// packets' payloads are copied out of b. bad counts messages it could
// not read.
func parseMessages(b []byte) (pkts []Packet, bad int) {
	for len(b) >= nlmsgHdrLen {
		l := int(binary.NativeEndian.Uint32(b[0:4]))
		if l < nlmsgHdrLen || l > len(b) {
			return pkts, bad + 1
		}
		typ := binary.NativeEndian.Uint16(b[4:6])
		if typ == unix.NFNL_SUBSYS_ULOG<<8|nfulnlMsgPacket && l >= nlmsgHdrLen+nfgenLen {
			if p, ok := parsePacket(b[nlmsgHdrLen+nfgenLen : l]); ok {
				pkts = append(pkts, p)
			} else {
				bad++
			}
		}
		if align(l) >= len(b) {
			break
		}
		b = b[align(l):]
	}
	return pkts, bad
}

// parsePacket reads a packet message's attributes.
func parsePacket(b []byte) (Packet, bool) {
	var p Packet
	for len(b) >= 4 {
		l := int(binary.NativeEndian.Uint16(b[0:2]))
		typ := binary.NativeEndian.Uint16(b[2:4]) & nlaTypeMask
		if l < 4 || l > len(b) {
			return p, false
		}
		v := b[4:l]
		switch typ {
		case nfulaIfindexIndev:
			if len(v) >= 4 {
				p.InDev = binary.BigEndian.Uint32(v)
			}
		case nfulaIfindexOutdev:
			if len(v) >= 4 {
				p.OutDev = binary.BigEndian.Uint32(v)
			}
		case nfulaPrefix:
			for i, c := range v {
				if c == 0 {
					v = v[:i]
					break
				}
			}
			p.Prefix = string(v)
		case nfulaPayload:
			p.Payload = append([]byte(nil), v...)
		}
		if align(l) >= len(b) {
			break
		}
		b = b[align(l):]
	}
	return p, p.Payload != nil
}

func align(n int) int { return (n + 3) &^ 3 }

// attr encodes a netlink attribute, padded.
func attr(typ uint16, v []byte) []byte {
	b := make([]byte, align(4+len(v)))
	binary.NativeEndian.PutUint16(b[0:2], uint16(4+len(v)))
	binary.NativeEndian.PutUint16(b[2:4], typ)
	copy(b[4:], v)
	return b
}

func be32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }
