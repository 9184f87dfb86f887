// Package resource holds the Calico v3 resources Ocelot reads from etcd, as
// validated Go values, and the decoding that produces them from the JSON
// calicoctl and the Neutron driver write (docs/calico.md).
//
// Decode is the only entry point for stored bytes. It accepts compact and
// spaced JSON, ignores unknown fields, and validates the way libcalico-go
// does; a failure is an *Error naming the field and the rule broken, so the
// datastore can report the key and calc can fail closed.
//
// Everything is untrusted (validate.go): the key's namespace and name
// (CheckName), labels, interface names, MACs and addresses follow Calico's
// rules, so no text that reaches a chain name, a comment or a log line
// holds a space, a quote, a control character or anything outside ASCII;
// every size that drives work is bounded (docs/calico.md, "Names and
// limits"). Error messages quote values cut short and escaped. Keys are
// read literally (ParseKey): two paths never name one resource.
//
// Values are normalized on the way in: protocols, actions and ports are
// parsed, CIDRs become netip.Prefix, endpoint labels lose the reserved
// pcns./pcsa. prefixes, and label strings are interned (one copy of each
// distinct key and value however many endpoints carry it).
//
// The package is pure: no I/O.
package resource
