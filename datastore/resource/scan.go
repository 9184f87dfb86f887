package resource

import (
	"bytes"
	"unicode/utf8"
)

// Other hosts' endpoints are most of what a host reads at start-up, and
// encoding/json spends ~20 µs on each through reflection. fastRemoteEndpoint
// decodes their usual shape directly, interning strings as it goes. It is
// deliberately timid: anything it is not sure about (an escape in any key
// or in a string it keeps, a non-ASCII key, a duplicate field, a named
// port, a type mismatch, malformed JSON) makes it give up, and the caller
// decodes with encoding/json, which then decides and words any error. So
// on success it must agree with encoding/json, and on doubt it defers to
// it. FuzzFastRemoteEndpoint holds it to that.

// fastRemoteEndpoint returns the envelope's kind, the endpoint's labels
// (interned, reserved ones dropped; labelsOK when all are valid) and its
// spec; ok is false when it gave up.
func fastRemoteEndpoint(data []byte) (kind string, labels map[string]string, labelsOK bool, spec wireRemoteEndpointSpec, ok bool) {
	s := scanner{b: data}
	class := classLabelKey | classLabelValue
	var seen [3]bool // kind, metadata, spec
	ok = s.object(func(key []byte) bool {
		switch {
		case s.field(key, "kind", &seen[0]):
			v, isNull, ok := s.str()
			if !isNull {
				kind = string(v)
			}
			return ok
		case s.field(key, "metadata", &seen[1]):
			return s.metadata(&labels, &class)
		case s.field(key, "spec", &seen[2]):
			return s.remoteSpec(&spec)
		case s.bad:
			return false
		}
		return s.skip(0)
	})
	if !ok || !s.end() {
		return "", nil, false, spec, false
	}
	if labels == nil {
		labels = map[string]string{}
	}
	return kind, labels, class == classLabelKey|classLabelValue, spec, true
}

// metadata reads the metadata object, keeping the labels and and-ing
// their label classes into class.
func (s *scanner) metadata(labels *map[string]string, class *uint8) bool {
	var seen [2]bool
	return s.object(func(key []byte) bool {
		switch {
		case s.field(key, "labels", &seen[0]):
			return s.stringMap(func(k, v []byte) {
				if *labels == nil {
					*labels = make(map[string]string, 8)
				}
				if !bytes.HasPrefix(k, []byte("pcns.")) && !bytes.HasPrefix(k, []byte("pcsa.")) {
					ke, ve := internBytesEntry(k), internBytesEntry(v)
					*class &= ke.class&classLabelKey | ve.class&classLabelValue
					(*labels)[ke.s] = ve.s
				}
			})
		case s.field(key, "annotations", &seen[1]):
			return s.stringMap(func(k, v []byte) {}) // type-checked, not kept
		case s.bad:
			return false
		}
		return s.skip(0)
	})
}

func (s *scanner) remoteSpec(w *wireRemoteEndpointSpec) bool {
	var seen [4]bool
	return s.object(func(key []byte) bool {
		switch {
		case s.field(key, "serviceAccountName", &seen[0]):
			v, isNull, ok := s.str()
			if !isNull {
				w.ServiceAccountName = string(v)
			}
			return ok
		case s.field(key, "ipNetworks", &seen[1]):
			return s.stringList(&w.IPNetworks, false)
		case s.field(key, "profiles", &seen[2]):
			return s.stringList(&w.Profiles, true)
		case s.field(key, "ports", &seen[3]):
			if s.next() == '[' {
				w.Ports = []wirePort{} // as encoding/json: [] is empty, null is nil
			}
			return s.array(func() bool { return false }) // named ports: leave them to encoding/json
		case s.bad:
			return false
		}
		return s.skip(0)
	})
}

// field reports whether a JSON key selects field name the way
// encoding/json matches it (exactly or ASCII case-insensitively; object
// rejects non-ASCII keys, which Unicode folding might map onto a field),
// and marks the field seen. A second occurrence is doubt (encoding/json
// merges or overwrites): it sets bad, which the callers' switches check
// right after their field cases.
func (s *scanner) field(key []byte, name string, seen *bool) bool {
	if !bytes.EqualFold(key, []byte(name)) {
		return false
	}
	if *seen {
		s.bad = true
		return false
	}
	*seen = true
	return true
}

// scanner reads JSON from b. Methods return false when they give up; bad
// marks a duplicate field (see field).
type scanner struct {
	b   []byte
	i   int
	bad bool
}

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *scanner) next() byte {
	s.ws()
	if s.i >= len(s.b) {
		return 0
	}
	return s.b[s.i]
}

// end reports whether only whitespace is left.
func (s *scanner) end() bool { s.ws(); return s.i == len(s.b) }

func (s *scanner) literal(lit string) bool {
	if !bytes.HasPrefix(s.b[s.i:], []byte(lit)) {
		return false
	}
	s.i += len(lit)
	return true
}

