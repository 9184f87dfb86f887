package dataplane

import (
	"errors"
	"os"
	"strings"

	"ocelot/contract"
	"ocelot/dataplane/ifacemon"
)

// onIfaces records interface states. A workload interface that becomes
// operationally up gets its sysctls and routes; one that goes down loses
// its routes; either way its endpoint's status changes.
func (d *Dataplane) onIfaces(ev ifacemon.Event) {
	ifaceBatchSize.Observe(float64(len(ev.States)))
	for _, s := range ev.States {
		old := d.st.ifaces[s.Name]
		if s.Gone {
			delete(d.st.ifaces, s.Name)
			delete(d.st.sysctlFailed, s.Name)
			delete(d.st.sysctlPending, s.Name)
		} else {
			d.st.ifaces[s.Name] = ifaceInfo{index: s.Index, up: s.Up, running: s.Running}
			if s.Running && (!old.running || old.index != s.Index) {
				d.st.sysctlPending[s.Name] = struct{}{}
			}
		}
		d.routes.SetUp(s.Name, s.Running && !s.Gone)
		d.st.statusDirty = true
	}
	if ev.Synced {
		d.st.ifacesSynced = true
	}
}

// configureKernel sets the host-wide sysctls Felix sets at start.
func (d *Dataplane) configureKernel() {
	if d.cfg.IPForwarding {
		d.sysctl("/proc/sys/net/ipv4/ip_forward", "1")
		if d.cfg.IPv6 {
			d.sysctl("/proc/sys/net/ipv6/conf/all/forwarding", "1")
		}
	}
	d.sysctl("/proc/sys/net/netfilter/nf_conntrack_acct", "1")
	if v, err := os.ReadFile("/proc/sys/net/netfilter/nf_conntrack_tcp_loose"); err == nil && strings.TrimSpace(string(v)) == "0" {
		d.log.Warn("nf_conntrack_tcp_loose is 0: TCP flows whose conntrack entries Ocelot forgets after a policy change cannot be picked up again, even when still allowed")
	}
}

func (d *Dataplane) sysctl(path, value string) error {
	err := os.WriteFile(path, []byte(value), 0o644)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		d.log.Warn("writing sysctl failed", "path", path, "value", value, "err", err)
	}
	return err
}

// rpFilter is the value Felix copies to each workload interface: the
// host's default (strict reverse-path filtering is done in iptables).
func (d *Dataplane) rpFilter() string {
	if v, err := os.ReadFile("/proc/sys/net/ipv4/conf/default/rp_filter"); err == nil {
		return strings.TrimSpace(string(v))
	}
	return "1"
}

// configureInterfaces writes the per-interface sysctls of interfaces that
// came up: proxy ARP/NDP so the VM's gateway is the host, forwarding,
// route_localnet for the metadata DNAT to 127.0.0.1, no router adverts.
func (d *Dataplane) configureInterfaces() {
	for name := range d.st.sysctlPending {
		var failed bool
		set := func(path, value string, must bool) {
			if err := d.sysctl(path, value); err != nil && must {
				failed = true
			}
		}
		set("/proc/sys/net/ipv6/conf/"+name+"/accept_ra", "0", false)
		set("/proc/sys/net/ipv4/conf/"+name+"/route_localnet", "1", true)
		set("/proc/sys/net/ipv4/neigh/"+name+"/proxy_delay", "0", false)
		set("/proc/sys/net/ipv4/conf/"+name+"/proxy_arp", "1", true)
		set("/proc/sys/net/ipv4/conf/"+name+"/forwarding", "1", true)
		set("/proc/sys/net/ipv4/conf/"+name+"/rp_filter", d.rpFilter(), true)
		if d.cfg.IPv6 {
			set("/proc/sys/net/ipv6/conf/"+name+"/proxy_ndp", "1", false)
			set("/proc/sys/net/ipv6/conf/"+name+"/forwarding", "1", false)
		}
		if _, exists := d.st.ifaces[name]; !exists {
			failed = false // it went away meanwhile; nothing to configure
		}
		d.st.sysctlFailed[name] = failed
		if !failed {
			delete(d.st.sysctlPending, name)
		}
		d.st.statusDirty = true
	}
}

// reportStatuses sends each endpoint's status when it changes: up when its
// interface exists, is operationally up, and is fully configured.
func (d *Dataplane) reportStatuses() {
	if !d.st.statusDirty || d.cfg.OnStatus == nil {
		d.st.statusDirty = false
		return
	}
	d.st.statusDirty = false
	for id, ep := range d.st.endpoints {
		status := "down"
		if i, ok := d.st.ifaces[ep.Name]; ok && i.up && i.running && !d.st.sysctlFailed[ep.Name] &&
			d.st.ifaceOwner[ep.Name] == id && d.routes.OK(ep.Name) {
			status = "up"
		}
		if d.st.reported[id] != status {
			d.st.reported[id] = status
			d.cfg.OnStatus(id, status)
		}
	}
	for id := range d.st.reported {
		if _, ok := d.st.endpoints[id]; !ok {
			delete(d.st.reported, id)
			d.cfg.OnStatus(id, "")
		}
	}
}

// EndpointStatus is a snapshot of one endpoint's reported status (tests).
func (d *Dataplane) endpointStatus(id contract.EndpointID) string { return d.st.reported[id] }
