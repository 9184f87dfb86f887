package livemigration

import (
	"net/netip"
	"testing"
	"time"

	"ocelot/internal/netlab"
)

func TestMain(m *testing.M) { netlab.Main(m) }

// The real capture, on a veth pair in the test's namespace: it sees the
// GARP and the RARP the other end sends, as incoming frames, and nothing
// else (an IPv4 frame is filtered in the kernel); Close wakes a reader.
func TestListenPacket(t *testing.T) {
	netlab.Require(t)
	netlab.Run(t, "ip", "link", "add", "lmcap0", "type", "veth", "peer", "name", "lmcap1")
	t.Cleanup(func() { netlab.Try("ip", "link", "del", "lmcap0") })
	netlab.Run(t, "ip", "link", "set", "lmcap0", "up")
	netlab.Run(t, "ip", "link", "set", "lmcap1", "up")
	c, err := ListenPacket("lmcap0")
	if err != nil {
		t.Fatal(err)
	}
	frames := make(chan []byte, 8)
	go func() {
		buf := make([]byte, 128)
		for {
			n, incoming, err := c.Next(buf)
			if err != nil {
				close(frames)
				return
			}
			if incoming {
				frames <- append([]byte(nil), buf[:n]...)
			}
		}
	}()
	if err := netlab.SendFrame("lmcap1", append(ether(0x0800), make([]byte, 28)...)); err != nil {
		t.Fatal(err)
	}
	if err := netlab.SendGARP(nil, "lmcap1", netip.MustParseAddr("198.18.1.5")); err != nil {
		t.Fatal(err)
	}
	if err := netlab.SendFrame("lmcap1", rarp); err != nil {
		t.Fatal(err)
	}
	for i, want := range []uint16{etherARP, etherRARP} {
		select {
		case f := <-frames:
			if got := uint16(f[12])<<8 | uint16(f[13]); got != want || !IsAnnouncement(f) {
				t.Errorf("frame %d: EtherType %#x (want %#x), announcement %v", i, got, want, IsAnnouncement(f))
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("frame %d not captured", i)
		}
	}
	c.Close()
	select {
	case _, open := <-frames:
		if open {
			t.Error("a frame that is no ARP or RARP was captured")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not wake the reader")
	}
	if _, err := ListenPacket("lmcap-none"); err == nil {
		t.Error("a capture on a missing interface opened")
	}
}
