// Package ipsets is the IP-set driver: it holds the desired sets of one IP
// family and brings the kernel in line, writing only the members that
// changed.
//
// Ownership: sets named cali4* (IPv4) or cali6* (IPv6), Felix's names, so a
// takeover from Felix keeps the sets it finds with the right content. Sets
// whose size limit changes, or whose kernel content cannot be read back,
// are rebuilt in a temporary set and swapped in atomically. Sets no longer
// wanted are destroyed only in ApplyDeletions, which the dataplane runs
// after iptables stopped referring to them.
//
// Changes are planned as typed operations (Op: create, add, del, swap,
// destroy) and written one of two ways: as "ipset restore -exist" text
// through a Runner, or, for small member changes of hash:net sets (a VM
// joining or leaving a group), straight to the kernel over Netlink — no
// process to start, so a join is enforced in well under a millisecond.
// NetlinkSocket writes each set's changes as one message listing all its
// members (the kernel looks a set up by name, comparing it with every
// set's, once per message) and all the messages of an apply in one send.
// Anything the netlink path cannot do, or any error on it, falls back to
// the restore (every operation is idempotent).
//
// The driver owns the desired sets of its family and its cached view of
// the kernel's; it is driven from the dataplane goroutine only. It never
// touches a set without its family's prefix, and knows nothing of
// policies or selectors (sets are named by calc's ID).
package ipsets
