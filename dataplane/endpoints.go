package dataplane

import (
	"cmp"
	"log/slog"
	"maps"
	"net/netip"
	"reflect"
	"slices"

	"ocelot/contract"
	"ocelot/dataplane/qos"
	"ocelot/dataplane/rules"
)

// chainRefs are the policy and profile chains an interface's endpoint
// chains jump to, held in the policy manager in the owner's name.
type chainRefs struct {
	owner contract.EndpointID
	keys  []chainKey
}

// endpointManager owns the local endpoints calc sent and what follows from
// which endpoint owns which interface: the per-endpoint chains (cali-tw-,
// cali-fw-), the dispatch chains that send each interface to them, the
// floating-IP NAT chains (cali-fip-dnat, cali-fip-snat) and the
// anti-spoofing exemptions (cali-rpf-skip), in every family. When two
// endpoints name one interface, the least endpoint ID owns it and the
// other waits, shadowed, until it goes. The manager tells the policy
// manager which chains each owner's endpoint chains jump to (a shadowed
// endpoint holds no references: nothing in the kernel jumps for it), the
// route manager which
// routes each interface carries, and the conntrack manager each
// endpoint's addresses; it reports endpoint statuses.
type endpointManager struct {
	ifaces   workloadIfaces
	metrics  *metrics
	families []*family
	policies *policyManager
	routes   *routeManager
	flows    *conntrackManager
	obs      *observer
	log      *slog.Logger
	ipv6     bool
	fips     bool // FloatingIPs=Enabled: every endpoint's floating IPs are routed
	onStatus func(contract.EndpointID, string)

	// bandwidth gets the QoS controls of each interface's owner (set
	// after construction).
	bandwidth *qos.Table

	endpoints map[contract.EndpointID]*contract.EndpointUpdate
	claims    map[string]map[contract.EndpointID]struct{} // interface -> endpoints naming it
	owners    map[string]contract.EndpointID              // interface -> the claimant that owns it
	chains    map[string][]string                         // interface -> its endpoint chains, as programmed
	refs      map[string]chainRefs                        // interface -> the policy chains they jump to
	dispatch  map[int][]string                            // family -> dispatch chains, as programmed

	dispatchDirty, natDirty, rpfDirty bool
	statusDirty                       bool
	reported                          map[contract.EndpointID]string
	refused                           map[contract.EndpointID]string // endpoints naming an interface that is not ours -> that name
	files                             *statusFiles                   // EndpointStatusPathPrefix
}

func newEndpointManager(families []*family, policies *policyManager, routes *routeManager, flows *conntrackManager, obs *observer,
	cfg Config, ifaces workloadIfaces, mt *metrics, log *slog.Logger) *endpointManager {
	m := &endpointManager{ifaces: ifaces, metrics: mt, refused: map[contract.EndpointID]string{},
		files:    newStatusFiles(cfg.EndpointStatusPrefix, log),
		families: families, policies: policies, routes: routes, flows: flows, obs: obs, log: log,
		ipv6: cfg.IPv6, fips: cfg.FloatingIPs, onStatus: cfg.OnStatus,
		endpoints: map[contract.EndpointID]*contract.EndpointUpdate{}, claims: map[string]map[contract.EndpointID]struct{}{},
		owners: map[string]contract.EndpointID{}, chains: map[string][]string{}, refs: map[string]chainRefs{}, dispatch: map[int][]string{},
		dispatchDirty: true, natDirty: true, rpfDirty: true, reported: map[contract.EndpointID]string{}}
	m.CompleteDeferredWork() // the chains the static ones jump to, empty
	return m
}

