package labelindex

import "math/bits"

type handle = int32

// smallMax is the size at which a handleSet switches from a list to a
// bitmap. Most postings and match sets in an OpenStack cloud are small
// (the members of one security group); a few are huge (every endpoint has
// a namespace label; all() matches everything), and a bitmap over dense
// handles holds those in an eighth of a byte each.
const smallMax = 64

// handleSet is a set of dense int32 handles: an unsorted list while small,
// a bitmap once large.
type handleSet struct {
	small []handle
	bits  []uint64
	n     int
}

func (s *handleSet) len() int { return s.n }

func (s *handleSet) has(h handle) bool {
	if s.bits == nil {
		for _, x := range s.small {
			if x == h {
				return true
			}
		}
		return false
	}
	w := int(h >> 6)
	return w < len(s.bits) && s.bits[w]&(1<<(uint(h)&63)) != 0
}

// add inserts h and reports whether it was absent.
func (s *handleSet) add(h handle) bool {
	if s.has(h) {
		return false
	}
	s.n++
	if s.bits == nil {
		if len(s.small) < smallMax {
			s.small = append(s.small, h)
			return true
		}
		for _, x := range s.small {
			s.setBit(x)
		}
		s.small = nil
	}
	s.setBit(h)
	return true
}

func (s *handleSet) setBit(h handle) {
	w := int(h >> 6)
	if w >= len(s.bits) {
		grown := make([]uint64, w+1+w/4)
		copy(grown, s.bits)
		s.bits = grown
	}
	s.bits[w] |= 1 << (uint(h) & 63)
}

// remove deletes h and reports whether it was present.
func (s *handleSet) remove(h handle) bool {
	if s.bits == nil {
		for i, x := range s.small {
			if x == h {
				last := len(s.small) - 1
				s.small[i] = s.small[last]
				s.small = s.small[:last]
				if last == 0 {
					s.small = nil
				}
				s.n--
				return true
			}
		}
		return false
	}
	w := int(h >> 6)
	if w >= len(s.bits) || s.bits[w]&(1<<(uint(h)&63)) == 0 {
		return false
	}
	s.bits[w] &^= 1 << (uint(h) & 63)
	s.n--
	if s.n < smallMax/4 {
		var small []handle
		s.each(func(x handle) { small = append(small, x) })
		s.bits, s.small = nil, small
	}
	return true
}

// each calls f for every member. f must not modify s.
func (s *handleSet) each(f func(handle)) {
	if s.bits == nil {
		for _, h := range s.small {
			f(h)
		}
		return
	}
	for w, word := range s.bits {
		for word != 0 {
			b := bits.TrailingZeros64(word)
			f(handle(w<<6 | b))
			word &= word - 1
		}
	}
}
