// Package iptables is the table driver: it holds the desired chains of one
// table of one IP family and brings the kernel in line with minimal writes.
//
// Each rule carries a hash comment ("cali:<16 chars>") computed exactly as
// Felix computes it: SHA-224 chained over the chain name and the rules
// before it. A rule that is unchanged has an unchanged hash, so Apply reads
// the table back with iptables-save, compares hash lists, and rewrites only
// chains whose lists differ, in one iptables-restore --noflush per table.
// Felix's own rules hash the same, so taking over a host from Felix writes
// nothing for the chains both render alike.
//
// Ownership: chains named cali-* and rules with a cali: hash comment in the
// kernel's chains (INPUT, FORWARD, ...). Stale cali-* chains are flushed
// and deleted; foreign rules are never touched. Hooks in kernel chains are
// kept at the top (insert mode) or below foreign rules (append mode), with
// always-appended rules last.
//
// The package runs the iptables binaries of the chosen backend (legacy or
// nft) and nothing else; it knows nothing of policies or endpoints.
package iptables
