package dataplane

import (
	"log/slog"
	"maps"
	"net/netip"
	"slices"

	"ocelot/contract"
	"ocelot/dataplane/hostaddrs"
	"ocelot/dataplane/ifacemon"
	"ocelot/dataplane/rules"
	rs "ocelot/dataplane/ruleset"
)

// Host endpoint statuses, as Felix writes them.
const (
	hostStatusUp    = "up"
	hostStatusDown  = "down"
	hostStatusError = "error" // known, but it governs no interface
)

// hostEndpointManager owns the host endpoints calc sent, the host
// interfaces and their addresses as the host monitor reports them, and
// what follows from which endpoint governs which interface: the
// per-interface chains (cali-th-, cali-fh-, cali-thfw-, cali-fhfw- in
// filter; cali-th- and pre-DNAT cali-fh- in mangle; untracked cali-th-
// and cali-fh- in raw), the dispatch chains of the three tables, the
// failsafe chains (while some host-endpoint chain jumps to them) and the
// endpoints' statuses. It tells the policy manager which policy and
// profile chains each interface's chains jump to, in which table.
//
// Resolution is Felix's: each host interface goes to the endpoint that
// names it, or else to one expecting one of its addresses, the least ID
// winning; an endpoint named AllInterfaces governs every other
// interface. Workload interfaces, excluded ones (InterfaceExclude) and
// names no rule can match never reach this manager (the host interface
// monitor leaves them out: workloadIfaces.Host), and the all-interfaces
// dispatch returns workload traffic: a workload interface is never a host
// endpoint. The interfaces' addresses come from the host address
// watcher's snapshots (dataplane/hostaddrs), which the route manager's
// guard reads too.
type hostEndpointManager struct {
	families []*family
	policies *policyManager
	obs      *observer
	log      *slog.Logger
	onStatus func(id, status string)

	endpoints map[string]*contract.HostEndpointUpdate // by ID
	ifaces    map[string]ifacemon.State               // host interfaces by name
	addrs     map[string][]netip.Addr                 // every interface's addresses, sorted, by name
	synced    bool                                    // the monitor has listed every interface once

	active    map[string]string                       // interface (or "*") -> governing endpoint ID, as programmed
	used      map[string]*contract.HostEndpointUpdate // interface -> the endpoint value its chains were rendered from
	chains    map[string]map[string][]string          // interface -> table -> its chains, as programmed
	refs      map[string][]chainKey                   // interface -> policy and profile chains its chains jump to
	dispatch  map[int]map[string][]string             // family -> table -> dispatch chains, as programmed
	failsafes map[string]bool                         // table -> failsafe chains programmed
	warned    map[string]bool                         // endpoints warned about (untracked policy on *)

	dirty, statusDirty bool
	reported           map[string]string
}

func newHostEndpointManager(families []*family, policies *policyManager, obs *observer, cfg Config, log *slog.Logger) *hostEndpointManager {
	m := &hostEndpointManager{families: families, policies: policies, obs: obs, log: log, onStatus: cfg.OnHostEndpointStatus,
		endpoints: map[string]*contract.HostEndpointUpdate{}, ifaces: map[string]ifacemon.State{},
		active: map[string]string{}, used: map[string]*contract.HostEndpointUpdate{}, chains: map[string]map[string][]string{},
		refs: map[string][]chainKey{}, dispatch: map[int]map[string][]string{}, failsafes: map[string]bool{},
		warned: map[string]bool{}, dirty: true, reported: map[string]string{}}
	m.CompleteDeferredWork() // the dispatch chains the static ones jump to, empty
	return m
}

// OnUpdate records a host endpoint; the next apply resolves it.
func (m *hostEndpointManager) OnUpdate(u *contract.HostEndpointUpdate) {
	m.endpoints[u.ID] = u
	m.dirty, m.statusDirty = true, true
}

