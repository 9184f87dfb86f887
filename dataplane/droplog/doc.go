// Package droplog turns the policy denials the kernel logs to NFLOG into
// one structured log line each, naming the endpoint, the direction, what
// decided (a policy's or profile's rule, the end of a tier, the end of the
// profiles) and the packet's 5-tuple.
//
// The rules (dataplane/rules, under DropActionOverride LogAndDrop or
// LogAndAccept) hand each denial to an NFLOG group with a prefix in
// Felix's format that names the decision, each logging rule behind its
// own kernel rate limit. Reader reads that group over a netlink socket
// (NFLOG, nflog.go), resolves the prefix and the interface through the
// dataplane (Resolver), and writes lines within its own rate limit; what
// it does not write is counted (ocelot_drop_log_suppressed_total), so
// memory and log volume stay bounded whatever the traffic. The socket is
// behind Source, so the logic is unit-tested without root; the socket is
// tested against the kernel in a network namespace.
//
// Ownership: a Reader owns its socket and its rate limit's tokens, on its
// own goroutine; it reads the dataplane's state only through Resolver. It
// writes log lines and metrics, nothing to the kernel: the rules that
// feed the group are dataplane/rules'.
package droplog
