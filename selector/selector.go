package selector

import (
	"crypto/sha256"
	"encoding/base64"
	"slices"
	"strings"
)

// Selector is a parsed selector. It is immutable and safe to share.
type Selector struct {
	root node
	str  string // canonical form
	id   string // unique ID, computed with the canonical form
}

// Parse parses a selector. The empty selector (or only spaces) is all().
func Parse(s string) (*Selector, error) {
	root, err := parse(s)
	if err != nil {
		return nil, err
	}
	return newSelector(root), nil
}

// MustParse is Parse for selectors known to be valid; it panics otherwise.
func MustParse(s string) *Selector {
	sel, err := Parse(s)
	if err != nil {
		panic(err)
	}
	return sel
}

func newSelector(root node) *Selector {
	var b strings.Builder
	root.write(&b)
	str := b.String()
	return &Selector{root: root, str: str, id: MakeUniqueID("s", str)}
}

// All is the selector that matches everything.
var All = newSelector(allNode{})

// MakeUniqueID returns prefix + ":" + base64url_nopad(SHA-224(prefix + ":" + s)),
// Calico's scheme for set and selector IDs.
func MakeUniqueID(prefix, s string) string {
	h := sha256.Sum224([]byte(prefix + ":" + s))
	return prefix + ":" + base64.RawURLEncoding.EncodeToString(h[:])
}

// Evaluate reports whether labels match the selector.
func (s *Selector) Evaluate(labels map[string]string) bool { return s.root.eval(labels) }

// String returns the canonical form.
func (s *Selector) String() string { return s.str }

// UniqueID returns Calico's ID for the selector: "s:" plus the unpadded
// base64url SHA-224 of "s:" + canonical form.
func (s *Selector) UniqueID() string { return s.id }

// RequiredLabels lists what any label map the selector matches must hold:
// each inner slice is a set of label keys of which a matching map has at
// least one. Every alternative is independently necessary, so an index may
// use whichever is cheapest. An empty result means no label is required
// (all(), negations, !=, not in) and every item is a candidate.
func (s *Selector) RequiredLabels() [][]string { return s.root.required() }

// IsAll reports whether the selector is all() (or empty).
func (s *Selector) IsAll() bool {
	_, ok := s.root.(allNode)
	return ok
}

// IsGlobal reports whether the selector is exactly global().
func (s *Selector) IsGlobal() bool {
	_, ok := s.root.(globalNode)
	return ok
}

// UsesGlobal reports whether global() occurs anywhere in the selector
// (found on the syntax tree, so a label value that reads "global()" does
// not count).
func (s *Selector) UsesGlobal() bool { return usesGlobal(s.root) }

func usesGlobal(n node) bool {
	switch x := n.(type) {
	case globalNode:
		return true
	case *notNode:
		return usesGlobal(x.op)
	case *andNode:
		return slices.ContainsFunc(x.ops, usesGlobal)
	case *orNode:
		return slices.ContainsFunc(x.ops, usesGlobal)
	}
	return false
}

// And returns the selector (a && b), parenthesised as Calico composes it
// from strings: "(a) && (b)" parses to an && group of the two operands.
func And(a, b *Selector) *Selector {
	return newSelector(&andNode{ops: []node{a.root, b.root}})
}

// Not returns the selector !(s).
func Not(s *Selector) *Selector { return newSelector(negate(s.root)) }
