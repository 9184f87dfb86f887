// Package selector implements Calico's label selector language: parsing,
// evaluation against label maps, the canonical string form, the unique ID
// that IP-set names derive from, and the label keys a selector requires
// (used by selector/labelindex to avoid evaluating every selector on every
// change).
//
// The grammar is that of libcalico-go's selector parser (docs/calico.md,
// "Selectors"): all(), global(), has(k), ==, !=, in, not in, contains, starts with,
// ends with, !, &&, || and parentheses. The canonical form wraps every &&/||
// group in parentheses, prints literals in double quotes unless they contain
// one, and prints sets sorted and deduplicated, so that equivalent spellings
// share one ID:
//
//	UniqueID = "s:" + base64url_nopad(SHA-224("s:" + canonical))
//
// Parse is safe on untrusted input: selectors longer than MaxLength or
// nested deeper than MaxDepth are errors, checked before the parser
// recurses, so every later walk of the tree is shallow too. Error messages
// quote at most the start of the input.
//
// scope.go composes the selectors of policy rules with their namespace
// (docs/calico.md, "Selectors and namespace scoping"), which is how a namespaceSelector: all() rule in
// one region's policy reaches endpoints of every region.
//
// The package is pure: no I/O, no global state beyond constant tables.
package selector
