package dataplane

import (
	"log/slog"
	"maps"
	"slices"

	"ocelot/contract"
)

// ipsetManager owns which IP sets calc asked for, in every family's set
// driver (each driver keeps its family's members), and holds back the
// removal of a set that a policy or profile still uses: a set is
// destroyed only after no chain refers to it. Calc's ordering already
// guarantees that; the manager does not rely on it. When members leave a
// set, the flows between them and the endpoints whose policies use the
// set are forgotten.
type ipsetManager struct {
	families []*family
	policies *policyManager
	flows    *conntrackManager
	log      *slog.Logger

	removing map[string]struct{} // sets calc removed that a chain still uses
	meta     map[string]setMeta  // each set's type and selector, for explanations
}

type setMeta struct{ typ, selector string }

func newIPSetManager(families []*family, policies *policyManager, flows *conntrackManager, log *slog.Logger) *ipsetManager {
	return &ipsetManager{families: families, policies: policies, flows: flows, log: log, removing: map[string]struct{}{}, meta: map[string]setMeta{}}
}

// OnUpdate creates a set or replaces its members. Members a replacement
// drops forget their flows with the endpoints that use the set, as a
// delta's removals do.
func (m *ipsetManager) OnUpdate(x *contract.IPSetUpdate) {
	delete(m.removing, x.ID)
	m.meta[x.ID] = setMeta{typ: string(x.Type), selector: x.Selector}
	var gone []contract.Member
	if users := m.policies.EndpointsUsingSet(x.ID); len(users) > 0 {
		keep := make(map[contract.Member]struct{}, len(x.Members))
		for _, mb := range x.Members {
			keep[mb] = struct{}{}
		}
		for _, f := range m.families {
			for _, mb := range f.sets.Members(x.ID) {
				if _, ok := keep[mb]; !ok {
					gone = append(gone, mb)
				}
			}
		}
		m.flows.ForgetPairs(users, gone)
	}
	for _, f := range m.families {
		f.sets.Replace(x.ID, string(x.Type), x.Members)
	}
}

// OnDelta changes a set's members.
func (m *ipsetManager) OnDelta(x *contract.IPSetDelta) {
	for _, f := range m.families {
		f.sets.AddMembers(x.ID, x.Added)
		f.sets.RemoveMembers(x.ID, x.Removed)
	}
	if len(x.Removed) > 0 {
		m.flows.ForgetPairs(m.policies.EndpointsUsingSet(x.ID), x.Removed)
	}
}

// OnRemove removes a set, or, while a chain still uses it, marks it for
// removal once none does.
func (m *ipsetManager) OnRemove(x *contract.IPSetRemove) {
	if m.policies.SetInUse(x.ID) {
		m.log.Warn("IP set removed while a policy still uses it; keeping it until none does", "set", x.ID)
		m.removing[x.ID] = struct{}{}
		return
	}
	m.remove(x.ID)
}

// CompleteDeferredWork removes the held-back sets no chain uses any more.
func (m *ipsetManager) CompleteDeferredWork() {
	for _, id := range slices.Sorted(maps.Keys(m.removing)) {
		if !m.policies.SetInUse(id) {
			delete(m.removing, id)
			m.remove(id)
		}
	}
}

func (m *ipsetManager) remove(id string) {
	delete(m.meta, id)
	for _, f := range m.families {
		f.sets.Remove(id)
	}
}
