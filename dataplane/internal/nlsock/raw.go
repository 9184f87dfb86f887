package nlsock

import (
	"encoding/binary"
	"errors"
	"fmt"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Raw is a netfilter netlink socket spoken to directly, for requests the
// netlink libraries make one at a time or not at all: requests are
// encoded into one buffer (Begin, Attr, Nest, End, Finish) and sent in one
// write, and Exchange reads until each has ended. Not safe for concurrent
// use; the buffers are reused from one exchange to the next.
type Raw struct {
	fd      int
	out, in []byte
	queued  uint32 // requests in out
	msg     int    // start of the request being built
}

// OpenRaw opens a netfilter netlink socket in the calling thread's
// namespace; timeout bounds each send and receive (0: none).
func OpenRaw(timeout time.Duration) (*Raw, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_NETFILTER)
	if err != nil {
		return nil, fmt.Errorf("opening a netfilter netlink socket: %w", err)
	}
	if err := setup(fd, timeout); err != nil {
		_ = unix.Close(fd) // not opened: its error changes nothing
		return nil, err
	}
	return &Raw{fd: fd, in: make([]byte, 32<<10)}, nil
}

func setup(fd int, timeout time.Duration) error {
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("binding a netfilter netlink socket: %w", err)
	}
	if timeout <= 0 {
		return nil
	}
	tv := unix.NsecToTimeval(timeout.Nanoseconds())
	for _, opt := range []int{unix.SO_SNDTIMEO, unix.SO_RCVTIMEO} {
		if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, opt, &tv); err != nil {
			return fmt.Errorf("setting the netlink timeout: %w", err)
		}
	}
	return nil
}

// Close closes the socket.
func (r *Raw) Close() error { return unix.Close(r.fd) }

// Begin starts a request of a netfilter subsystem: its netlink header
// (numbered by its position in the exchange) and its nfgenmsg.
func (r *Raw) Begin(typ, flags uint16, family uint8) {
	r.msg = len(r.out)
	r.out = binary.NativeEndian.AppendUint32(r.out, 0) // length: Finish
	r.out = binary.NativeEndian.AppendUint16(r.out, typ)
	r.out = binary.NativeEndian.AppendUint16(r.out, unix.NLM_F_REQUEST|flags)
	r.out = binary.NativeEndian.AppendUint32(r.out, r.queued)
	r.out = binary.NativeEndian.AppendUint32(r.out, 0)
	r.out = append(r.out, family, unix.NFNETLINK_V0, 0, 0)
}

// Attr appends an attribute, padded to four bytes.
func (r *Raw) Attr(typ uint16, val []byte) {
	r.out = binary.NativeEndian.AppendUint16(r.out, uint16(4+len(val)))
	r.out = binary.NativeEndian.AppendUint16(r.out, typ)
	r.out = append(r.out, val...)
	for len(r.out)%4 != 0 {
		r.out = append(r.out, 0)
	}
}

// Nest starts a nested attribute; End closes it.
func (r *Raw) Nest(typ uint16) int {
	start := len(r.out)
	r.Attr(typ|unix.NLA_F_NESTED, nil)
	return start
}

// End sets the length of the nested attribute Nest started at start.
func (r *Raw) End(start int) {
	binary.NativeEndian.PutUint16(r.out[start:], uint16(len(r.out)-start))
}

// Finish ends the request Begin started.
func (r *Raw) Finish() {
	binary.NativeEndian.PutUint32(r.out[r.msg:], uint32(len(r.out)-r.msg))
	r.queued++
}

// Exchange writes the queued requests in one send and reads until each
// has ended — with an acknowledgement or an error (NLMSG_ERROR), or, for
// a dump, NLMSG_DONE — calling done with the request's number and errno
// (an error done returns ends the exchange). data, if not nil, gets every
// other message.
func (r *Raw) Exchange(data func(typ uint16, payload []byte), done func(seq uint32, errno syscall.Errno) error) error {
	defer func() { r.out, r.queued = r.out[:0], 0 }()
	if err := r.send(); err != nil {
		return fmt.Errorf("writing to netlink: %w", err)
	}
	for ended := uint32(0); ended < r.queued; {
		n, err := r.recv()
		if err != nil {
			return fmt.Errorf("reading from netlink: %w", err)
		}
		for b := r.in[:n]; len(b) >= unix.NLMSG_HDRLEN; {
			l := int(binary.NativeEndian.Uint32(b))
			if l < unix.NLMSG_HDRLEN || l > len(b) {
				return fmt.Errorf("malformed netlink message (length %d of %d)", l, len(b))
			}
			typ, seq, payload := binary.NativeEndian.Uint16(b[4:]), binary.NativeEndian.Uint32(b[8:]), b[unix.NLMSG_HDRLEN:l]
			b = b[min((l+3)&^3, len(b)):]
			var errno syscall.Errno
			switch typ {
			case unix.NLMSG_DONE:
			case unix.NLMSG_ERROR:
				if len(payload) < 4 {
					return errors.New("short netlink error message")
				}
				errno = syscall.Errno(-int32(binary.NativeEndian.Uint32(payload)))
			default:
				if data != nil {
					data(typ, payload)
				}
				continue
			}
			ended++
			if err := done(seq, errno); err != nil {
				return err
			}
		}
	}
	return nil
}

func (r *Raw) send() error { return Send(r.fd, r.out) }

func (r *Raw) recv() (int, error) { return Recv(r.fd, r.in, 0) }

// Send writes one netlink message or batch to the kernel, and Recv reads
// one datagram. Both first try without blocking, as a raw system call,
// which the Go scheduler does not see: the kernel handles a request while
// it is being sent, so its answer is there to be read. Only a call that
// would block (EAGAIN), or a large batch (the kernel may work on it for a
// while, and a raw call keeps its processor meanwhile), is made the
// ordinary way, which lets the runtime run other goroutines and is bounded
// by the socket's deadline. Every ordinary system call of a process whose
// processors were idle wakes the runtime's monitor thread (sysmon), which
// then polls every 20 µs until they are idle again; under a steady trickle
// of changes those wake-ups cost more than the requests.
func Send(fd int, b []byte) error {
	if len(b) <= quietMax {
		_, _, errno := syscall.RawSyscall6(unix.SYS_SENDTO, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(b))), uintptr(len(b)),
			unix.MSG_DONTWAIT, 0, 0) // no address: the socket's peer, the kernel
		if errno != unix.EAGAIN && errno != unix.EINTR {
			if errno != 0 {
				return errno
			}
			return nil
		}
	}
	for {
		err := unix.Sendto(fd, b, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK})
		if err != unix.EINTR {
			return err
		}
	}
}

// Recv reads one datagram into b; flags as for recvfrom(2). A call a
// signal interrupts (the runtime's preemption: a socket with a timeout is
// not restarted by the kernel) is made again.
func Recv(fd int, b []byte, flags int) (int, error) {
	n, _, errno := syscall.RawSyscall6(unix.SYS_RECVFROM, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(b))), uintptr(len(b)),
		uintptr(flags|unix.MSG_DONTWAIT), 0, 0)
	switch {
	case errno == 0:
		return int(n), nil
	case errno == unix.EAGAIN && flags&unix.MSG_DONTWAIT != 0:
		return 0, errno // the caller asked not to wait
	case errno != unix.EAGAIN && errno != unix.EINTR:
		return 0, errno
	}
	for {
		n, _, err := unix.Recvfrom(fd, b, flags)
		if err != unix.EINTR {
			return n, err
		}
	}
}

// quietMax is the largest batch Send writes with a raw call.
const quietMax = 64 << 10
