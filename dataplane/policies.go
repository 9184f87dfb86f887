package dataplane

import (
	"maps"
	"reflect"
	"slices"

	"ocelot/contract"
	"ocelot/dataplane/rules"
	rs "ocelot/dataplane/ruleset"
)

// tableID is a table a policy or profile chain can be programmed in:
// filter (every endpoint), mangle and raw (host endpoints).
type tableID uint8

const (
	tableFilter tableID = iota
	tableMangle
	tableRaw
)

var tableIDs = [...]tableID{tableFilter, tableMangle, tableRaw}

func (t tableID) String() string { return [...]string{"filter", "mangle", "raw"}[t] }

// chainKey names one direction of a policy or a profile in one table:
// one chain.
type chainKey struct {
	policy  contract.PolicyID // zero for a profile
	profile string
	inbound bool
	table   tableID
}

func policyKey(id contract.PolicyID, inbound bool) chainKey {
	return chainKey{policy: id, inbound: inbound}
}

func profileKey(id string, inbound bool) chainKey { return chainKey{profile: id, inbound: inbound} }

// in is the same chain in another table.
func (k chainKey) in(t tableID) chainKey { k.table = t; return k }

// chainUser is what jumps to a policy or profile chain: a workload
// endpoint, or the chains of a host interface.
type chainUser struct {
	workload  contract.EndpointID
	hostIface string
}

func (k chainKey) isProfile() bool { return k.policy == (contract.PolicyID{}) }

func (k chainKey) name() string {
	if k.isProfile() {
		return rules.ProfileChainName(k.profile, k.inbound)
	}
	return rules.PolicyChainName(k.policy, k.inbound)
}

// policyManager owns the policies and profiles calc sent, and their chains
// (cali-pi-, cali-po-, cali-pri-, cali-pro-) in every family's filter
// table, and in mangle and raw where host endpoints jump to them. A chain
// is programmed in a table while at least one endpoint jumps to it there
// — reference counts by user (a workload endpoint or a host interface),
// as Felix programs only referenced chains — and removed with its last
// user, so a chain an endpoint still jumps to survives the removal of its
// policy until the endpoint moves on. It also indexes which sets each
// chain's rules use: the IP-set manager keeps a set in use, and a changed
// chain or a removed member forgets the flows of the workload endpoints
// involved.
type policyManager struct {
	families []*family
	flows    *conntrackManager
	obs      *observer

	policies map[contract.PolicyID]*contract.PolicyUpdate
	profiles map[string]*contract.ProfileUpdate
	users    map[chainKey]map[chainUser]struct{} // endpoints jumping to each chain
	setUsers map[string]map[chainKey]struct{}    // set ID -> chains (as filter keys) whose rules use it
}