// OnRemove forgets a host endpoint: its interfaces are no longer policed
// (unless another endpoint takes them over).
func (m *hostEndpointManager) OnRemove(id string) {
	if _, ok := m.endpoints[id]; ok {
		delete(m.endpoints, id)
		delete(m.warned, id)
		m.dirty, m.statusDirty = true, true
	}
}

// OnIfaces records host interfaces' states. A complete listing comes
// with the interfaces gone since the last one.
func (m *hostEndpointManager) OnIfaces(ev ifacemon.Event) {
	if ev.Synced {
		m.synced = true
	}
	for _, s := range ev.States {
		old, had := m.ifaces[s.Name]
		if s.Gone {
			if had {
				delete(m.ifaces, s.Name)
				m.dirty, m.statusDirty = true, true
			}
			continue
		}
		m.ifaces[s.Name] = s
		if !had {
			m.dirty = true
		}
		if !had || old.Running != s.Running {
			m.statusDirty = true
		}
	}
}

// OnHostAddrs records the addresses on the host's interfaces, from a
// complete snapshot; endpoints are resolved again when those of a host
// interface changed.
func (m *hostEndpointManager) OnHostAddrs(s hostaddrs.Snapshot) {
	addrs := map[string][]netip.Addr{}
	for _, a := range s.Addrs {
		addrs[a.Iface] = append(addrs[a.Iface], a.IP)
	}
	for name, l := range addrs {
		slices.SortFunc(l, netip.Addr.Compare)
		addrs[name] = slices.Compact(l)
	}
	for name := range m.ifaces {
		if !slices.Equal(addrs[name], m.addrs[name]) {
			m.dirty = true
		}
	}
	m.addrs = addrs
}

// Dirty reports whether CompleteDeferredWork or a status report is due.
func (m *hostEndpointManager) Dirty() bool { return m.dirty || m.statusDirty }

// resolve decides which endpoint governs each host interface, as Felix
// does: the least ID among those naming it, or (when none names it)
// expecting one of its addresses; and the least ID among the
// all-interfaces endpoints for "*".
func (m *hostEndpointManager) resolve() map[string]string {
	out := map[string]string{}
	least := func(match func(ep *contract.HostEndpointUpdate) bool) string {
		best := ""
		for id, ep := range m.endpoints {
			if match(ep) && (best == "" || id < best) {
				best = id
			}
		}
		return best
	}
	for name := range m.ifaces {
		best := least(func(ep *contract.HostEndpointUpdate) bool { return ep.InterfaceName == name })
		if best == "" {
			best = least(func(ep *contract.HostEndpointUpdate) bool {
				return ep.InterfaceName == "" && expects(ep, m.addrs[name])
			})
		}
		if best != "" {
			out[name] = best
		}
	}
	for id, ep := range m.endpoints {
		if ep.InterfaceName == contract.AllInterfaces && (out[contract.AllInterfaces] == "" || id < out[contract.AllInterfaces]) {
			out[contract.AllInterfaces] = id
		}
	}
	return out
}

// expects reports whether an endpoint expects one of the addresses.
func expects(ep *contract.HostEndpointUpdate, addrs []netip.Addr) bool {
	for _, a := range addrs {
		if slices.Contains(ep.ExpectedIPv4, a) || slices.Contains(ep.ExpectedIPv6, a) {
			return true
		}
	}
	return false
}

// CompleteDeferredWork resolves the endpoints against the interfaces and
// brings the chains in line, when something changed: each governed
// interface's chains (rendered again only when its endpoint changed), the
// references they hold (new ones taken before old ones are dropped), the
// chains of interfaces no longer governed removed, then the dispatch and
// failsafe chains of every table.
func (m *hostEndpointManager) CompleteDeferredWork() {
	if !m.dirty {
		return
	}
	m.dirty = false
	active := m.resolve()
	if !maps.Equal(active, m.active) {
		m.statusDirty = true
	}
	for iface, id := range active {
		ep := m.endpoints[id]
		if m.active[iface] == id && m.used[iface] == ep {
			continue
		}
		m.program(iface, ep)
	}
	for iface := range m.active {
		if _, ok := active[iface]; !ok {
			m.release(iface)
		}
	}
	m.active = active
	m.renderDispatch()
}

