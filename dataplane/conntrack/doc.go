// Package conntrack forgets connection-tracking entries in batches. The
// dataplane says which flows no rule allows any more — every flow of an
// address, or the flows between an address and a network — and a
// Forgetter deletes them: requests that arrive within a short window
// (Window) are merged, and then one pass over the kernel's table deletes
// what any of them selects. A pass walks the whole table (the kernel
// walks every hash bucket of every namespace for a dump, whatever it
// returns), so one pass per window, not one per change, is what keeps
// churn cheap.
//
// A flow is matched by its two ends as the kernel tracks them: the
// original source (who opened it) and the reply source (who answers,
// after any DNAT). So a flow through a floating IP — original
// destination the floating IP, reply source the VM's own address — is a
// flow of the VM's address.
//
// Most passes are not needed at all: a pass whose batch only selects
// flows between local endpoints and single remote addresses is skipped
// when the kernel's record of workloads' peers (Peers; NftPeers keeps it
// in nftables tables "ocelot-peers") says none of those addresses had a
// flow with a workload. The Forgetter rebuilds the record when it starts
// and every RebuildEvery, and stops trusting it when it overflowed or
// cannot be read.
//
// The kernel is reached through the Table and Peers seams: Netlink is
// ctnetlink in the calling thread's namespace; unit tests give fakes.
//
// Ownership: the Forgetter owns the batch waiting for the next pass (under
// its mutex; Add never waits for the kernel) and the nftables tables
// "ocelot-peers" (NftPeers). It deletes only conntrack entries a batch
// selects, and never creates, changes or expects any; it decides nothing
// about which flows are stale (the dataplane's managers do).
package conntrack
