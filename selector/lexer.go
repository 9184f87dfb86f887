package selector

import (
	"fmt"
	"strings"
)

type tokenKind int

const (
	tokEOF tokenKind = iota
	tokLabel
	tokString
	tokLParen
	tokRParen
	tokLBrace
	tokRBrace
	tokComma
	tokEq
	tokNe
	tokNot
	tokAnd
	tokOr
	tokIn
	tokNotIn
	tokContains
	tokStartsWith
	tokEndsWith
	tokHas // value: the label
	tokAll
	tokGlobal
)

var tokenNames = [...]string{
	tokEOF: "end of selector", tokLabel: "label", tokString: "string literal", tokLParen: "'('",
	tokRParen: "')'", tokLBrace: "'{'", tokRBrace: "'}'", tokComma: "','", tokEq: "'=='", tokNe: "'!='",
	tokNot: "'!'", tokAnd: "'&&'", tokOr: "'||'", tokIn: "'in'", tokNotIn: "'not in'",
	tokContains: "'contains'", tokStartsWith: "'starts with'", tokEndsWith: "'ends with'",
	tokHas: "has(...)", tokAll: "all()", tokGlobal: "global()",
}

func (k tokenKind) String() string { return tokenNames[k] }

type token struct {
	kind  tokenKind
	pos   int    // byte offset in the input
	value string // label name or string literal body
}

// MaxLabelLength is the longest label key the grammar accepts.
const MaxLabelLength = 512

func isIdentChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '_' || c == '.' || c == '/' || c == '-'
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' }

// lexer turns a selector into tokens, one at a time.
type lexer struct {
	in   string
	pos  int
	last tokenKind // kind of the previous token; word operators follow labels only
}

func (l *lexer) skipSpace() {
	for l.pos < len(l.in) && isSpace(l.in[l.pos]) {
		l.pos++
	}
}

func (l *lexer) errorf(pos int, format string, args ...any) error {
	return &ParseError{Input: l.in, Pos: pos, Msg: fmt.Sprintf(format, args...)}
}

// next returns the next token.
func (l *lexer) next() (token, error) {
	tok, err := l.scan()
	if err == nil {
		l.last = tok.kind
	}
	return tok, err
}

func (l *lexer) scan() (token, error) {
	l.skipSpace()
	start := l.pos
	if l.pos >= len(l.in) {
		return token{kind: tokEOF, pos: start}, nil
	}
	rest := l.in[l.pos:]
	simple := func(k tokenKind, n int) (token, error) {
		l.pos += n
		return token{kind: k, pos: start}, nil
	}
	switch c := rest[0]; c {
	case '(':
		return simple(tokLParen, 1)
	case ')':
		return simple(tokRParen, 1)
	case '{':
		return simple(tokLBrace, 1)
	case '}':
		return simple(tokRBrace, 1)
	case ',':
		return simple(tokComma, 1)
	case '=':
		if strings.HasPrefix(rest, "==") {
			return simple(tokEq, 2)
		}
		return token{}, l.errorf(start, "expected '==' but found a lone '='")
	case '!':
		if strings.HasPrefix(rest, "!=") {
			return simple(tokNe, 2)
		}
		return simple(tokNot, 1)
	case '&':
		if strings.HasPrefix(rest, "&&") {
			return simple(tokAnd, 2)
		}
		return token{}, l.errorf(start, "expected '&&' but found a lone '&'")
	case '|':
		if strings.HasPrefix(rest, "||") {
			return simple(tokOr, 2)
		}
		return token{}, l.errorf(start, "expected '||' but found a lone '|'")
	case '"', '\'':
		end := strings.IndexByte(rest[1:], c)
		if end < 0 {
			return token{}, l.errorf(start, "unterminated string literal (no closing %c)", c)
		}
		l.pos += end + 2
		return token{kind: tokString, pos: start, value: rest[1 : end+1]}, nil
	}
	if l.last == tokLabel {
		if tok, ok := l.wordOperator(start, rest); ok {
			return tok, nil
		}
	}
	if tok, ok, err := l.function(start, rest); ok || err != nil {
		return tok, err
	}
	n := 0
	for n < len(rest) && isIdentChar(rest[n]) {
		n++
	}
	if n == 0 {
		return token{}, l.errorf(start, "unexpected character %q", rest[0])
	}
	if n > MaxLabelLength {
		return token{}, l.errorf(start, "label is %d characters long; the limit is %d", n, MaxLabelLength)
	}
	l.pos += n
	return token{kind: tokLabel, pos: start, value: rest[:n]}, nil
}

// matchWords matches one or two words, with optional spaces between them,
// ending at a word boundary. It returns the length matched.
func matchWords(s, first, second string) int {
	if !strings.HasPrefix(s, first) {
		return 0
	}
	n := len(first)
	if second != "" {
		for n < len(s) && isSpace(s[n]) {
			n++
		}
		if !strings.HasPrefix(s[n:], second) {
			return 0
		}
		n += len(second)
	}
	if n < len(s) && isIdentChar(s[n]) {
		return 0
	}
	return n
}

// wordOperator recognises the operators that may follow a label.
func (l *lexer) wordOperator(start int, rest string) (token, bool) {
	ops := []struct {
		first, second string
		kind          tokenKind
	}{
		{"in", "", tokIn},
		{"not", "in", tokNotIn},
		{"contains", "", tokContains},
		{"starts", "with", tokStartsWith},
		{"ends", "with", tokEndsWith},
	}
	for _, op := range ops {
		if n := matchWords(rest, op.first, op.second); n > 0 {
			l.pos += n
			return token{kind: op.kind, pos: start}, true
		}
	}
	return token{}, false
}

// function recognises has(label), all() and global(). The '(' must follow
// the word directly; spaces are allowed inside the parentheses.
func (l *lexer) function(start int, rest string) (token, bool, error) {
	var kind tokenKind
	switch {
	case strings.HasPrefix(rest, "has("):
		kind = tokHas
	case strings.HasPrefix(rest, "all("):
		kind = tokAll
	case strings.HasPrefix(rest, "global("):
		kind = tokGlobal
	default:
		return token{}, false, nil
	}
	i := strings.IndexByte(rest, '(') + 1
	for i < len(rest) && isSpace(rest[i]) {
		i++
	}
	var label string
	if kind == tokHas {
		j := i
		for j < len(rest) && isIdentChar(rest[j]) {
			j++
		}
		if j == i {
			return token{}, false, l.errorf(start+i, "expected a label inside has(...)")
		}
		if j-i > MaxLabelLength {
			return token{}, false, l.errorf(start+i, "label is %d characters long; the limit is %d", j-i, MaxLabelLength)
		}
		label = rest[i:j]
		i = j
		for i < len(rest) && isSpace(rest[i]) {
			i++
		}
	}
	if i >= len(rest) || rest[i] != ')' {
		return token{}, false, l.errorf(start+i, "expected ')' to close %s", kind)
	}
	l.pos += i + 1
	return token{kind: kind, pos: start, value: label}, true, nil
}