// OnUpdate records an endpoint: its policies, its claim on its interface,
// and, if it owns the interface, its chains and routes. An endpoint that
// names an interface which is not a workload interface (eth0, a name
// without the prefix, an excluded or malformed one) is refused: it
// claims nothing, so no chain, dispatch rule, route or sysctl follows
// from it, and it is reported down.
func (m *endpointManager) OnUpdate(u *contract.EndpointUpdate) {
	if !m.ifaces.Ours(u.Name) {
		m.refuse(u)
		return
	}
	delete(m.refused, u.ID)
	old := m.endpoints[u.ID]
	if old != nil && (!reflect.DeepEqual(old.Tiers, u.Tiers) || !slices.Equal(old.ProfileIDs, u.ProfileIDs)) {
		m.flows.ForgetEndpoints(u.ID) // its policies changed: re-check its flows against the new ones
	}
	if old != nil {
		// A flow through a floating IP that went would keep its DNAT.
		m.flows.ForgetNATs(old.IPv4NAT, u.IPv4NAT)
		m.flows.ForgetNATs(old.IPv6NAT, u.IPv6NAT)
	}
	m.flows.SetEndpoint(u.ID, u)
	m.endpoints[u.ID] = u
	if old != nil && old.Name != u.Name {
		m.unclaim(old.Name, u.ID)
	}
	m.claim(u.Name, u.ID)
	m.reconcile(u.Name, u.ID)
	if old == nil || !slices.Equal(old.IPv4NAT, u.IPv4NAT) || !slices.Equal(old.IPv6NAT, u.IPv6NAT) {
		m.natDirty = true
	}
	if old == nil || !slices.Equal(old.AllowSpoofedSourcePrefixes, u.AllowSpoofedSourcePrefixes) {
		m.rpfDirty = true
	}
	m.statusDirty = true
}

// OnRemove forgets an endpoint; a shadowed claimant takes its interface.
func (m *endpointManager) OnRemove(id contract.EndpointID) {
	ep := m.endpoints[id]
	if ep == nil {
		return
	}
	if _, refused := m.refused[id]; refused {
		delete(m.refused, id)
		delete(m.endpoints, id)
		m.statusDirty = true
		return
	}
	m.flows.ForgetEndpoints(id)
	m.flows.RemoveEndpoint(id)
	delete(m.endpoints, id)
	m.unclaim(ep.Name, id)
	m.natDirty, m.rpfDirty, m.statusDirty = true, true, true
}

// refuse records an endpoint that names a foreign interface: whatever it
// claimed before is released, and it stays down until it names one of
// ours.
func (m *endpointManager) refuse(u *contract.EndpointUpdate) {
	if m.refused[u.ID] != u.Name {
		m.log.Warn("endpoint names an interface that is not a workload interface (InterfacePrefix, InterfaceExclude); not programmed",
			"key", u.ID.String(), "iface", u.Name)
		m.metrics.refusals.WithLabelValues("foreign_interface").Inc()
	}
	if m.endpoints[u.ID] != nil {
		m.OnRemove(u.ID)
	}
	m.refused[u.ID] = u.Name
	m.endpoints[u.ID] = u // known, so that its status is reported (down) and withdrawn
	m.statusDirty = true
}

func (m *endpointManager) claim(iface string, id contract.EndpointID) {
	if m.claims[iface] == nil {
		m.claims[iface] = map[contract.EndpointID]struct{}{}
	}
	m.claims[iface][id] = struct{}{}
}

func (m *endpointManager) unclaim(iface string, id contract.EndpointID) {
	delete(m.claims[iface], id)
	if len(m.claims[iface]) == 0 {
		delete(m.claims, iface)
	}
	m.reconcile(iface, contract.EndpointID{})
}

// reconcile gives an interface to its least claimant, (re)programming its
// chains and routes when the owner changes or is the endpoint that
// changed; with no claimant left, its chains and routes go.
func (m *endpointManager) reconcile(iface string, changed contract.EndpointID) {
	claimants := m.claims[iface]
	prev, had := m.owners[iface]
	if len(claimants) == 0 {
		if had {
			m.release(iface)
		}
		return
	}
	owner := slices.MinFunc(slices.Collect(maps.Keys(claimants)), compareEndpoints)
	if len(claimants) > 1 && changed != (contract.EndpointID{}) {
		shadowed := changed
		if changed == owner {
			shadowed = prev
		}
		m.log.Warn("two endpoints claim one interface; the first by ID owns it", "iface", iface, "owner", owner.String(), "shadowed", shadowed.String())
	}
	if had && prev == owner && changed != owner {
		return
	}
	m.owners[iface] = owner
	if !had {
		m.dispatchDirty = true
	}
	if had && prev != owner {
		m.natDirty, m.rpfDirty = true, true
	}
	m.program(iface, m.endpoints[owner])
}

