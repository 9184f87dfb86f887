package dataplane

import (
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"slices"

	"ocelot/contract"
	"ocelot/dataplane/hostaddrs"
	"ocelot/dataplane/ifacemon"
	"ocelot/dataplane/routing"
)

// ifaceState is a workload interface as the interface monitor last
// reported it.
type ifaceState struct {
	index       int
	up, running bool
}

// routeManager owns the workload interfaces' kernel state as the monitor
// reports it; their routes and permanent neighbours (through
// routing.Table: routes exist while the interface is operationally up);
// and their sysctls (proxy ARP/NDP, forwarding, route_localnet,
// rp_filter, accept_ra), written when an interface becomes operationally
// up. It says whether an interface is ready for its endpoint to be
// reported up. Only workload interfaces are ever touched, and no
// endpoint is routed an address the host itself uses (hostGuard): such
// an address is refused, reported with the endpoint's key, and routed
// again only once the host stops using it.
type routeManager struct {
	ifaces  workloadIfaces
	guard   *hostGuard
	table   *routing.Table
	sysctls sysctls
	log     *slog.Logger
	metrics *metrics
	ipv6    bool

	synced     bool // the monitor has listed every interface once
	hostSynced bool // the host's addresses have been listed once
	etcdSynced bool // the etcd endpoints' addresses are known
	states     map[string]ifaceState
	pending    map[string]struct{} // interfaces whose sysctls are to be written
	failed     map[string]bool     // interfaces whose sysctls could not be written
	want       map[string]routeWant
	refused    map[contract.EndpointID][]netip.Prefix // networks refused, by endpoint

	modes map[string]routing.Mode // interfaces whose routes a live migration holds back or elevates
}

// routeWant is what an interface's owning endpoint asked for.
type routeWant struct {
	owner contract.EndpointID
	nets  []netip.Prefix
	mac   string
}

func newRouteManager(k kernel, cfg Config, ifaces workloadIfaces, mt *metrics, log *slog.Logger) *routeManager {
	table := routing.New(k.routes, cfg.RouteProtocol, cfg.RemoveExternalRoutes, log)
	table.Owns = ifaces.Ours
	return &routeManager{ifaces: ifaces, guard: newHostGuard(ifaces), table: table, sysctls: k.sysctls, log: log, metrics: mt, ipv6: cfg.IPv6,
		states: map[string]ifaceState{}, pending: map[string]struct{}{}, failed: map[string]bool{},
		want: map[string]routeWant{}, refused: map[contract.EndpointID][]netip.Prefix{}}
}

// Synced reports whether the interfaces and the host's addresses are
// known: nothing is routed before, so no endpoint can take an address
// the host uses in the meantime.
func (m *routeManager) Synced() bool { return m.synced && m.hostSynced && m.etcdSynced }

// OnHost records the host's addresses; it reports whether the addresses
// endpoints may not have changed (the floating-IP chains follow them).
func (m *routeManager) OnHost(s hostaddrs.Snapshot) bool {
	m.hostSynced = true
	return m.guardChanged(m.guard.SetHost(s))
}

// OnEtcd records the etcd endpoints' addresses, as OnHost.
func (m *routeManager) OnEtcd(addrs []netip.Addr) bool {
	m.etcdSynced = true
	return m.guardChanged(m.guard.SetEtcd(addrs))
}

func (m *routeManager) guardChanged(changed bool) bool {
	if !changed {
		return false
	}
	m.log.Debug("addresses the host uses", "addrs", m.guard.Protected())
	for _, iface := range slices.Sorted(maps.Keys(m.want)) {
		m.program(iface)
	}
	return true
}

// HostAddrs lists the addresses on the host's interfaces, as last listed
// (for explanations: traffic to them is the host's).
func (m *routeManager) HostAddrs() []netip.Addr {
	out := make([]netip.Addr, 0, len(m.guard.host.Addrs))
	for _, a := range m.guard.host.Addrs {
		out = append(out, a.IP)
	}
	return out
}

// HostUses reports whether an address is one endpoints may not have.
func (m *routeManager) HostUses(a netip.Addr) bool {
	_, taken := m.guard.Taken(netip.PrefixFrom(a, a.BitLen()))
	return taken
}

// OnIfaces records interface states. An interface that becomes
// operationally up is queued for its sysctls; routes follow its state.
// Interfaces that are not workload interfaces are ignored, whatever
// reports them.
func (m *routeManager) OnIfaces(ev ifacemon.Event) {
	for _, s := range ev.States {
		if !m.ifaces.Ours(s.Name) {
			continue
		}
		old := m.states[s.Name]
		if s.Gone {
			delete(m.states, s.Name)
			delete(m.failed, s.Name)
			delete(m.pending, s.Name)
		} else {
			m.states[s.Name] = ifaceState{index: s.Index, up: s.Up, running: s.Running}
			if s.Running && (!old.running || old.index != s.Index) {
				m.pending[s.Name] = struct{}{}
			}
		}
		m.table.SetUp(s.Name, s.Running && !s.Gone)
	}
	if ev.Synced {
		m.synced = true
	}
}

// SetRoutes declares the routes and MAC of the endpoint that owns an
// interface (a workload interface: the table ignores any other).
func (m *routeManager) SetRoutes(iface string, owner contract.EndpointID, nets []netip.Prefix, mac string) {
	if prev, ok := m.want[iface]; ok && prev.owner != owner {
		m.report(prev.owner, nil)
	}
	m.want[iface] = routeWant{owner: owner, nets: nets, mac: mac}
	m.program(iface)
	m.table.SetUp(iface, m.states[iface].running)
	m.table.SetMode(iface, m.modes[iface])
}

