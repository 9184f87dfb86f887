// Package fakekernel is an in-memory kernel for the dataplane's unit
// tests, which run as a normal user: iptables tables per family (driven by
// iptables-save and iptables-restore text), IP sets (ipset save and
// restore text, and netlink), links with their addresses, routes,
// neighbours, sysctls, conntrack flows (with their reply direction, so a
// floating IP's flow looks as the kernel tracks it), packet captures,
// traffic control, and nftables tables (a transaction of typed ops).
//
// It enforces the kernel's rules that the dataplane's ordering relies on:
// a rule cannot jump to a chain or match a set that does not exist; a
// chain cannot be deleted while it has rules or a rule jumps to it; a set
// cannot be destroyed while a rule matches it; a set only takes members
// of its family. A test that applies in the wrong order fails here as it
// would on a host. Every change is written to a journal, so tests can
// check the order of writes too.
//
// Test code only: it touches no real kernel state, and the dataplane's
// production code must never import it.
package fakekernel