func compareEndpoints(a, b contract.EndpointID) int {
	return cmp.Or(cmp.Compare(a.Orchestrator, b.Orchestrator), cmp.Compare(a.WorkloadID, b.WorkloadID), cmp.Compare(a.EndpointID, b.EndpointID))
}

// program writes an interface's endpoint chains in every family,
// references the policy chains they jump to (before dropping the previous
// references, so a chain both use stays programmed) and declares the
// interface's routes.
func (m *endpointManager) program(iface string, ep *contract.EndpointUpdate) {
	keys := chainKeysOf(ep)
	m.policies.Ref(ep.ID, keys)
	if prev, ok := m.refs[iface]; ok {
		m.policies.Unref(prev.owner, slices.DeleteFunc(slices.Clone(prev.keys), func(k chainKey) bool {
			return prev.owner == ep.ID && slices.Contains(keys, k)
		}))
	}
	m.refs[iface] = chainRefs{owner: ep.ID, keys: keys}
	var names []string
	for _, f := range m.families {
		for i, ch := range f.rules.EndpointChains(ep) {
			f.tables.Filter.UpdateChain(ch)
			m.obs.setCounted(f.v, counterOwner{endpoint: ep.ID.String(), iface: iface, direction: directionName(i == 0)}, ch, f.rules, f.tables.Filter)
			if !slices.Contains(names, ch.Name) {
				names = append(names, ch.Name)
			}
		}
	}
	m.obs.setDropRefs("iface "+iface, append(rules.EndpointDropRefs(ep, true), rules.EndpointDropRefs(ep, false)...))
	m.obs.setIface(iface, ep.ID)
	for _, stale := range m.chains[iface] {
		if !slices.Contains(names, stale) {
			m.removeChain(stale)
		}
	}
	m.chains[iface] = names
	m.routes.SetRoutes(iface, ep.ID, m.routedNets(ep), ep.MAC)
	if m.bandwidth != nil {
		m.bandwidth.Set(iface, ep.QoS)
	}
}

// release drops what an interface carried: no endpoint claims it now.
func (m *endpointManager) release(iface string) {
	for _, name := range m.chains[iface] {
		m.removeChain(name)
	}
	delete(m.chains, iface)
	if prev, ok := m.refs[iface]; ok {
		m.policies.Unref(prev.owner, prev.keys)
		delete(m.refs, iface)
	}
	delete(m.owners, iface)
	m.obs.setDropRefs("iface "+iface, nil)
	m.obs.setIface(iface, contract.EndpointID{})
	m.routes.RemoveRoutes(iface)
	if m.bandwidth != nil {
		m.bandwidth.Remove(iface)
	}
	m.dispatchDirty, m.natDirty, m.rpfDirty = true, true, true
}

func (m *endpointManager) removeChain(name string) {
	for _, f := range m.families {
		f.tables.Filter.RemoveChain(name)
	}
	m.obs.removeCounted(name)
}

// routedNets are an endpoint's addresses plus, for OpenStack endpoints (or
// with FloatingIPs enabled), its floating IPs.
func (m *endpointManager) routedNets(u *contract.EndpointUpdate) []netip.Prefix {
	nets := append([]netip.Prefix(nil), u.IPv4Nets...)
	if m.ipv6 {
		nets = append(nets, u.IPv6Nets...)
	}
	if u.ID.Orchestrator == "openstack" || m.fips {
		for _, n := range u.IPv4NAT {
			nets = append(nets, netip.PrefixFrom(n.External, 32))
		}
		if m.ipv6 {
			for _, n := range u.IPv6NAT {
				nets = append(nets, netip.PrefixFrom(n.External, 128))
			}
		}
	}
	return nets
}

// Dirty reports whether CompleteDeferredWork or a status report is due.
func (m *endpointManager) Dirty() bool {
	return m.dispatchDirty || m.natDirty || m.rpfDirty || m.statusDirty || m.files.Dirty()
}

