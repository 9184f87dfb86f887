// Package nlsock opens the dataplane's netlink sockets, each with the
// deadline NetlinkTimeoutSecs on every send and receive, so that a kernel
// that stops answering fails a request instead of freezing the caller.
// Open gives a netlink library handle; OpenRaw a netfilter socket spoken
// to directly (Raw: requests encoded into one buffer, sent in one write,
// each read back to its acknowledgement), for what the libraries do one
// request at a time or not at all — the IP set writer's member lists and
// the conntrack peer record's look-ups. Raw tries each send and receive
// first as a raw, non-blocking system call, which does not wake the Go
// runtime's monitor thread; only one that would block is made the
// ordinary way, and only that one is bounded by the deadline.
//
// It owns nothing: the caller owns and closes each socket it opens.
package nlsock