func newPolicyManager(families []*family, flows *conntrackManager, obs *observer) *policyManager {
	return &policyManager{families: families, flows: flows, obs: obs,
		policies: map[contract.PolicyID]*contract.PolicyUpdate{}, profiles: map[string]*contract.ProfileUpdate{},
		users: map[chainKey]map[chainUser]struct{}{}, setUsers: map[string]map[chainKey]struct{}{}}
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

// update keeps the set index in step and, in every table where endpoints
// use the chain, reprograms it and forgets the flows its old rules may
// have allowed.
func (m *policyManager) update(k chainKey, existed bool, oldRules, newRules []contract.Rule) {
	m.indexSets(k, oldRules, newRules)
	for _, t := range tableIDs {
		if users := m.users[k.in(t)]; len(users) > 0 {
			m.program(k.in(t))
			if existed && !reflect.DeepEqual(oldRules, newRules) {
				m.flows.ForgetEndpoints(workloads(users)...)
			}
		}
	}
}

func (m *policyManager) drop(k chainKey) {
	m.indexSets(k, m.rulesOf(k), nil)
	for _, t := range tableIDs {
		if len(m.users[k.in(t)]) == 0 {
			m.unprogram(k.in(t))
		}
	}
}

// workloads lists the workload endpoints among a chain's users.
func workloads(users map[chainUser]struct{}) []contract.EndpointID {
	var out []contract.EndpointID
	for u := range users {
		if u.hostIface == "" {
			out = append(out, u.workload)
		}
	}
	return out
}

// Ref records that a workload endpoint jumps to these chains; a chain's
// first user programs it.
func (m *policyManager) Ref(id contract.EndpointID, keys []chainKey) {
	m.ref(chainUser{workload: id}, keys)
}

// Unref records that a workload endpoint no longer jumps to these chains;
// a chain's last user removes it.
func (m *policyManager) Unref(id contract.EndpointID, keys []chainKey) {
	m.unref(chainUser{workload: id}, keys)
}

// RefHost and UnrefHost do the same for a host interface's chains.
func (m *policyManager) RefHost(iface string, keys []chainKey) {
	m.ref(chainUser{hostIface: iface}, keys)
}
func (m *policyManager) UnrefHost(iface string, keys []chainKey) {
	m.unref(chainUser{hostIface: iface}, keys)
}

func (m *policyManager) ref(u chainUser, keys []chainKey) {
	for _, k := range keys {
		users := m.users[k]
		if users == nil {
			users = map[chainUser]struct{}{}
			m.users[k] = users
		}
		if _, held := users[u]; held {
			continue
		}
		users[u] = struct{}{}
		if len(users) == 1 {
			m.program(k)
		}
	}
}

func (m *policyManager) unref(u chainUser, keys []chainKey) {
	for _, k := range keys {
		users, ok := m.users[k]
		if !ok {
			continue
		}
		delete(users, u)
		if len(users) == 0 {
			delete(m.users, k)
			m.unprogram(k)
		}
	}
}

// SetInUse reports whether any known policy or profile uses a set.
func (m *policyManager) SetInUse(id string) bool { return len(m.setUsers[id]) > 0 }

// EndpointsUsingSet lists the workload endpoints whose chains use a set.
func (m *policyManager) EndpointsUsingSet(id string) []contract.EndpointID {
	seen := map[contract.EndpointID]struct{}{}
	for k := range m.setUsers[id] {
		for _, ep := range workloads(m.users[k]) {
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

// program renders a chain into its table in every family (in raw and
// mangle with their deny), and tells the observer what its rules log and,
// in filter, count. A chain referenced before calc sent its policy is
// left for the policy's update (calc sends policies first, so this is
// transient).
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
		table, rc := f.tables.Table(k.table.String()), f.rules.ForTable(k.table.String())
		var ch *rs.Chain
		if k.isProfile() {
			ch = rc.ProfileChain(m.profiles[k.profile], k.inbound)
		} else {
			ch = rc.PolicyChain(m.policies[k.policy], k.inbound)
		}
		table.UpdateChain(ch)
		if k.table == tableFilter {
			m.obs.setCounted(f.v, owner, ch, f.rules, f.tables.Filter)
		}
	}
	m.obs.setDropRefs(k.observed(), refs)
}

func (m *policyManager) unprogram(k chainKey) {
	for _, f := range m.families {
		f.tables.Table(k.table.String()).RemoveChain(k.name())
	}
	if k.table == tableFilter {
		m.obs.removeCounted(k.name())
	}
	m.obs.setDropRefs(k.observed(), nil)
}

// observed is what the observer knows the chain's denials by: its name,
// with its table outside filter (one policy's chain can be in three).
func (k chainKey) observed() string {
	if k.table == tableFilter {
		return k.name()
	}
	return k.table.String() + " " + k.name()
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

// describe names the policy or profile a chain belongs to ("" for none).
func (m *policyManager) describe(chain string) string {
	for k := range m.users {
		if k.name() == chain {
			if k.isProfile() {
				return "profile " + k.profile
			}
			return "policy " + k.policy.String()
		}
	}
	return ""
}
