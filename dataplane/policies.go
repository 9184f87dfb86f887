package dataplane

import (
	"maps"
	"reflect"
	"slices"

	"ocelot/contract"
	"ocelot/dataplane/rules"
	rs "ocelot/dataplane/ruleset"
)

// chainKey names one direction of a policy or a profile: one chain.
type chainKey struct {
	policy  contract.PolicyID // zero for a profile
	profile string
	inbound bool
}

func policyKey(id contract.PolicyID, inbound bool) chainKey {
	return chainKey{policy: id, inbound: inbound}
}

func profileKey(id string, inbound bool) chainKey { return chainKey{profile: id, inbound: inbound} }

func (k chainKey) isProfile() bool { return k.policy == (contract.PolicyID{}) }

func (k chainKey) name() string {
	if k.isProfile() {
		return rules.ProfileChainName(k.profile, k.inbound)
	}
	return rules.PolicyChainName(k.policy, k.inbound)
}

// policyManager owns the policies and profiles calc sent, and their chains
// (cali-pi-, cali-po-, cali-pri-, cali-pro-) in every family's filter
// table. A chain is programmed while at least one endpoint jumps to it —
// reference counts by endpoint, as Felix programs only referenced chains —
// and removed with its last user, so a chain an endpoint still jumps to
// survives the removal of its policy until the endpoint moves on. It also
// indexes which sets each chain's rules use: the IP-set manager keeps a
// set in use, and a changed chain or a removed member forgets the flows
// of the endpoints involved.
type policyManager struct {
	families []*family
	flows    *conntrackManager
	obs      *observer

	policies map[contract.PolicyID]*contract.PolicyUpdate
	profiles map[string]*contract.ProfileUpdate
	users    map[chainKey]map[contract.EndpointID]struct{} // endpoints jumping to each chain
	setUsers map[string]map[chainKey]struct{}              // set ID -> chains whose rules use it
}

func newPolicyManager(families []*family, flows *conntrackManager, obs *observer) *policyManager {
	return &policyManager{families: families, flows: flows, obs: obs,
		policies: map[contract.PolicyID]*contract.PolicyUpdate{}, profiles: map[string]*contract.ProfileUpdate{},
		users: map[chainKey]map[contract.EndpointID]struct{}{}, setUsers: map[string]map[chainKey]struct{}{}}
}

// OnPolicyUpdate records a policy and reprograms its chains if in use.
func (m *policyManager) OnPolicyUpdate(u *contract.PolicyUpdate) {
	old := m.policies[u.ID]
	m.policies[u.ID] = u
	for _, in := range []bool{true, false} {
		var oldRules []contract.Rule
		if old != nil {
			oldRules = direction(in, old.Inbound, old.Outbound)
		}
		m.update(policyKey(u.ID, in), old != nil, oldRules, direction(in, u.Inbound, u.Outbound))
	}
}

// OnPolicyRemove forgets a policy. Its chains go unless an endpoint still
// jumps to them (they go with the last one).
func (m *policyManager) OnPolicyRemove(id contract.PolicyID) {
	for _, in := range []bool{true, false} {
		m.drop(policyKey(id, in))
	}
	delete(m.policies, id)
}

// OnProfileUpdate records a profile and reprograms its chains if in use.
func (m *policyManager) OnProfileUpdate(u *contract.ProfileUpdate) {
	old := m.profiles[u.ID]
	m.profiles[u.ID] = u
	for _, in := range []bool{true, false} {
		var oldRules []contract.Rule
		if old != nil {
			oldRules = direction(in, old.Inbound, old.Outbound)
		}
		m.update(profileKey(u.ID, in), old != nil, oldRules, direction(in, u.Inbound, u.Outbound))
	}
}

// OnProfileRemove forgets a profile, as OnPolicyRemove a policy.
func (m *policyManager) OnProfileRemove(id string) {
	for _, in := range []bool{true, false} {
		m.drop(profileKey(id, in))
	}
	delete(m.profiles, id)
}

func direction(inbound bool, in, out []contract.Rule) []contract.Rule {
	if inbound {
		return in
	}
	return out
}

// update keeps the set index in step and, when endpoints use the chain,
// reprograms it and forgets the flows its old rules may have allowed.
func (m *policyManager) update(k chainKey, existed bool, oldRules, newRules []contract.Rule) {
	m.indexSets(k, oldRules, newRules)
	if users := m.users[k]; len(users) > 0 {
		m.program(k)
		if existed && !reflect.DeepEqual(oldRules, newRules) {
			m.flows.ForgetEndpoints(slices.Collect(maps.Keys(users))...)
		}
	}
}