// SetPriorities sets the route metrics per family (IPv4, IPv6); zero
// keeps Felix's defaults.
func (m *routeManager) SetPriorities(p [2]routing.Priorities) {
	if p[0] != (routing.Priorities{}) {
		m.table.V4, m.table.V6 = p[0], p[1]
	}
}

// SetMode says how a live migration wants an interface's routes: held
// back, elevated, or (Normal) as usual.
func (m *routeManager) SetMode(iface string, mode routing.Mode) {
	if m.modes == nil {
		m.modes = map[string]routing.Mode{}
	}
	if mode == routing.Normal {
		delete(m.modes, iface)
	} else {
		m.modes[iface] = mode
	}
	m.table.SetMode(iface, mode)
}

// program gives the table an interface's networks less those the host
// uses.
func (m *routeManager) program(iface string) {
	w := m.want[iface]
	allowed, refused := m.guard.Filter(w.nets)
	m.table.Set(iface, allowed, w.mac)
	m.report(w.owner, refused)
}

// report logs and counts the networks newly refused to an endpoint.
func (m *routeManager) report(owner contract.EndpointID, refused []netip.Prefix) {
	prev := m.refused[owner]
	if slices.Equal(prev, refused) {
		return
	}
	if len(refused) == 0 {
		delete(m.refused, owner)
		return
	}
	m.refused[owner] = refused
	for _, n := range refused {
		if !slices.Contains(prev, n) {
			h, _ := m.guard.Taken(n)
			m.log.Warn("endpoint claims an address the host uses; not routed to it (and so not a source it may use)",
				"key", owner.String(), "net", n.String(), "host_address", h.String())
			m.metrics.refusals.WithLabelValues("host_address").Inc()
		}
	}
}

// RemoveRoutes drops an interface's routes: no endpoint owns it now.
func (m *routeManager) RemoveRoutes(iface string) {
	if w, ok := m.want[iface]; ok {
		m.report(w.owner, nil)
		delete(m.want, iface)
	}
	m.table.Remove(iface)
}

// Dirty reports whether Apply has work.
func (m *routeManager) Dirty() bool { return m.table.Dirty() || len(m.pending) > 0 }

// Resync re-checks every interface's routes at the next apply.
func (m *routeManager) Resync() { m.table.Resync() }

// NumRoutes counts the routes in place.
func (m *routeManager) NumRoutes() int { return m.table.NumRoutes() }

// Ready reports whether an interface exists, is up and running, has its
// sysctls and its routes.
func (m *routeManager) Ready(iface string) bool {
	s, ok := m.states[iface]
	return ok && s.up && s.running && !m.failed[iface] && m.table.OK(iface)
}

// Apply writes the pending sysctls, then the routes. Failures stay
// pending for the next apply.
func (m *routeManager) Apply() []error {
	m.configureInterfaces()
	var errs []error
	for iface, err := range m.table.Apply() {
		errs = append(errs, fmt.Errorf("routes of %s: %w", iface, err))
	}
	return errs
}

// ConfigureHost sets the host-wide sysctls Felix sets at start.
func (m *routeManager) ConfigureHost(ipForwarding bool) {
	if ipForwarding {
		_ = m.sysctl("net/ipv4/ip_forward", "1") // sysctl logs a failure
		if m.ipv6 {
			_ = m.sysctl("net/ipv6/conf/all/forwarding", "1")
		}
	}
	_ = m.sysctl("net/netfilter/nf_conntrack_acct", "1")
	if v, err := m.sysctls.ReadSysctl("net/netfilter/nf_conntrack_tcp_loose"); err == nil && v == "0" {
		m.log.Warn("nf_conntrack_tcp_loose is 0: TCP flows whose conntrack entries Ocelot forgets after a policy change cannot be picked up again, even when still allowed")
	}
}

func (m *routeManager) sysctl(path, value string) error {
	err := m.sysctls.WriteSysctl(path, value)
	if err != nil && !isNotExist(err) {
		m.log.Warn("writing sysctl failed", "path", path, "value", value, "err", err)
	}
	return err
}

// rpFilter is the value Felix copies to each workload interface: the
// host's default (strict reverse-path filtering is done in iptables).
func (m *routeManager) rpFilter() string {
	if v, err := m.sysctls.ReadSysctl("net/ipv4/conf/default/rp_filter"); err == nil {
		return v
	}
	return "1"
}

// configureInterfaces writes the per-interface sysctls of interfaces that
// came up: proxy ARP/NDP so the VM's gateway is the host, forwarding,
// route_localnet for the metadata DNAT to 127.0.0.1, no router adverts.
func (m *routeManager) configureInterfaces() {
	for name := range m.pending {
		if !m.ifaces.Ours(name) { // OnIfaces queues only ours; never write another's sysctls
			delete(m.pending, name)
			continue
		}
		var failed bool
		set := func(path, value string, must bool) {
			if err := m.sysctl(path, value); err != nil && must {
				failed = true
			}
		}
		set("net/ipv6/conf/"+name+"/accept_ra", "0", false)
		set("net/ipv4/conf/"+name+"/route_localnet", "1", true)
		set("net/ipv4/neigh/"+name+"/proxy_delay", "0", false)
		set("net/ipv4/conf/"+name+"/proxy_arp", "1", true)
		set("net/ipv4/conf/"+name+"/forwarding", "1", true)
		set("net/ipv4/conf/"+name+"/rp_filter", m.rpFilter(), true)
		if m.ipv6 {
			set("net/ipv6/conf/"+name+"/proxy_ndp", "1", false)
			set("net/ipv6/conf/"+name+"/forwarding", "1", false)
		}
		if _, exists := m.states[name]; !exists {
			failed = false // it went away meanwhile; nothing to configure
		}
		m.failed[name] = failed
		if !failed {
			delete(m.pending, name)
		}
	}
}
