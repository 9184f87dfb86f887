// Package cidr parses the address notation Calico accepts wherever it
// takes a CIDR: a prefix ("198.18.0.0/24", masked to its network) or a bare
// address (a full-length prefix).
//
// Pure: no state, no I/O.
package cidr
