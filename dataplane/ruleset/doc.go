// Package ruleset is the backend-neutral rule model: what the dataplane
// enforces, said once, for every backend to render. A Chain is a named
// list of Rules; a Rule is a conjunction of match criteria (Match), an
// Action and comments. Criteria and actions are closed sets of plain
// types (this package's), so a renderer is one type switch per rule part
// and panics on a kind it does not know — a renderer that falls behind
// the model fails in its tests, it does not silently drop a match.
//
// dataplane/rules produces these chains; dataplane/iptables renders them
// as iptables-restore text (and hashes that text as Felix does). A second
// backend (nftables) renders the same chains, so the two cannot drift in
// meaning. What a criterion means is documented on its type; how it is
// written is the renderer's business. IP sets are named by their calc ID:
// each backend names its kernel sets.
//
// Pure data, no I/O; it imports only contract (for ports, protocols and
// ICMP matches).
package ruleset
