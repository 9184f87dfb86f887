package selector

import (
	"fmt"
	"sort"
	"strconv"
)

// ParseError reports where a selector stops making sense.
type ParseError struct {
	Input string
	Pos   int // byte offset
	Msg   string
}

func (e *ParseError) Error() string {
	return fmt.Sprintf("invalid selector %s at position %d: %s", quoteInput(e.Input), e.Pos, e.Msg)
}

// quoteInput quotes a selector for an error message, cut short so that a
// huge input cannot make a huge log line.
func quoteInput(s string) string {
	const show = 128
	if len(s) <= show {
		return strconv.Quote(s)
	}
	return fmt.Sprintf("%s... (%d bytes)", strconv.Quote(s[:show]), len(s))
}

// Limits on what Parse accepts. Input size drives parsing, hashing and
// every evaluation, and nesting drives recursion, so both are bounded
// before any work that depends on them. Real selectors are a few hundred
// bytes deep at most a handful of levels; the limits leave room for large
// generated "in" sets (about 1,500 UUIDs) and any nesting a person writes.
const (
	// MaxLength is the longest selector, in bytes.
	MaxLength = 64 << 10
	// MaxDepth is the deepest nesting: of parentheses in the input, and of
	// operators (&&, ||, !) in the syntax tree. Bounding both keeps every
	// recursive walk of the tree (evaluation, printing, required labels)
	// shallow, and the canonical form of an accepted selector, which
	// prints one pair of parentheses per &&/|| level, parses again.
	MaxDepth = 64
)

// parser is a recursive-descent parser over the lexer's tokens, with one
// token of look-ahead. Recursion happens only at '(' and is bounded by
// MaxDepth before it descends.
type parser struct {
	lex   *lexer
	tok   token
	depth int // open parentheses
}

func (p *parser) advance() error {
	t, err := p.lex.next()
	p.tok = t
	return err
}

func (p *parser) unexpected(expected string) error {
	found := p.tok.kind.String()
	if p.tok.kind == tokLabel {
		found = fmt.Sprintf("label %q", p.tok.value)
	} else if p.tok.kind == tokString {
		found = fmt.Sprintf("string %q", p.tok.value)
	}
	return p.lex.errorf(p.tok.pos, "expected %s, found %s", expected, found)
}

// parse reads a whole selector; the empty selector is all().
func parse(in string) (node, error) {
	if len(in) > MaxLength {
		return nil, &ParseError{Input: in, Pos: MaxLength, Msg: fmt.Sprintf("selector is %d bytes long; the limit is %d", len(in), MaxLength)}
	}
	p := &parser{lex: &lexer{in: in}}
	if err := p.advance(); err != nil {
		return nil, err
	}
	if p.tok.kind == tokEOF {
		return allNode{}, nil
	}
	n, err := p.parseOr()
	if err != nil {
		return nil, err
	}
	if p.tok.kind != tokEOF {
		return nil, p.unexpected("'&&', '||' or the end of the selector")
	}
	if d := depth(n); d > MaxDepth {
		return nil, p.lex.errorf(0, "operators are nested %d deep; the limit is %d", d, MaxDepth)
	}
	return n, nil
}

// depth is the nesting of operator nodes in a tree. Its recursion is
// bounded: the parser admits at most MaxDepth parentheses, and each level
// holds at most an || over an && over a !.
func depth(n node) int {
	var ops []node
	switch x := n.(type) {
	case *notNode:
		ops = []node{x.op}
	case *andNode:
		ops = x.ops
	case *orNode:
		ops = x.ops
	default:
		return 0
	}
	d := 0
	for _, op := range ops {
		d = max(d, depth(op))
	}
	return d + 1
}

func (p *parser) parseOr() (node, error) {
	first, err := p.parseAnd()
	if err != nil {
		return nil, err
	}
	if p.tok.kind != tokOr {
		return first, nil
	}
	or := &orNode{ops: []node{first}}
	for p.tok.kind == tokOr {
		if err := p.advance(); err != nil {
			return nil, err
		}
		n, err := p.parseAnd()
		if err != nil {
			return nil, err
		}
		or.ops = append(or.ops, n)
	}
	return or, nil
}