// program writes an interface's chains in every family from its
// endpoint, and moves its references.
func (m *hostEndpointManager) program(iface string, ep *contract.HostEndpointUpdate) {
	keys := hostChainKeys(iface, ep)
	m.policies.RefHost(iface, keys)
	m.policies.UnrefHost(iface, slices.DeleteFunc(slices.Clone(m.refs[iface]), func(k chainKey) bool { return slices.Contains(keys, k) }))
	m.refs[iface] = keys
	if iface == contract.AllInterfaces && len(ep.UntrackedTiers) > 0 && !m.warned[ep.ID] {
		m.warned[ep.ID] = true
		m.log.Warn("doNotTrack policy does not apply to an all-interfaces host endpoint (as in Felix); ignoring it there", "host_endpoint", ep.ID)
	}
	names := map[string][]string{}
	for _, f := range m.families {
		byTable := map[string][]*rs.Chain{"filter": f.rules.HostFilterChains(iface, ep),
			"mangle": {f.rules.HostMangleEgressChain(iface, ep)}}
		if hasPreDNAT(ep) {
			byTable["mangle"] = append(byTable["mangle"], f.rules.HostMangleIngressChain(iface, ep))
		}
		if hasUntracked(iface, ep) {
			byTable["raw"] = f.rules.HostRawChains(iface, ep)
		}
		for table, chains := range byTable {
			t := f.tables.Table(table)
			for _, ch := range chains {
				t.UpdateChain(ch)
				if !slices.Contains(names[table], ch.Name) {
					names[table] = append(names[table], ch.Name)
				}
			}
		}
	}
	for table, old := range m.chains[iface] {
		for _, name := range old {
			if !slices.Contains(names[table], name) {
				m.removeChain(table, name)
			}
		}
	}
	m.chains[iface], m.used[iface] = names, ep
	m.obs.setDropRefs("host iface "+iface, rules.HostEndpointDropRefs(ep))
}

// release removes what an interface carried: no endpoint governs it now.
func (m *hostEndpointManager) release(iface string) {
	for table, names := range m.chains[iface] {
		for _, name := range names {
			m.removeChain(table, name)
		}
	}
	m.policies.UnrefHost(iface, m.refs[iface])
	m.obs.setDropRefs("host iface "+iface, nil)
	delete(m.chains, iface)
	delete(m.refs, iface)
	delete(m.used, iface)
}

func (m *hostEndpointManager) removeChain(table, name string) {
	for _, f := range m.families {
		f.tables.Table(table).RemoveChain(name)
	}
}

func hasPreDNAT(ep *contract.HostEndpointUpdate) bool {
	return !ep.FailClosed && len(ep.PreDNATTiers) > 0
}

func hasUntracked(iface string, ep *contract.HostEndpointUpdate) bool {
	return !ep.FailClosed && len(ep.UntrackedTiers) > 0 && iface != contract.AllInterfaces
}

// hostChainKeys lists the policy and profile chains an interface's chains
// jump to, in the tables they are in.
func hostChainKeys(iface string, ep *contract.HostEndpointUpdate) []chainKey {
	if ep.FailClosed {
		return nil
	}
	var out []chainKey
	add := func(k chainKey) {
		if !slices.Contains(out, k) {
			out = append(out, k)
		}
	}
	tiers := func(ts []contract.TierPolicies, t tableID, ingress, egress bool) {
		for _, tier := range ts {
			if ingress {
				for _, id := range tier.Ingress {
					add(policyKey(id, true).in(t))
				}
			}
			if egress {
				for _, id := range tier.Egress {
					add(policyKey(id, false).in(t))
				}
			}
		}
	}
	tiers(ep.Tiers, tableFilter, true, true)
	tiers(ep.ForwardTiers, tableFilter, true, true)
	tiers(ep.Tiers, tableMangle, false, true)
	for _, p := range ep.ProfileIDs {
		add(profileKey(p, true))
		add(profileKey(p, false))
		add(profileKey(p, false).in(tableMangle))
	}
	if hasPreDNAT(ep) {
		tiers(ep.PreDNATTiers, tableMangle, true, false)
	}
	if hasUntracked(iface, ep) {
		tiers(ep.UntrackedTiers, tableRaw, true, true)
	}
	return out
}

