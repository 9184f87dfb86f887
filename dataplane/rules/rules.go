// Package rules renders Ocelot's desired state as iptables chains: the
// static skeleton hooked into the kernel's chains, the dispatch chains that
// send each workload interface to its own chains (and drop any unknown
// one), the per-endpoint chains that walk tiers and profiles, and the
// policy and profile chains that hold the rules.
//
// The chains are those Felix renders in iptables mode (docs/calico.md,
// "Felix's rendering"), rule for rule, so that their hash comments match Felix's; the
// tests check them against what Felix programmed on a real host. Known
// differences: no DSCP rule in mangle (no DSCP manager), and overflow
// blocks re-clear their scratch mark (Felix's S1 quirk is fixed).
//
// Pure: no I/O.
package rules

import (
	"fmt"
	"math/bits"
	"net/netip"

	"ocelot/contract"
	ipt "ocelot/dataplane/iptables"
)

// Marks are the mark bits the rules use, allocated from IptablesMarkMask.
type Marks struct {
	Accept, Pass, Drop, Scratch0, Scratch1 uint32
}

// MarksFromMask allocates single bits from the lowest set bit of mask
// upward, as Felix does.
func MarksFromMask(mask uint32) (Marks, error) {
	var got []uint32
	for m := mask; m != 0 && len(got) < 5; m &= m - 1 {
		got = append(got, 1<<bits.TrailingZeros32(m))
	}
	if len(got) < 5 {
		return Marks{}, fmt.Errorf("IptablesMarkMask %#x has %d bits; Ocelot needs 5", mask, bits.OnesCount32(mask))
	}
	return Marks{got[0], got[1], got[2], got[3], got[4]}, nil
}

// Config is what rendering needs to know.
type Config struct {
	Family          int      // 4 or 6
	Prefixes        []string // InterfacePrefix
	Marks           Marks
	FilterAllow     string // ACCEPT or RETURN
	MangleAllow     string // ACCEPT or RETURN
	Deny            string // DROP or REJECT
	EndpointToHost  string // DROP, RETURN or ACCEPT
	OpenStack       bool   // OpenStack special cases (metadata, DHCP, DNS)
	MetadataAddr    string
	MetadataPort    int
	NoInvalidCheck  bool // DisableConntrackInvalidCheck
	AllowVXLAN      bool
	AllowIPIP       bool
	VXLANPort       int
	LogPrefix       string
	SetName         func(id string) string // the kernel name of an IP set in this family
	FloatingIPsOpen bool                   // FloatingIPs=Enabled (OpenStack endpoints always get theirs)
}

func (c *Config) allow() string { return "--jump " + c.FilterAllow }
func (c *Config) deny() string  { return "--jump " + c.Deny }

// denyVerb names the deny action in comments ("Drop" or "Reject").
func (c *Config) denyVerb() string {
	if c.Deny == "REJECT" {
		return "Reject"
	}
	return "Drop"
}

// Chain names.
const (
	ChainFromWorkloadDispatch = "cali-from-wl-dispatch"
	ChainToWorkloadDispatch   = "cali-to-wl-dispatch"
	ChainWorkloadToHost       = "cali-wl-to-host"
	ChainRPFSkip              = "cali-rpf-skip"
	ChainFIPDNAT              = "cali-fip-dnat"
	ChainFIPSNAT              = "cali-fip-snat"
)

// PolicyChain names the inbound (cali-pi-) or outbound (cali-po-) chain of a policy.
func PolicyChainName(id contract.PolicyID, inbound bool) string {
	if inbound {
		return ipt.LimitedName("cali-pi-", id.String())
	}
	return ipt.LimitedName("cali-po-", id.String())
}

// ProfileChain names the inbound (cali-pri-) or outbound (cali-pro-) chain of a profile.
func ProfileChainName(id string, inbound bool) string {
	if inbound {
		return ipt.LimitedName("cali-pri-", id)
	}
	return ipt.LimitedName("cali-pro-", id)
}

// ToWorkloadChain and FromWorkloadChain name an endpoint's chains.
func ToWorkloadChainName(iface string) string   { return ipt.LimitedName("cali-tw-", iface) }
func FromWorkloadChainName(iface string) string { return ipt.LimitedName("cali-fw-", iface) }

// Hooks are the rules a table keeps in the kernel's chains.
type Hooks struct {
	Inserts map[string][]ipt.Rule
	Appends map[string][]ipt.Rule
}

