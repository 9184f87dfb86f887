package selector

import (
	"sort"
	"strings"
)

// node is one element of a parsed selector.
type node interface {
	eval(labels map[string]string) bool
	write(b *strings.Builder)
	// required returns the label-key alternatives the node implies: each
	// inner slice lists keys of which a matching label map holds at least
	// one. nil means the node implies nothing usable.
	required() [][]string
	// mapKeys returns a copy with every label key passed through f.
	mapKeys(f func(string) string) node
}

type allNode struct{}

func (allNode) eval(map[string]string) bool        { return true }
func (allNode) write(b *strings.Builder)           { b.WriteString("all()") }
func (allNode) required() [][]string               { return nil }
func (n allNode) mapKeys(func(string) string) node { return n }

// globalNode evaluates true; its meaning comes from namespace rewriting.
type globalNode struct{}

func (globalNode) eval(map[string]string) bool        { return true }
func (globalNode) write(b *strings.Builder)           { b.WriteString("global()") }
func (globalNode) required() [][]string               { return nil }
func (n globalNode) mapKeys(func(string) string) node { return n }

type hasNode struct{ key string }

func (n hasNode) eval(l map[string]string) bool { _, ok := l[n.key]; return ok }
func (n hasNode) write(b *strings.Builder) {
	b.WriteString("has(")
	b.WriteString(n.key)
	b.WriteByte(')')
}
func (n hasNode) required() [][]string               { return [][]string{{n.key}} }
func (n hasNode) mapKeys(f func(string) string) node { return hasNode{key: f(n.key)} }

// writeLiteral quotes with " unless the value contains ", then with '.
func writeLiteral(b *strings.Builder, v string) {
	q := byte('"')
	if strings.IndexByte(v, '"') >= 0 {
		q = '\''
	}
	b.WriteByte(q)
	b.WriteString(v)
	b.WriteByte(q)
}

func writeComparison(b *strings.Builder, key, op, value string) {
	b.WriteString(key)
	b.WriteString(op)
	writeLiteral(b, value)
}

type eqNode struct{ key, value string }

func (n eqNode) eval(l map[string]string) bool {
	v, ok := l[n.key]
	return ok && v == n.value
}
func (n eqNode) write(b *strings.Builder)           { writeComparison(b, n.key, " == ", n.value) }
func (n eqNode) required() [][]string               { return [][]string{{n.key}} }
func (n eqNode) mapKeys(f func(string) string) node { return eqNode{key: f(n.key), value: n.value} }

type neNode struct{ key, value string }

func (n neNode) eval(l map[string]string) bool {
	v, ok := l[n.key]
	return !ok || v != n.value
}
func (n neNode) write(b *strings.Builder)           { writeComparison(b, n.key, " != ", n.value) }
func (n neNode) required() [][]string               { return nil }
func (n neNode) mapKeys(f func(string) string) node { return neNode{key: f(n.key), value: n.value} }

type containsNode struct{ key, value string }

func (n containsNode) eval(l map[string]string) bool {
	v, ok := l[n.key]
	return ok && strings.Contains(v, n.value)
}
func (n containsNode) write(b *strings.Builder) { writeComparison(b, n.key, " contains ", n.value) }
func (n containsNode) required() [][]string     { return [][]string{{n.key}} }
func (n containsNode) mapKeys(f func(string) string) node {
	return containsNode{key: f(n.key), value: n.value}
}

type startsWithNode struct{ key, value string }

func (n startsWithNode) eval(l map[string]string) bool {
	v, ok := l[n.key]
	return ok && strings.HasPrefix(v, n.value)
}
func (n startsWithNode) write(b *strings.Builder) {
	writeComparison(b, n.key, " starts with ", n.value)
}
func (n startsWithNode) required() [][]string { return [][]string{{n.key}} }
func (n startsWithNode) mapKeys(f func(string) string) node {
	return startsWithNode{key: f(n.key), value: n.value}
}

type endsWithNode struct{ key, value string }

func (n endsWithNode) eval(l map[string]string) bool {
	v, ok := l[n.key]
	return ok && strings.HasSuffix(v, n.value)
}
func (n endsWithNode) write(b *strings.Builder) { writeComparison(b, n.key, " ends with ", n.value) }
func (n endsWithNode) required() [][]string     { return [][]string{{n.key}} }
func (n endsWithNode) mapKeys(f func(string) string) node {
	return endsWithNode{key: f(n.key), value: n.value}
}

