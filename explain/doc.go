// Package explain answers an operator's two questions about this host's
// enforcement: what applies to a local endpoint (its labels and region
// namespace, the tiers and policies in force in order with their rules,
// the IP sets they use with their sizes, and the chains they render to),
// and what happens to a flow (the decision the kernel takes, step by
// step, naming the policy and rule that decide, or the default drop).
//
// It evaluates the agent's own state — the messages the dataplane holds:
// the policy rules as calc sent them, the IP set members as sent — with
// its own reading of Calico's semantics (Evaluate, flow.go). Nothing that
// renders rules shares that code, so an answer is an independent check of
// the render: the functional tests compare it with real traffic.
//
// The dataplane implements State and serves queries between applies; the
// agent serves them on a local unix socket (cmd/ocelot, "ocelot explain").
// Answers are bounded (MaxSteps, MaxRules) and marked Truncated when cut.
//
// Pure: no I/O. It imports only contract.
package explain
