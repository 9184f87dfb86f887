// Package ifacemon watches interfaces appear, go up and down, and
// disappear, through a netlink subscription plus a full re-list at start
// and periodically. The dataplane runs two monitors: one for workload
// interfaces, one for the host's other interfaces (host endpoints); a
// Monitor's Wanted function says which. It reports state; it changes
// nothing. The host's addresses come from dataplane/hostaddrs.
//
// Ownership: each monitor owns the interfaces it last reported, on its
// own goroutine, and hands events to its channel. It opens netlink
// sockets to read and subscribe, never to write; deciding which
// interfaces are Ocelot's to program is the dataplane's.
package ifacemon
