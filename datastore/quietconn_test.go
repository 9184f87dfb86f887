package datastore

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"
)

// A quiet connection reads what the peer wrote, waits when there is
// nothing yet, ends with io.EOF when the peer closes, and honours read
// deadlines as a net.Conn must (gRPC's TLS handshake sets one).
func TestQuietConnReads(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	c, err := dialQuiet(context.Background(), ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, ok := c.(*quietConn); !ok {
		t.Fatalf("dialQuiet gave a %T, not a quiet connection", c)
	}
	peer := <-accepted
	if peer == nil {
		t.Fatal("accept failed")
	}

	// Nothing to read yet: the read waits, and a deadline ends the wait.
	if err := c.SetReadDeadline(time.Now().Add(50 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	var ne net.Error
	if _, err := c.Read(make([]byte, 8)); !errors.As(err, &ne) || !ne.Timeout() || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read past the deadline: %v, want a timeout", err)
	}
	if err := c.SetReadDeadline(time.Time{}); err != nil {
		t.Fatal(err)
	}

	// Data written later arrives whole, through the waits in between.
	go func() {
		time.Sleep(20 * time.Millisecond)
		_, _ = peer.Write([]byte("watch "))
		time.Sleep(20 * time.Millisecond)
		_, _ = peer.Write([]byte("event"))
		peer.Close()
	}()
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("reading to the end: %v", err)
	}
	if string(got) != "watch event" {
		t.Fatalf("read %q, want %q", got, "watch event")
	}
	if n, err := c.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Fatalf("after the peer closed: %d, %v; want 0, EOF", n, err)
	}

	// A closed connection says so.
	c.Close()
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("read of a closed connection: %v, want net.ErrClosed", err)
	}
}
