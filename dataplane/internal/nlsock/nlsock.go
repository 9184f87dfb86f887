package nlsock

import (
	"fmt"
	"time"

	"github.com/vishvananda/netlink"
)

// Open opens a netlink socket of the given protocol (unix.NETLINK_ROUTE,
// unix.NETLINK_NETFILTER) in the calling thread's network namespace;
// timeout bounds each send and receive (0: netlink's default, none).
func Open(protocol int, timeout time.Duration) (*netlink.Handle, error) {
	h, err := netlink.NewHandle(protocol)
	if err != nil {
		return nil, fmt.Errorf("opening a netlink socket: %w", err)
	}
	if timeout > 0 {
		if err := h.SetSocketTimeout(timeout); err != nil {
			h.Close()
			return nil, fmt.Errorf("setting the netlink timeout: %w", err)
		}
	}
	return h, nil
}
