// Package rules renders Ocelot's desired state as chains of the neutral
// rule model (dataplane/ruleset): the static skeleton hooked into the
// kernel's chains, the dispatch chains that send each workload interface
// to its own chains (and drop any unknown one), the per-endpoint chains
// that walk tiers and profiles, and the policy and profile chains that
// hold the rules; for host endpoints (hostendpoints.go), the host
// interfaces' chains in filter, mangle and raw, their dispatch chains and
// the failsafe chains. It names the chains; backends render and write
// them.
//
// The chains are those Felix renders in iptables mode (docs/calico.md,
// "Felix's rendering"), rule for rule, so that rendered as iptables text
// their hash comments match Felix's; the tests check them against what
// Felix programmed on a real host. Known differences: no DSCP rule in
// mangle (no DSCP manager), and overflow blocks re-clear their scratch
// mark (Felix's S1 quirk is fixed).
//
// Under DropActionOverride the policy denials also log to NFLOG, under
// prefixes (DropRef) that name the deciding rule, or accept instead;
// Counts says which rules' counters count what policy decided.
//
// Pure: no I/O.
//
// The package owns no state beyond its configuration (Config): every
// function returns chains for the caller to program. It imports only
// contract and ruleset (internal/layers keeps it so): it must not know
// which backend renders the chains.
package rules
