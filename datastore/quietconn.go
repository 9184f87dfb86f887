package datastore

import (
	"context"
	"io"
	"net"
	"os"
	"syscall"
	"unsafe"
)

// The etcd connections read their sockets with raw system calls.
//
// Every ordinary system call that a Go process makes after its processors
// were idle wakes the runtime's monitor thread (sysmon), which then polls
// every 20 µs until they are idle again. Under a steady trickle of watch
// events the agent is idle between events, so each event paid for that
// wake-up and those polls, a few context switches dearer than the event's
// own work on a virtual machine. A raw system call is not seen by the
// scheduler, so it wakes nothing; it is safe only for a call that cannot
// block, which a read of a non-blocking socket is. When there is nothing
// to read, the connection waits in the runtime's network poller as any
// other does.

// dialQuiet connects to an etcd member; grpc calls it for every connection.
func dialQuiet(ctx context.Context, addr string) (net.Conn, error) {
	c, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	tcp, ok := c.(*net.TCPConn)
	if !ok {
		return c, nil
	}
	rc, err := tcp.SyscallConn()
	if err != nil {
		return c, nil
	}
	return &quietConn{TCPConn: tcp, raw: rc}, nil
}

// quietConn is a TCP connection whose reads are raw system calls.
type quietConn struct {
	*net.TCPConn
	raw syscall.RawConn
}

func (c *quietConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	var n int
	var errno syscall.Errno
	err := c.raw.Read(func(fd uintptr) bool {
		for {
			r, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
			if e == syscall.EINTR {
				continue
			}
			n, errno = int(r), e
			return e != syscall.EAGAIN // false: wait until readable, then again
		}
	})
	switch {
	case err != nil: // closed, or past a deadline
		return 0, &net.OpError{Op: "read", Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
	case errno != 0:
		return 0, &net.OpError{Op: "read", Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: os.NewSyscallError("read", errno)}
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}
