package resource

import "sync"

// Interning: label keys and values repeat across thousands of endpoints
// (security group IDs and names), so each distinct string is stored once.
// The table is sharded to keep decode workers apart; a shard that grows
// past its bound starts afresh (strings already handed out stay valid), so
// churn cannot grow it without limit.
//
// Each stored string also carries its label class, computed once when it
// is first stored, so that validating the labels of the many endpoints
// that share them costs a bit test instead of a scan.
const (
	internShards   = 16
	internShardMax = 1 << 16
)

// Label classes of a string.
const (
	classLabelKey   uint8 = 1 << iota // a valid label key (isQualifiedName)
	classLabelValue                   // a valid label value (empty or isLabelName)
)

func classify(s string) uint8 {
	var c uint8
	if isQualifiedName(s) {
		c |= classLabelKey
	}
	if s == "" || isLabelName(s) {
		c |= classLabelValue
	}
	return c
}

type internEntry struct {
	s     string
	class uint8
}

type internShard struct {
	mu sync.Mutex
	m  map[string]internEntry
}

var internTable [internShards]internShard

func shardFor(n int, last, mid byte) *internShard {
	return &internTable[(int(last)+n*7+int(mid))%internShards]
}

// add stores s in a locked shard and returns its entry.
func (sh *internShard) add(s string) internEntry {
	if sh.m == nil || len(sh.m) >= internShardMax {
		sh.m = make(map[string]internEntry)
	}
	e := internEntry{s: s, class: classify(s)}
	sh.m[s] = e
	return e
}

var emptyEntry = internEntry{class: classLabelValue}

// internBytesEntry returns the stored copy of b, storing one if needed.
func internBytesEntry(b []byte) internEntry {
	if len(b) == 0 {
		return emptyEntry
	}
	sh := shardFor(len(b), b[len(b)-1], b[len(b)/2])
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if e, ok := sh.m[string(b)]; ok { // no allocation for the lookup
		return e
	}
	return sh.add(string(b))
}

// internEntryOf returns the stored copy of s, storing s if needed.
func internEntryOf(s string) internEntry {
	if len(s) == 0 {
		return emptyEntry
	}
	sh := shardFor(len(s), s[len(s)-1], s[len(s)/2])
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if e, ok := sh.m[s]; ok {
		return e
	}
	return sh.add(s)
}

func internBytes(b []byte) string { return internBytesEntry(b).s }
func intern(s string) string      { return internEntryOf(s).s }

// internLabels interns a label map, dropping the keys drop selects; ok
// says every remaining key and value is valid (checkLabels words the
// problem when it is not).
func internLabels(in map[string]string, drop func(string) bool) (out map[string]string, ok bool) {
	out = make(map[string]string, len(in))
	class := classLabelKey | classLabelValue
	for k, v := range in {
		if drop != nil && drop(k) {
			continue
		}
		ke, ve := internEntryOf(k), internEntryOf(v)
		class &= ke.class&classLabelKey | ve.class&classLabelValue
		out[ke.s] = ve.s
	}
	return out, class == classLabelKey|classLabelValue
}
