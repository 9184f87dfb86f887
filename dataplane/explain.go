package dataplane

import (
	"context"
	"maps"
	"net/netip"
	"slices"

	"ocelot/contract"
	"ocelot/dataplane/rules"
	rs "ocelot/dataplane/ruleset"
	"ocelot/explain"
)

// explainRequest is a query waiting for the dataplane goroutine.
type explainRequest struct {
	q     explain.Query
	reply chan explain.Answer // buffered: the loop never waits on it
}

// Explain answers a query from the dataplane's own state — the messages
// calc sent, the members of the sets as sent — evaluated by package
// explain, which shares nothing with what renders the rules. The
// dataplane goroutine serves it between applies, so an answer never
// blocks an apply and sees no half-applied change; Explain waits for its
// turn until ctx ends.
func (d *Dataplane) Explain(ctx context.Context, q explain.Query) (explain.Answer, error) {
	r := explainRequest{q: q, reply: make(chan explain.Answer, 1)}
	select {
	case d.explainReqs <- r:
	case <-ctx.Done():
		return explain.Answer{}, ctx.Err()
	}
	select {
	case a := <-r.reply:
		return a, nil
	case <-ctx.Done():
		return explain.Answer{}, ctx.Err()
	}
}

// serveExplain answers a request on the dataplane goroutine.
func (d *Dataplane) serveExplain(r explainRequest) {
	r.reply <- explain.Explain(explainState{d}, r.q)
}

// explainState shows the managers' state to package explain. Its
// methods run on the dataplane goroutine.
type explainState struct{ d *Dataplane }

func (s explainState) Endpoints() []*contract.EndpointUpdate {
	m := s.d.endpoints
	var out []*contract.EndpointUpdate
	for _, iface := range slices.Sorted(maps.Keys(m.owners)) {
		if ep := m.endpoints[m.owners[iface]]; ep != nil {
			out = append(out, ep)
		}
	}
	return out
}

func (s explainState) Policy(id contract.PolicyID) *contract.PolicyUpdate {
	return s.d.policies.policies[id]
}

func (s explainState) Profile(id string) *contract.ProfileUpdate { return s.d.policies.profiles[id] }

func (s explainState) Set(id string) (explain.SetInfo, bool) {
	meta, ok := s.d.ipsets.meta[id]
	if !ok {
		return explain.SetInfo{}, false
	}
	info := explain.SetInfo{ID: id, Type: meta.typ, Selector: meta.selector}
	for _, f := range s.d.families {
		n, _ := f.sets.Size(id)
		info.Names = append(info.Names, f.sets.Name(id))
		info.Members = append(info.Members, n)
		info.Families = append(info.Families, f.v)
	}
	return info, true
}

func (s explainState) InSet(id string, addr netip.Addr, proto uint8, port uint16) bool {
	for _, f := range s.d.families {
		if (f.v == 6) == addr.Is6() {
			return f.sets.Contains(id, addr, proto, port)
		}
	}
	return false
}

func (s explainState) EndpointChains(iface string) (string, string) {
	return rules.ToWorkloadChainName(iface), rules.FromWorkloadChainName(iface)
}

func (s explainState) PolicyChain(id contract.PolicyID, inbound bool) string {
	return rules.PolicyChainName(id, inbound)
}

func (s explainState) ProfileChain(id string, inbound bool) string {
	return rules.ProfileChainName(id, inbound)
}

func (s explainState) Settings() explain.Settings {
	d := s.d
	rc := d.cfg.Rules
	st := explain.Settings{InSync: d.appliedOnce, Pending: d.dirty(), DropOverride: d.cfg.DropActionOverride, LogPrefix: rc.LogPrefix,
		DenyAction: verdictName(rc.Deny), DropVXLAN: !rc.AllowVXLAN, VXLANPort: rc.VXLANPort, DropIPIP: !rc.AllowIPIP,
		OpenStack: rc.OpenStack, MetadataPort: rc.MetadataPort, EndpointToHost: verdictName(rc.EndpointToHost)}
	if st.DropOverride == "" {
		st.DropOverride = "Drop"
	}
	if a, err := netip.ParseAddr(rc.MetadataAddr); err == nil {
		st.MetadataAddr = a
	}
	st.HostAddrs = d.routes.HostAddrs()
	return st
}

// verdictName names a configured verdict as its parameter does.
func verdictName(a rs.Action) string {
	switch a.(type) {
	case rs.Accept:
		return "ACCEPT"
	case rs.Reject:
		return "REJECT"
	case rs.Return:
		return "RETURN"
	}
	return "DROP"
}