// inNode holds its values sorted and deduplicated.
type inNode struct {
	key    string
	values []string
}

func (n *inNode) contains(v string) bool {
	if len(n.values) <= 8 {
		for _, x := range n.values {
			if x == v {
				return true
			}
		}
		return false
	}
	i := sort.SearchStrings(n.values, v)
	return i < len(n.values) && n.values[i] == v
}

func (n *inNode) eval(l map[string]string) bool {
	v, ok := l[n.key]
	return ok && n.contains(v)
}

func (n *inNode) writeSet(b *strings.Builder, op string) {
	b.WriteString(n.key)
	b.WriteString(op)
	b.WriteByte('{')
	for i, v := range n.values {
		if i > 0 {
			b.WriteString(", ")
		}
		writeLiteral(b, v)
	}
	b.WriteByte('}')
}

func (n *inNode) write(b *strings.Builder) { n.writeSet(b, " in ") }
func (n *inNode) required() [][]string     { return [][]string{{n.key}} }
func (n *inNode) mapKeys(f func(string) string) node {
	return &inNode{key: f(n.key), values: n.values}
}

type notInNode struct{ in inNode }

func (n *notInNode) eval(l map[string]string) bool {
	v, ok := l[n.in.key]
	return !ok || !n.in.contains(v)
}
func (n *notInNode) write(b *strings.Builder) { n.in.writeSet(b, " not in ") }
func (n *notInNode) required() [][]string     { return nil }
func (n *notInNode) mapKeys(f func(string) string) node {
	return &notInNode{inNode{key: f(n.in.key), values: n.in.values}}
}

type notNode struct{ op node }

func (n *notNode) eval(l map[string]string) bool { return !n.op.eval(l) }
func (n *notNode) write(b *strings.Builder) {
	b.WriteByte('!')
	n.op.write(b)
}
func (n *notNode) required() [][]string               { return nil }
func (n *notNode) mapKeys(f func(string) string) node { return &notNode{op: n.op.mapKeys(f)} }

type andNode struct{ ops []node }

func (n *andNode) eval(l map[string]string) bool {
	for _, op := range n.ops {
		if !op.eval(l) {
			return false
		}
	}
	return true
}

func writeGroup(b *strings.Builder, ops []node, sep string) {
	b.WriteByte('(')
	for i, op := range ops {
		if i > 0 {
			b.WriteString(sep)
		}
		op.write(b)
	}
	b.WriteByte(')')
}

func (n *andNode) write(b *strings.Builder) { writeGroup(b, n.ops, " && ") }

// required: every operand must hold, so each operand's alternatives are
// alternatives of the whole.
func (n *andNode) required() [][]string {
	var out [][]string
	for _, op := range n.ops {
		out = append(out, op.required()...)
	}
	return out
}

func (n *andNode) mapKeys(f func(string) string) node {
	ops := make([]node, len(n.ops))
	for i, op := range n.ops {
		ops[i] = op.mapKeys(f)
	}
	return &andNode{ops: ops}
}

type orNode struct{ ops []node }

func (n *orNode) eval(l map[string]string) bool {
	for _, op := range n.ops {
		if op.eval(l) {
			return true
		}
	}
	return false
}

func (n *orNode) write(b *strings.Builder) { writeGroup(b, n.ops, " || ") }

// required: one operand must hold, so a key set is implied only when every
// operand implies one; their union (taking each operand's narrowest
// alternative) is the single alternative of the whole.
func (n *orNode) required() [][]string {
	var union []string
	for _, op := range n.ops {
		alts := op.required()
		if len(alts) == 0 {
			return nil
		}
		best := alts[0]
		for _, a := range alts[1:] {
			if len(a) < len(best) {
				best = a
			}
		}
		union = append(union, best...)
	}
	sort.Strings(union)
	out := union[:0]
	for i, k := range union {
		if i == 0 || k != union[i-1] {
			out = append(out, k)
		}
	}
	return [][]string{out}
}

func (n *orNode) mapKeys(f func(string) string) node {
	ops := make([]node, len(n.ops))
	for i, op := range n.ops {
		ops[i] = op.mapKeys(f)
	}
	return &orNode{ops: ops}
}
