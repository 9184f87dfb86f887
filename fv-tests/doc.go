// Package fvtests holds Ocelot's functional tests: the real ocelot binary,
// one process per compute host, in a lab of network namespaces with a real
// etcd (lab/), checked with real TCP and ICMP. Every "must be blocked"
// check is paired with a "must connect" control in the same scenario.
//
// The tests need root; they run inside a network namespace of their own
// (netlab.Main) that becomes the lab's core router, and everything they
// create is removed when they end.
package fvtests