// Static returns the skeleton chains of each table and their hooks.
func (c *Config) Static() (map[string][]*ipt.Chain, map[string]Hooks) {
	m := c.Marks
	all := m.Accept | m.Pass | m.Scratch0 | m.Scratch1
	chains := map[string][]*ipt.Chain{}
	hooks := map[string]Hooks{}
	jump := func(chain string) []ipt.Rule { return []ipt.Rule{{Action: ipt.Jump(chain)}} }

	// raw: mark packets from workloads, strict reverse-path check against
	// their routes (anti-spoofing), with the DHCP discover exception.
	pre := []ipt.Rule{{Action: ipt.ClearMark(all)}}
	for _, p := range c.Prefixes {
		pre = append(pre, ipt.Rule{Match: ipt.Match{}.InInterface(p + "+"), Action: ipt.SetMark(m.Scratch0)})
	}
	pre = append(pre, ipt.Rule{Match: ipt.Match{}.MarkSet(m.Scratch0), Action: ipt.Jump(ChainRPFSkip)})
	if c.OpenStack && c.Family == 4 {
		pre = append(pre, ipt.Rule{Match: ipt.Match{}.Protocol("udp").SourceNet("0.0.0.0").SourcePorts("68").DestPorts("67"), Action: ipt.Accept})
	}
	pre = append(pre,
		ipt.Rule{Match: ipt.Match{}.MarkSet(m.Scratch0).RPFCheckFailed(), Action: c.deny()},
		ipt.Rule{Match: ipt.Match{}.MarkClear(m.Scratch0), Action: ipt.Jump("cali-from-host-endpoint")},
		ipt.Rule{Match: ipt.Match{}.MarkSet(m.Accept), Action: ipt.Accept},
	)
	chains["raw"] = []*ipt.Chain{
		{Name: "cali-PREROUTING", Rules: pre},
		{Name: "cali-OUTPUT", Rules: []ipt.Rule{
			{Action: ipt.ClearMark(all)},
			{Action: ipt.Jump("cali-to-host-endpoint")},
			{Match: ipt.Match{}.MarkSet(m.Accept), Action: ipt.Accept},
		}},
		{Name: "cali-from-host-endpoint"}, {Name: "cali-to-host-endpoint"},
	}
	hooks["raw"] = Hooks{Inserts: map[string][]ipt.Rule{"PREROUTING": jump("cali-PREROUTING"), "OUTPUT": jump("cali-OUTPUT")}}

	// mangle: accept what is established or already accepted early.
	mangleAllow := "--jump " + c.MangleAllow
	hepOK := []string{"Host endpoint policy accepted packet."}
	chains["mangle"] = []*ipt.Chain{
		{Name: "cali-PREROUTING", Rules: []ipt.Rule{
			{Match: ipt.Match{}.ConntrackState("RELATED,ESTABLISHED"), Action: mangleAllow},
			{Match: ipt.Match{}.MarkSet(m.Accept), Action: mangleAllow},
			{Action: ipt.Jump("cali-from-host-endpoint")},
			{Comment: hepOK, Match: ipt.Match{}.MarkSet(m.Accept), Action: mangleAllow},
		}},
		{Name: "cali-POSTROUTING", Rules: []ipt.Rule{
			{Match: ipt.Match{}.MarkSet(m.Accept), Action: ipt.Return},
			{Action: ipt.ClearMark(all)},
			{Match: ipt.Match{}.ConntrackState("DNAT"), Action: ipt.Jump("cali-to-host-endpoint")},
			{Comment: hepOK, Match: ipt.Match{}.MarkSet(m.Accept), Action: ipt.Return},
		}},
		{Name: "cali-from-host-endpoint"}, {Name: "cali-to-host-endpoint"},
	}
	hooks["mangle"] = Hooks{Inserts: map[string][]ipt.Rule{"PREROUTING": jump("cali-PREROUTING"), "POSTROUTING": jump("cali-POSTROUTING")}}

	// nat: floating IPs and the metadata DNAT.
	natPre := []ipt.Rule{{Action: ipt.Jump(ChainFIPDNAT)}}
	if c.OpenStack && c.Family == 4 && c.metadataIP() != "" {
		natPre = append(natPre, ipt.Rule{
			Match:  ipt.Match{}.Protocol("tcp").DestPorts("80").DestNet("169.254.169.254/32"),
			Action: ipt.DNAT(c.metadataIP(), uint16(c.MetadataPort)),
		})
	}
	chains["nat"] = []*ipt.Chain{
		{Name: "cali-PREROUTING", Rules: natPre},
		{Name: "cali-OUTPUT", Rules: jump(ChainFIPDNAT)},
		{Name: "cali-POSTROUTING", Rules: []ipt.Rule{{Action: ipt.Jump(ChainFIPSNAT)}, {Action: ipt.Jump("cali-nat-outgoing")}}},
		{Name: "cali-nat-outgoing"},
	}
	hooks["nat"] = Hooks{
		Inserts: map[string][]ipt.Rule{"PREROUTING": jump("cali-PREROUTING"), "OUTPUT": jump("cali-OUTPUT")},
		Appends: map[string][]ipt.Rule{"POSTROUTING": jump("cali-POSTROUTING")},
	}

	// filter.
	forward := []ipt.Rule{
		{Action: ipt.ClearMark(m.Pass | m.Scratch0 | m.Scratch1)},
		{Match: ipt.Match{}.MarkClear(m.Accept), Action: ipt.Jump("cali-from-hep-forward")},
	}
	for _, p := range c.Prefixes {
		forward = append(forward,
			ipt.Rule{Match: ipt.Match{}.InInterface(p + "+"), Action: ipt.Jump(ChainFromWorkloadDispatch)},
			ipt.Rule{Match: ipt.Match{}.OutInterface(p + "+"), Action: ipt.Jump(ChainToWorkloadDispatch)})
	}
	forward = append(forward, ipt.Rule{Action: ipt.Jump("cali-to-hep-forward")}, ipt.Rule{Action: ipt.Jump("cali-cidr-block")})
	var input []ipt.Rule
	for _, p := range c.Prefixes {
		input = append(input, ipt.Rule{Match: ipt.Match{}.InInterface(p + "+"), Action: ipt.Goto(ChainWorkloadToHost)})
	}
	input = append(input,
		ipt.Rule{Match: ipt.Match{}.MarkSet(m.Accept), Action: c.allow()},
		ipt.Rule{Action: ipt.ClearMark(all)},
		ipt.Rule{Action: ipt.Jump("cali-from-host-endpoint")},
		ipt.Rule{Comment: hepOK, Match: ipt.Match{}.MarkSet(m.Accept), Action: c.allow()},
	)
	output := []ipt.Rule{{Match: ipt.Match{}.MarkSet(m.Accept), Action: c.allow()}}
	for _, p := range c.Prefixes {
		output = append(output, ipt.Rule{Match: ipt.Match{}.OutInterface(p + "+"), Action: ipt.Return})
	}
	output = append(output,
		ipt.Rule{Action: ipt.ClearMark(all)},
		ipt.Rule{Match: ipt.Match{}.NotConntrackState("DNAT"), Action: ipt.Jump("cali-to-host-endpoint")},
		ipt.Rule{Comment: hepOK, Match: ipt.Match{}.MarkSet(m.Accept), Action: c.allow()},
	)
	chains["filter"] = []*ipt.Chain{
		{Name: "cali-FORWARD", Rules: forward},
		{Name: "cali-INPUT", Rules: input},
		{Name: "cali-OUTPUT", Rules: output},
		{Name: ChainWorkloadToHost, Rules: c.workloadToHost()},
		{Name: "cali-from-hep-forward"}, {Name: "cali-to-hep-forward"}, {Name: "cali-cidr-block"},
		{Name: "cali-from-host-endpoint"}, {Name: "cali-to-host-endpoint"},
	}
	hooks["filter"] = Hooks{
		Inserts: map[string][]ipt.Rule{"INPUT": jump("cali-INPUT"), "FORWARD": jump("cali-FORWARD"), "OUTPUT": jump("cali-OUTPUT")},
		Appends: map[string][]ipt.Rule{"FORWARD": {
			{Comment: []string{"Policy explicitly accepted packet."}, Match: ipt.Match{}.MarkSet(m.Accept), Action: c.allow()},
			{Action: ipt.SetMark(m.Accept)},
		}},
	}
	return chains, hooks
}

