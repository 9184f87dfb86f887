// Package hostaddrs learns which addresses the host itself uses: the
// addresses on its interfaces and the gateways of its routes, each with
// the interface it is on. It lists them at start, again shortly after
// the kernel reports an address or route change (a netlink
// subscription), and periodically, and reports a complete snapshot
// whenever it differs from the last. It reports; it changes nothing.
//
// The dataplane uses it to refuse an endpoint address that would route
// the host's own traffic (to its gateway, to etcd, to itself) into a VM.
//
// Ownership: a Watcher owns only the snapshot it last reported, on its own
// goroutine. It opens netlink sockets to read and subscribe, never to
// write.
package hostaddrs
