// Package iptables is the table driver: it holds the desired chains of
// the four tables of one IP family (Tables) and brings the kernel in line
// with minimal writes.
//
// Each rule carries a hash comment ("cali:<16 chars>") computed exactly as
// Felix computes it: SHA-224 chained over the chain name and the rules
// before it. A rule that is unchanged has an unchanged hash, so Apply reads
// the tables back with one iptables-save, compares hash lists, and
// rewrites only chains whose lists differ, in one iptables-restore
// --noflush for every table that changed. Felix's own rules hash the same,
// so taking over a host from Felix writes nothing for the chains both
// render alike.
//
// Ownership: chains named cali-* (and Felix's historic prefixes) and rules
// with a cali: hash comment in the kernel's chains (INPUT, FORWARD, ...).
// Stale owned chains are flushed and deleted; foreign rules are never
// touched. Hooks in kernel chains are kept at the top (insert mode) or
// below foreign rules (append mode), with always-appended rules last.
//
// One bad object cannot stop the rest: when a restore fails twice, the
// tables are written one at a time and what the kernel refuses is found
// (by the line the tool names, or by bisection) and held back — a chain
// only workloads reach is written as a drop, any other keeps its kernel
// version — while everything else is written (isolate.go; Refused reports
// it). The writer refuses a script with a control character before it
// runs.
//
// The save and restore tools are reached through the Runner seam:
// Commands runs the chosen backend's binaries (legacy or nft); unit tests
// give a fake. The package knows nothing of policies or endpoints. Its
// metrics (Felix's felix_iptables_* names) are registered on the
// Registerer given to NewMetrics.
package iptables