func (m *policyManager) drop(k chainKey) {
	m.indexSets(k, m.rulesOf(k), nil)
	if len(m.users[k]) == 0 {
		m.unprogram(k)
	}
}

// Ref records that an endpoint jumps to these chains; a chain's first
// user programs it.
func (m *policyManager) Ref(id contract.EndpointID, keys []chainKey) {
	for _, k := range keys {
		users := m.users[k]
		if users == nil {
			users = map[contract.EndpointID]struct{}{}
			m.users[k] = users
		}
		if _, held := users[id]; held {
			continue
		}
		users[id] = struct{}{}
		if len(users) == 1 {
			m.program(k)
		}
	}
}

// Unref records that an endpoint no longer jumps to these chains; a
// chain's last user removes it.
func (m *policyManager) Unref(id contract.EndpointID, keys []chainKey) {
	for _, k := range keys {
		users, ok := m.users[k]
		if !ok {
			continue
		}
		delete(users, id)
		if len(users) == 0 {
			delete(m.users, k)
			m.unprogram(k)
		}
	}
}

// SetInUse reports whether any known policy or profile uses a set.
func (m *policyManager) SetInUse(id string) bool { return len(m.setUsers[id]) > 0 }

// EndpointsUsingSet lists the endpoints whose chains use a set.
func (m *policyManager) EndpointsUsingSet(id string) []contract.EndpointID {
	seen := map[contract.EndpointID]struct{}{}
	for k := range m.setUsers[id] {
		for ep := range m.users[k] {
			seen[ep] = struct{}{}
		}
	}
	return slices.Collect(maps.Keys(seen))
}

// indexSets records which sets a chain's rules use.
func (m *policyManager) indexSets(k chainKey, old, new []contract.Rule) {
	for _, r := range old {
		for _, id := range r.IPSetIDs() {
			if s := m.setUsers[id]; s != nil {
				delete(s, k)
				if len(s) == 0 {
					delete(m.setUsers, id)
				}
			}
		}
	}
	for _, r := range new {
		for _, id := range r.IPSetIDs() {
			if m.setUsers[id] == nil {
				m.setUsers[id] = map[chainKey]struct{}{}
			}
			m.setUsers[id][k] = struct{}{}
		}
	}
}

func (m *policyManager) rulesOf(k chainKey) []contract.Rule {
	if k.isProfile() {
		if p := m.profiles[k.profile]; p != nil {
			return direction(k.inbound, p.Inbound, p.Outbound)
		}
		return nil
	}
	if p := m.policies[k.policy]; p != nil {
		return direction(k.inbound, p.Inbound, p.Outbound)
	}
	return nil
}

// program renders a chain into every family's filter table, and tells
// the observer what its rules count and log. A chain referenced before
// calc sent its policy is left for the policy's update (calc sends
// policies first, so this is transient).
func (m *policyManager) program(k chainKey) {
	owner := counterOwner{policy: k.policy.String(), direction: directionName(k.inbound)}
	var refs []rules.DropRef
	switch {
	case k.isProfile() && m.profiles[k.profile] != nil:
		owner.policy = "profile/" + k.profile
		refs = rules.ProfileDropRefs(m.profiles[k.profile], k.inbound)
	case !k.isProfile() && m.policies[k.policy] != nil:
		refs = rules.PolicyDropRefs(m.policies[k.policy], k.inbound)
	default:
		return
	}
	for _, f := range m.families {
		var ch *rs.Chain
		if k.isProfile() {
			ch = f.rules.ProfileChain(m.profiles[k.profile], k.inbound)
		} else {
			ch = f.rules.PolicyChain(m.policies[k.policy], k.inbound)
		}
		f.tables.Filter.UpdateChain(ch)
		m.obs.setCounted(f.v, owner, ch, f.rules, f.tables.Filter)
	}
	m.obs.setDropRefs(k.name(), refs)
}

func (m *policyManager) unprogram(k chainKey) {
	for _, f := range m.families {
		f.tables.Filter.RemoveChain(k.name())
	}
	m.obs.removeCounted(k.name())
	m.obs.setDropRefs(k.name(), nil)
}

func directionName(inbound bool) string {
	if inbound {
		return "ingress"
	}
	return "egress"
}

// chainKeysOf lists the policy and profile chains an endpoint jumps to.
func chainKeysOf(ep *contract.EndpointUpdate) []chainKey {
	if ep == nil {
		return nil
	}
	var out []chainKey
	for _, t := range ep.Tiers {
		for _, id := range t.Ingress {
			out = append(out, policyKey(id, true))
		}
		for _, id := range t.Egress {
			out = append(out, policyKey(id, false))
		}
	}
	for _, p := range ep.ProfileIDs {
		out = append(out, profileKey(p, true), profileKey(p, false))
	}
	return out
}
