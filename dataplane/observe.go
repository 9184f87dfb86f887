package dataplane

import (
	"sync"

	"ocelot/contract"
	"ocelot/dataplane/rules"
	rs "ocelot/dataplane/ruleset"
)

// observer is what the dataplane tells the readers that run on other
// goroutines — the drop-log reader and the counter collector: which
// decision each logged prefix names, which endpoint owns each interface,
// and what each counted rule of each programmed chain counts. The
// dataplane goroutine writes it as the managers program and remove
// chains; the readers take its lock, briefly.
type observer struct {
	mu      sync.Mutex
	refsOf  map[string][]string // owner (chain or interface) -> the prefixes it logs under
	refs    map[string]*refEntry
	ifaces  map[string]contract.EndpointID
	counted map[int]map[string]*countedChain // family -> chain -> what it counts
}

type refEntry struct {
	ref   rules.DropRef
	users int
}

// countedChain is a programmed chain whose rules count decisions: its
// owner (the metric's labels), what each rule counts, and the rules'
// hashes, so that counters read back match the rules rendered.
type countedChain struct {
	owner  counterOwner
	counts []rules.Counted
	hashes []string
}

// counterOwner is what a chain's counters are reported under: a policy
// or profile's direction, or an endpoint's direction.
type counterOwner struct {
	policy    string // "np/ns/name", "gnp/name" or "profile/name"; "" for an endpoint chain
	endpoint  string
	iface     string
	direction string
}

func newObserver() *observer {
	return &observer{refsOf: map[string][]string{}, refs: map[string]*refEntry{}, ifaces: map[string]contract.EndpointID{},
		counted: map[int]map[string]*countedChain{4: {}, 6: {}}}
}

// setDropRefs replaces the denials an owner logs.
func (o *observer) setDropRefs(owner string, refs []rules.DropRef) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, p := range o.refsOf[owner] {
		if e := o.refs[p]; e != nil {
			if e.users--; e.users <= 0 {
				delete(o.refs, p)
			}
		}
	}
	delete(o.refsOf, owner)
	var prefixes []string
	for _, r := range refs {
		p := r.Prefix()
		e := o.refs[p]
		if e == nil {
			e = &refEntry{ref: r}
			o.refs[p] = e
		}
		e.users++
		prefixes = append(prefixes, p)
	}
	if len(prefixes) > 0 {
		o.refsOf[owner] = prefixes
	}
}

// setIface records (or, with a zero ID, forgets) an interface's owner.
func (o *observer) setIface(iface string, id contract.EndpointID) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if id == (contract.EndpointID{}) {
		delete(o.ifaces, iface)
		return
	}
	o.ifaces[iface] = id
}

// setCounted records what a chain just programmed in a family's filter
// table counts; a chain that counts nothing is forgotten.
func (o *observer) setCounted(family int, owner counterOwner, ch *rs.Chain, rc *rules.Config, filter interface{ Hashes(string) []string }) {
	counts := rc.Counts(ch)
	any := false
	for _, c := range counts {
		any = any || c != rules.NotCounted
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if !any {
		delete(o.counted[family], ch.Name)
		return
	}
	o.counted[family][ch.Name] = &countedChain{owner: owner, counts: counts, hashes: filter.Hashes(ch.Name)}
}

// removeCounted forgets a chain removed from every family.
func (o *observer) removeCounted(name string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, m := range o.counted {
		delete(m, name)
	}
}

// Decision and Endpoint make the observer the drop log's Resolver.
func (o *observer) Decision(prefix string) (rules.DropRef, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if e := o.refs[prefix]; e != nil {
		return e.ref, true
	}
	return rules.DropRef{}, false
}

func (o *observer) Endpoint(iface string) (contract.EndpointID, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	id, ok := o.ifaces[iface]
	return id, ok
}

// countedSnapshot copies a family's counted chains for a collection.
func (o *observer) countedSnapshot(family int) map[string]*countedChain {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := make(map[string]*countedChain, len(o.counted[family]))
	for k, v := range o.counted[family] {
		out[k] = v
	}
	return out
}
