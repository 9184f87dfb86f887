// Package nlsock opens the dataplane's netlink sockets, each with the
// deadline NetlinkTimeoutSecs on every send and receive, so that a kernel
// that stops answering fails a request instead of freezing the caller.
//
// It owns nothing: the caller owns and closes each handle it opens.
package nlsock
