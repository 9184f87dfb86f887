// Package nftables is the native nftables backend: it renders the neutral
// rule model (dataplane/ruleset) as nftables expressions and keeps one
// table per IP family, "ip calico" and "ip6 calico" (Felix's), in line with
// the desired state over netlink (github.com/google/nftables).
//
// Naming is Felix's, so an operator who knows Felix's nftables mode finds
// what they expect: the iptables tables are layers of the one nftables
// table, chain "cali-FORWARD" of filter is "filter-cali-FORWARD", the
// kernel's chains are base chains ("filter-FORWARD", hooked at iptables'
// priorities), sets are "cali40s-…" (Felix's ipset names with ':' as '-'),
// the workload dispatch chains look the interface up in verdict maps of
// their own name, and every rule's comment starts "cali:<hash>;".
//
// Writes are incremental transactions (Table.Apply): a policy change
// flushes and refills only its chain, a membership change only adds and
// deletes set elements, an endpoint change only its chains and map
// elements; each is one netlink batch the kernel applies whole or not at
// all. The driver encodes the batch itself (batch.go: the messages nft
// sends, checked against the library's encoding) into one buffer, and
// only the batch's last message asks for an acknowledgement: the kernel
// reports each message it refuses anyway, and a reply (and an echo) per
// rule cost a cold start more than the kernel's own work. The rules are
// read back (hashes, counters) in one dump of the table on that socket;
// chains and sets are read through github.com/google/nftables. The table keeps each rule as its
// hash and its expressions already encoded (the bytes the hash was taken
// over), not as expression trees; a rule that looks up an anonymous set
// (a port list) keeps its expressions, as each batch names the set anew.
// A hash:net set is an interval set, which refuses overlapping
// elements: it holds the members no other member contains.
//
// Ownership is by table: everything in "calico" is Ocelot's, so a
// takeover (from Felix's nftables mode, or a switch from Ocelot's own
// iptables mode) re-reads the table, rewrites what differs and deletes
// what is not wanted, in one transaction. A write that fails is retried
// after a fresh read; if that keeps failing, the table is rebuilt whole in
// one transaction, which packets see as a single switch. Drift made by
// others is repaired at the periodic re-read (NftablesRefreshInterval).
//
// The kernel is behind the Runner seam (NetlinkRunner; unit tests use
// dataplane/internal/fakekernel). Metrics are Felix's felix_nft_* names,
// registered on the Registerer given to NewMetrics.
package nftables