func (p *parser) parseAnd() (node, error) {
	first, err := p.parseUnary()
	if err != nil {
		return nil, err
	}
	if p.tok.kind != tokAnd {
		return first, nil
	}
	and := &andNode{ops: []node{first}}
	for p.tok.kind == tokAnd {
		if err := p.advance(); err != nil {
			return nil, err
		}
		n, err := p.parseUnary()
		if err != nil {
			return nil, err
		}
		and.ops = append(and.ops, n)
	}
	return and, nil
}

// parseUnary reads any number of '!' then a primary; an odd count negates.
func (p *parser) parseUnary() (node, error) {
	nots := 0
	for p.tok.kind == tokNot {
		nots++
		if err := p.advance(); err != nil {
			return nil, err
		}
	}
	n, err := p.parsePrimary()
	if err != nil {
		return nil, err
	}
	if nots%2 == 1 {
		return negate(n), nil
	}
	return n, nil
}

// negate returns !n, collapsing a double negation: "!(!x)" is x. Calico
// keeps "!!x" there, whose canonical form re-parses to x with another ID;
// collapsing keeps Parse(String(s)) stable.
func negate(n node) node {
	if inner, ok := n.(*notNode); ok {
		return inner.op
	}
	return &notNode{op: n}
}

func (p *parser) parsePrimary() (node, error) {
	tok := p.tok
	switch tok.kind {
	case tokHas:
		return hasNode{key: tok.value}, p.advance()
	case tokAll:
		return allNode{}, p.advance()
	case tokGlobal:
		return globalNode{}, p.advance()
	case tokLParen:
		if p.depth == MaxDepth {
			return nil, p.lex.errorf(tok.pos, "parentheses are nested more than %d deep", MaxDepth)
		}
		p.depth++
		if err := p.advance(); err != nil {
			return nil, err
		}
		n, err := p.parseOr()
		if err != nil {
			return nil, err
		}
		if p.tok.kind != tokRParen {
			return nil, p.unexpected("')'")
		}
		p.depth--
		return n, p.advance()
	case tokLabel:
		if err := p.advance(); err != nil {
			return nil, err
		}
		return p.parseComparison(tok.value)
	}
	return nil, p.unexpected("a label, has(...), all(), global(), '!' or '('")
}

// parseComparison reads the operator and operand after a label.
func (p *parser) parseComparison(key string) (node, error) {
	op := p.tok.kind
	switch op {
	case tokEq, tokNe, tokContains, tokStartsWith, tokEndsWith:
		if err := p.advance(); err != nil {
			return nil, err
		}
		if p.tok.kind != tokString {
			return nil, p.unexpected("a quoted string after " + op.String())
		}
		v := p.tok.value
		if err := p.advance(); err != nil {
			return nil, err
		}
		switch op {
		case tokEq:
			return eqNode{key: key, value: v}, nil
		case tokNe:
			return neNode{key: key, value: v}, nil
		case tokContains:
			return containsNode{key: key, value: v}, nil
		case tokStartsWith:
			return startsWithNode{key: key, value: v}, nil
		default:
			return endsWithNode{key: key, value: v}, nil
		}
	case tokIn, tokNotIn:
		if err := p.advance(); err != nil {
			return nil, err
		}
		values, err := p.parseSet()
		if err != nil {
			return nil, err
		}
		if op == tokIn {
			return &inNode{key: key, values: values}, nil
		}
		return &notInNode{inNode{key: key, values: values}}, nil
	}
	return nil, p.unexpected(fmt.Sprintf("an operator (==, !=, in, not in, contains, starts with, ends with) after label %q", key))
}

// parseSet reads { "a", "b", } and returns the values sorted and deduplicated.
func (p *parser) parseSet() ([]string, error) {
	if p.tok.kind != tokLBrace {
		return nil, p.unexpected("'{'")
	}
	if err := p.advance(); err != nil {
		return nil, err
	}
	var values []string
	for p.tok.kind != tokRBrace {
		if p.tok.kind != tokString {
			return nil, p.unexpected("a quoted string or '}'")
		}
		values = append(values, p.tok.value)
		if err := p.advance(); err != nil {
			return nil, err
		}
		if p.tok.kind == tokComma {
			if err := p.advance(); err != nil {
				return nil, err
			}
		} else if p.tok.kind != tokRBrace {
			return nil, p.unexpected("',' or '}'")
		}
	}
	if err := p.advance(); err != nil {
		return nil, err
	}
	sort.Strings(values)
	out := values[:0]
	for i, v := range values {
		if i == 0 || v != values[i-1] {
			out = append(out, v)
		}
	}
	return out, nil
}