// object reads an object (or null), calling field for each key with the
// scanner positioned at the value. Keys must be plain (see plainKey).
func (s *scanner) object(field func(key []byte) bool) bool {
	switch s.next() {
	case 'n':
		return s.literal("null")
	case '{':
		s.i++
	default:
		return false
	}
	if s.next() == '}' {
		s.i++
		return true
	}
	for {
		if s.next() != '"' {
			return false
		}
		key, ok := s.rawString()
		if !ok || !plainKey(key) {
			return false
		}
		if s.next() != ':' {
			return false
		}
		s.i++
		if !field(key) {
			return false
		}
		switch s.next() {
		case ',':
			s.i++
		case '}':
			s.i++
			return true
		default:
			return false
		}
	}
}

// array reads an array (or null), calling elem for each element.
func (s *scanner) array(elem func() bool) bool {
	switch s.next() {
	case 'n':
		return s.literal("null")
	case '[':
		s.i++
	default:
		return false
	}
	if s.next() == ']' {
		s.i++
		return true
	}
	for {
		if !elem() {
			return false
		}
		switch s.next() {
		case ',':
			s.i++
		case ']':
			s.i++
			return true
		default:
			return false
		}
	}
}

// stringMap reads an object whose values are all strings.
func (s *scanner) stringMap(pair func(k, v []byte)) bool {
	return s.object(func(key []byte) bool {
		v, isNull, ok := s.str()
		if !ok || isNull {
			return false // encoding/json keeps null values as ""; leave that to it
		}
		pair(key, v)
		return true
	})
}

// stringList reads an array of strings into *out, interning when asked.
// As encoding/json, null leaves nil and [] an empty list.
func (s *scanner) stringList(out *[]string, interned bool) bool {
	*out = nil
	if s.next() == '[' {
		*out = make([]string, 0, 2)
	}
	return s.array(func() bool {
		v, isNull, ok := s.str()
		if !ok || isNull {
			return false
		}
		if interned {
			*out = append(*out, internBytes(v))
		} else {
			*out = append(*out, string(v))
		}
		return true
	})
}

// str reads a string that will be kept (or null). Escapes and invalid
// UTF-8, which encoding/json would rewrite, make it give up.
func (s *scanner) str() (v []byte, isNull, ok bool) {
	switch s.next() {
	case 'n':
		return nil, true, s.literal("null")
	case '"':
		v, ok = s.rawString()
		return v, false, ok && bytes.IndexByte(v, '\\') < 0 && utf8.Valid(v)
	}
	return nil, false, false
}

// rawString reads a string's bytes between the quotes, escapes unresolved
// but checked.
func (s *scanner) rawString() ([]byte, bool) {
	s.i++ // opening quote
	start := s.i
	// The common case: no escapes, found with two vectorised searches.
	if j := bytes.IndexByte(s.b[start:], '"'); j >= 0 && bytes.IndexByte(s.b[start:start+j], '\\') < 0 {
		v := s.b[start : start+j]
		for _, c := range v {
			if c < 0x20 {
				return nil, false
			}
		}
		s.i = start + j + 1
		return v, true
	}
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			s.i++
			return s.b[start : s.i-1], true
		case c < 0x20:
			return nil, false
		case c == '\\':
			if s.i+1 >= len(s.b) {
				return nil, false
			}
			switch s.b[s.i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.i += 2
			case 'u':
				if s.i+6 > len(s.b) || !hex4(s.b[s.i+2:s.i+6]) {
					return nil, false
				}
				s.i += 6
			default:
				return nil, false
			}
		default:
			s.i++
		}
	}
	return nil, false
}

// skip reads and validates any value.
func (s *scanner) skip(depth int) bool {
	if depth > 100 {
		return false
	}
	switch c := s.next(); {
	case c == '{':
		return s.object(func([]byte) bool { return s.skip(depth + 1) })
	case c == '[':
		return s.array(func() bool { return s.skip(depth + 1) })
	case c == '"':
		_, ok := s.rawString()
		return ok
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	case c == '-' || (c >= '0' && c <= '9'):
		return s.number()
	}
	return false
}

// number reads -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
func (s *scanner) number() bool {
	if s.b[s.i] == '-' {
		s.i++
	}
	switch {
	case s.i < len(s.b) && s.b[s.i] == '0':
		s.i++
	case s.digits() == 0:
		return false
	}
	if s.i < len(s.b) && s.b[s.i] == '.' {
		s.i++
		if s.digits() == 0 {
			return false
		}
	}
	if s.i < len(s.b) && (s.b[s.i] == 'e' || s.b[s.i] == 'E') {
		s.i++
		if s.i < len(s.b) && (s.b[s.i] == '+' || s.b[s.i] == '-') {
			s.i++
		}
		if s.digits() == 0 {
			return false
		}
	}
	return true
}

func (s *scanner) digits() int {
	n := 0
	for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
		s.i++
		n++
	}
	return n
}

func hex4(b []byte) bool {
	for _, c := range b {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// plainKey reports whether an object key means what its bytes say: ASCII
// without escapes. encoding/json resolves escapes ("sp\u0065c" is "spec")
// and folds some non-ASCII letters onto ASCII ones when it matches field
// names (U+017F onto 's', U+212A onto 'k'); rather than repeat either, the
// fast path gives up on such keys, in field names and label keys alike.
func plainKey(b []byte) bool {
	for _, c := range b {
		if c >= 0x80 || c == '\\' {
			return false
		}
	}
	return true
}