// CompleteDeferredWork renders the chains that depend on every owning
// endpoint (dispatch, floating IPs, spoofing exemptions) once per apply,
// when a change touched them. Dispatch chains no longer rendered are
// removed: the manager knows which it programmed.
func (m *endpointManager) CompleteDeferredWork() {
	if !m.dispatchDirty && !m.natDirty && !m.rpfDirty {
		return
	}
	names := slices.Sorted(maps.Keys(m.owners))
	eps := make([]*contract.EndpointUpdate, len(names))
	for i, name := range names {
		eps[i] = m.endpoints[m.owners[name]]
	}
	for _, f := range m.families {
		if m.dispatchDirty {
			var programmed []string
			for _, ch := range f.rules.DispatchChains(names) {
				f.tables.Filter.UpdateChain(ch)
				programmed = append(programmed, ch.Name)
			}
			for _, old := range m.dispatch[f.v] {
				if !slices.Contains(programmed, old) {
					f.tables.Filter.RemoveChain(old)
				}
			}
			m.dispatch[f.v] = programmed
		}
		if m.natDirty {
			for _, ch := range f.rules.FloatingIPChains(m.withoutHostNATs(eps)) {
				f.tables.NAT.UpdateChain(ch)
			}
		}
		if m.rpfDirty {
			f.tables.Raw.UpdateChain(f.rules.RPFSkipChain(eps))
		}
	}
	m.dispatchDirty, m.natDirty, m.rpfDirty = false, false, false
}

// withoutHostNATs leaves out the floating IPs whose external or internal
// address the host uses: a DNAT from the host's own address (nat OUTPUT
// jumps to the floating-IP chain too) would send the host's traffic into
// a VM. The route manager has reported them with the endpoint's key.
func (m *endpointManager) withoutHostNATs(eps []*contract.EndpointUpdate) []*contract.EndpointUpdate {
	out := eps
	for i, ep := range eps {
		keep := func(nats []contract.NAT) []contract.NAT {
			var kept []contract.NAT
			for _, n := range nats {
				if !m.routes.HostUses(n.External) && !m.routes.HostUses(n.Internal) {
					kept = append(kept, n)
				}
			}
			return kept
		}
		v4, v6 := keep(ep.IPv4NAT), keep(ep.IPv6NAT)
		if len(v4) == len(ep.IPv4NAT) && len(v6) == len(ep.IPv6NAT) {
			continue
		}
		if &out[0] == &eps[0] {
			out = slices.Clone(eps)
		}
		c := *ep
		c.IPv4NAT, c.IPv6NAT = v4, v6
		out[i] = &c
	}
	return out
}

// ReportStatuses sends each endpoint's status when it changed: "up" when
// it owns its interface and the interface is ready, "" when it is gone.
// It looks only after something that decides a status changed.
func (m *endpointManager) ReportStatuses() {
	if !m.statusDirty || (m.onStatus == nil && m.files.dir == "") {
		m.statusDirty = false
		return
	}
	m.statusDirty = false
	report := func(id contract.EndpointID, status string) {
		if m.onStatus != nil {
			m.onStatus(id, status)
		}
	}
	for _, id := range slices.SortedFunc(maps.Keys(m.endpoints), compareEndpoints) {
		ep := m.endpoints[id]
		status := "down"
		if m.owners[ep.Name] == id && m.routes.Ready(ep.Name) {
			status = "up"
		}
		m.files.Set(id, ep, status == "up")
		if m.reported[id] != status {
			m.reported[id] = status
			report(id, status)
		}
	}
	for _, id := range slices.SortedFunc(maps.Keys(m.reported), compareEndpoints) {
		if _, ok := m.endpoints[id]; !ok {
			delete(m.reported, id)
			m.files.Set(id, nil, false)
			report(id, "")
		}
	}
}

// describe names the endpoint whose interface a chain serves ("" for
// none).
func (m *endpointManager) describe(chain string) string {
	for iface, names := range m.chains {
		if slices.Contains(names, chain) {
			return "endpoint " + m.owners[iface].String()
		}
	}
	return ""
}