// metadataIP is MetadataAddr when it is an address of this family, as
// Felix renders it (a host name gives no metadata rules).
func (c *Config) metadataIP() string {
	a, err := netip.ParseAddr(c.MetadataAddr)
	if err != nil || a.Is4() != (c.Family == 4) {
		return ""
	}
	return a.String()
}

// workloadToHost is the chain for traffic from a VM to the host: neighbour
// discovery (IPv6), then OpenStack's metadata, DHCP and DNS, accepted
// before and regardless of the VM's egress policy; then the egress policy;
// then DefaultEndpointToHostAction.
func (c *Config) workloadToHost() []ipt.Rule {
	var r []ipt.Rule
	if c.Family == 6 {
		for _, t := range []string{"130", "131", "132", "133", "135", "136"} {
			r = append(r, ipt.Rule{Match: ipt.Match{}.Protocol("58").ICMPv6Type(t), Action: c.allow()})
		}
	}
	if c.OpenStack {
		if c.Family == 4 && c.metadataIP() != "" {
			r = append(r, ipt.Rule{Match: ipt.Match{}.Protocol("tcp").DestNet(c.metadataIP()).DestPorts(fmt.Sprint(c.MetadataPort)), Action: c.allow()})
		}
		if c.Family == 4 {
			r = append(r, ipt.Rule{Match: ipt.Match{}.Protocol("udp").SourcePorts("68").DestPorts("67"), Action: c.allow()})
		} else {
			r = append(r, ipt.Rule{Match: ipt.Match{}.Protocol("udp").SourcePorts("546").DestPorts("547"), Action: c.allow()})
		}
		r = append(r, ipt.Rule{Match: ipt.Match{}.Protocol("udp").DestPorts("53"), Action: c.allow()})
	}
	r = append(r, ipt.Rule{Action: ipt.Jump(ChainFromWorkloadDispatch)})
	r = append(r, ipt.Rule{Comment: []string{"Configured DefaultEndpointToHostAction"}, Action: "--jump " + c.EndpointToHost})
	return r
}