// renderDispatch renders every table's dispatch chains over the governed
// interfaces, removes the child chains no longer rendered, and keeps the
// failsafe chains while some host-endpoint chain of the table jumps to
// them.
func (m *hostEndpointManager) renderDispatch() {
	normal := rules.HostDispatch{}
	pre := map[string]*rules.HostDispatch{"mangle": {}, "raw": {}}
	for _, iface := range slices.Sorted(maps.Keys(m.active)) {
		ep := m.endpoints[m.active[iface]]
		all := iface == contract.AllInterfaces
		add := func(d *rules.HostDispatch) {
			if all {
				d.All = true
			} else {
				d.Ifaces = append(d.Ifaces, iface)
			}
		}
		add(&normal)
		if hasPreDNAT(ep) {
			add(pre["mangle"])
		}
		if hasUntracked(iface, ep) {
			add(pre["raw"])
		}
	}
	inUse := map[string]bool{"filter": len(m.active) > 0, "mangle": len(m.active) > 0,
		"raw": len(pre["raw"].Ifaces) > 0}
	for _, f := range m.families {
		if m.dispatch[f.v] == nil {
			m.dispatch[f.v] = map[string][]string{}
		}
		for _, table := range []string{"filter", "mangle", "raw"} {
			t := f.tables.Table(table)
			p := rules.HostDispatch{}
			if pre[table] != nil {
				p = *pre[table]
			}
			var programmed []string
			for _, ch := range f.rules.HostDispatchChains(table, p, normal) {
				t.UpdateChain(ch)
				programmed = append(programmed, ch.Name)
			}
			for _, old := range m.dispatch[f.v][table] {
				if !slices.Contains(programmed, old) {
					t.RemoveChain(old)
				}
			}
			m.dispatch[f.v][table] = programmed
			m.renderFailsafes(f, table, inUse[table])
		}
	}
	for table, on := range inUse {
		m.failsafes[table] = on
	}
}

// renderFailsafes keeps a table's failsafe chains while on, and removes
// them when they were on before.
func (m *hostEndpointManager) renderFailsafes(f *family, table string, on bool) {
	t := f.tables.Table(table)
	for _, ch := range f.rules.FailsafeChains(table) {
		if on {
			t.UpdateChain(ch)
		} else if m.failsafes[table] {
			t.RemoveChain(ch.Name)
		}
	}
}

// ReportStatuses sends each host endpoint's status when it changed, as
// Felix computes it: "up" when it governs at least one interface and
// every one it governs by name or address is operationally up, "down"
// when one is not, "error" when it governs none; "" when it is gone.
func (m *hostEndpointManager) ReportStatuses() {
	if !m.statusDirty || m.onStatus == nil {
		m.statusDirty = false
		return
	}
	m.statusDirty = false
	governs := map[string][]string{}
	for iface, id := range m.active {
		governs[id] = append(governs[id], iface)
	}
	for _, id := range slices.Sorted(maps.Keys(m.endpoints)) {
		status := hostStatusError
		if ifaces := governs[id]; len(ifaces) > 0 {
			status = hostStatusUp
			for _, iface := range ifaces {
				if iface != contract.AllInterfaces && !m.ifaces[iface].Running {
					status = hostStatusDown
				}
			}
		}
		if m.reported[id] != status {
			m.reported[id] = status
			m.onStatus(id, status)
		}
	}
	for _, id := range slices.Sorted(maps.Keys(m.reported)) {
		if _, ok := m.endpoints[id]; !ok {
			delete(m.reported, id)
			m.onStatus(id, "")
		}
	}
}
