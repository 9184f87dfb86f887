package selector

import (
	"fmt"
	"sort"
)

// ParseError reports where a selector stops making sense.
type ParseError struct {
	Input string
	Pos   int // byte offset
	Msg   string
}

func (e *ParseError) Error() string {
	return fmt.Sprintf("invalid selector %q at position %d: %s", e.Input, e.Pos, e.Msg)
}

// parser is a recursive-descent parser over the lexer's tokens, with one
// token of look-ahead.
type parser struct {
	lex *lexer
	tok token
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
	return n, nil
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
