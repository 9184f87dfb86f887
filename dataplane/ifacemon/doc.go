// Package ifacemon watches workload interfaces (names with one of the
// configured prefixes, less the excluded ones) appear, go up and down,
// and disappear, through a netlink subscription plus a full re-list at
// start and periodically. HostMonitor (hosts.go) watches the other
// interfaces the same way, with their addresses, for host endpoints. It
// reports state; it changes nothing.
//
// Ownership: each monitor owns the interfaces it last reported, on its
// own goroutine, and hands events to its channel. It opens netlink
// sockets to read and subscribe, never to write; deciding which
// interfaces are Ocelot's to program is the dataplane's.
package ifacemon
