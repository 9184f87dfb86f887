package config

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestEveryStatusExplainsItself(t *testing.T) {
	felix := 0
	for _, p := range Params() {
		if p.From == FromFelix {
			felix++
		}
		if p.Status != Honoured && p.Reason == "" {
			t.Errorf("%s is %s without a reason", p.Name, p.Status)
		}
		if p.Status == Honoured && len(p.Inert) > 0 {
			t.Errorf("%s is honoured: Inert means nothing for it", p.Name)
		}
		if p.Status == Refused && (p.DieOnFail || p.NonZero || p.Live) {
			t.Errorf("%s is refused: its value is never used, so it cannot be fatal, non-zero or live", p.Name)
		}
	}
	// Every parameter of Felix's config_params.go when the table was
	// written; a parameter lost from the table would be "unknown" again.
	if felix != 218 {
		t.Errorf("%d Felix parameters in the table, want 218", felix)
	}
}

// Felix stops on an invalid value of these (its die-on-fail set, for the
// parameters Ocelot parses); Ocelot must too.
func TestFelixDieOnFailSetIsFatal(t *testing.T) {
	felixDieOnFail := []string{"DatastoreType", "MetadataAddr", "MetadataPort", "OpenstackRegion", "InterfacePrefix",
		"ChainInsertMode", "DefaultEndpointToHostAction", "IptablesFilterAllowAction", "IptablesMangleAllowAction",
		"IptablesFilterDenyAction", "LogFilePath", "IptablesMarkMask", "FailsafeInboundHostPorts", "FailsafeOutboundHostPorts",
		"NftablesFilterAllowAction", "NftablesMangleAllowAction", "NftablesFilterDenyAction", "NftablesMarkMask", "DropActionOverride"}
	for _, name := range felixDieOnFail {
		p, ok := Lookup(name)
		if !ok || !p.DieOnFail {
			t.Errorf("%s: not die-on-fail", name)
			continue
		}
		// A control character is invalid for every kind.
		_, problems := Load([]RawValue{{Name: name, Value: "x\x1by", Source: SourceFile, Where: "f:1"}})
		if !problems.Fatal() || !strings.Contains(problems[0].String(), "start-up stops") {
			t.Errorf("%s: invalid value not fatal: %v", name, problems)
		}
	}
	// And one that Felix only warns about stays a warning.
	_, problems := Load([]RawValue{{Name: "HealthPort", Value: "x", Source: SourceFile, Where: "f:1"}})
	if problems.Fatal() || len(problems) != 1 || problems[0].Class != Invalid {
		t.Errorf("HealthPort: %v", problems)
	}
}

// Setting a parameter Ocelot refuses or does not honour yet is reported
// with its source and the reason, unless the value asks for nothing Ocelot
// does not do; honoured ones, differently or not, are not reported.
func TestNotHonouredIsReported(t *testing.T) {
	cases := []struct {
		name, value string
		want        string // "" for no report
	}{
		{"BPFEnabled", "true", "Ocelot refuses this parameter (Ocelot has no eBPF dataplane; it programs iptables or nftables); the value is ignored"},
		{"BPFEnabled", "false", ""},
		{"bpfenabled", "no", ""},
		{"UsageReportingEnabled", "true", "Ocelot refuses this parameter (Ocelot never reports usage to anyone); the value is ignored"},
		{"UsageReportingEnabled", "false", ""},
		{"WireguardEnabled", "true", "Ocelot refuses this parameter (Ocelot does not encrypt traffic between hosts (no WireGuard)); the value is ignored"},
		{"WireguardListeningPort", "51820", ""},
		{"TyphaK8sServiceName", "calico-typha", "Ocelot refuses this parameter (Typha fans a Kubernetes datastore out to many agents; Ocelot reads etcd directly); the value is ignored"},
		{"DebugDisableLogDropping", "true", ""},
		{"IptablesLockTimeoutSecs", "10", "Ocelot refuses this parameter (removed from Felix in Calico 3.32; iptables-restore waits for the lock itself); the value is ignored"},
		{"NFTablesMode", "Enabled", ""}, // honoured differently: not reported
		{"NFTablesMode", "auto", ""},
		{"NFTablesMode", "Disabled", ""},
		{"EndpointStatusPathPrefix", "/var/run/calico", ""},
		{"EndpointStatusPathPrefix", "none", ""},
		{"FailsafeInboundHostPorts", "tcp:22", ""}, // honoured: not reported
		{"InterfaceExclude", "/^veth/", ""},
		{"LiveMigrationRouteConvergenceTime", "60", ""}, // honoured: not reported
		{"OpenstackRegion", "RegionOne", ""},            // honoured differently: not reported
		{"LogSeverityScreen", "debug", ""},
	}
	for _, c := range cases {
		_, problems := Load([]RawValue{{Name: c.name, Value: c.value, Source: SourceFile, Where: "/etc/calico/felix.cfg:7"}})
		if c.want == "" {
			if len(problems) != 0 {
				t.Errorf("%s = %s: unexpected %v", c.name, c.value, problems)
			}
			continue
		}
		want := `warning: /etc/calico/felix.cfg:7: ` + c.name + ` = "` + c.value + `": ` + c.want
		if len(problems) != 1 || problems[0].String() != want || problems[0].Class != NotHonoured || problems[0].Source != SourceFile {
			t.Errorf("%s = %s:\n got %v\nwant [%s]", c.name, c.value, problems, want)
		}
		if problems.Invalid() || problems.RejectsReload() {
			t.Errorf("%s = %s: a parameter Ocelot does not honour is not an invalid value", c.name, c.value)
		}
	}
}

func TestNotHonouredFromTheDatastore(t *testing.T) {
	spec := map[string]any{
		"bpfEnabled":             true,
		"healthTimeoutOverrides": []any{map[string]any{"name": "x", "timeout": "30s"}},
		"nftablesMode":           "Enabled",
		"someFutureField":        "x",
	}
	vals, problems := FromDatastore(SourceDatastoreGlobal, "felixconfigurations/default", spec, nil)
	_, loadProblems := Load(vals)
	var got []string
	for _, p := range append(problems, loadProblems...) {
		got = append(got, p.String())
	}
	want := []string{
		`warning: felixconfigurations/default spec.someFutureField: someFutureField = "\"x\"": is an unknown FelixConfiguration field (no Felix or Ocelot parameter); ignored`,
		`warning: felixconfigurations/default spec.bpfEnabled: BPFEnabled = "true": Ocelot refuses this parameter (Ocelot has no eBPF dataplane; it programs iptables or nftables); the value is ignored`,
		`warning: felixconfigurations/default spec.healthTimeoutOverrides: HealthTimeoutOverrides = "[{\"name\":\"x\",\"timeout\":\"30s\"}]": Ocelot refuses this parameter (not implemented: Ocelot's health timeouts are fixed); the value is ignored`,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("problems:\n got %q\nwant %q", got, want)
	}
}

func TestPlannedParametersAreTyped(t *testing.T) {
	cfg := mustLoad(t, []RawValue{
		{Name: "NFTablesMode", Value: "enabled", Source: SourceFile},
		{Name: "WorkloadSourceSpoofing", Value: "any", Source: SourceFile},
		{Name: "LiveMigrationRouteConvergenceTime", Value: "45", Source: SourceFile},
		{Name: "IPv4ElevatedRoutePriority", Value: "256", Source: SourceFile},
		{Name: "IPv6NormalRoutePriority", Value: "2048", Source: SourceFile},
		{Name: "LogActionRateLimit", Value: "10/second", Source: SourceFile},
		{Name: "LogActionRateLimitBurst", Value: "20", Source: SourceFile},
		{Name: "FailsafeOutboundHostPorts", Value: "udp:53,tcp:198.18.0.0/15:2379", Source: SourceFile},
		{Name: "InterfaceExclude", Value: "kube-ipvs0, /^veth/", Source: SourceFile},
		{Name: "NetlinkTimeoutSecs", Value: "2.5", Source: SourceFile},
		{Name: "EndpointStatusPathPrefix", Value: "/run/calico", Source: SourceFile},
		{Name: "DropActionOverride", Value: "logandaccept", Source: SourceFile},
		{Name: "NftablesMarkMask", Value: "0xff000000", Source: SourceFile},
	})
	checks := []struct {
		name      string
		got, want any
	}{
		{"NFTablesMode", cfg.NFTablesMode, "Enabled"},
		{"WorkloadSourceSpoofing", cfg.WorkloadSourceSpoofing, "Any"},
		{"LiveMigrationRouteConvergenceTime", cfg.LiveMigrationRouteConvergenceTime, 45 * time.Second},
		{"IPv4NormalRoutePriority (default)", cfg.IPv4NormalRoutePriority, 1024},
		{"IPv4ElevatedRoutePriority", cfg.IPv4ElevatedRoutePriority, 256},
		{"IPv6NormalRoutePriority", cfg.IPv6NormalRoutePriority, 2048},
		{"IPv6ElevatedRoutePriority (default)", cfg.IPv6ElevatedRoutePriority, 512},
		{"LogActionRateLimit", cfg.LogActionRateLimit, LogRate{Count: 10, Per: "second"}},
		{"LogActionRateLimitBurst", cfg.LogActionRateLimitBurst, 20},
		{"FailsafeOutboundHostPorts", cfg.FailsafeOutboundHostPorts, []ProtoPort{{"udp", "", 53}, {"tcp", "198.18.0.0/15", 2379}}},
		{"InterfaceExclude", cfg.InterfaceExclude, InterfacePatterns{"kube-ipvs0", "/^veth/"}},
		{"NetlinkTimeoutSecs", cfg.NetlinkTimeoutSecs, 2500 * time.Millisecond},
		{"EndpointStatusPathPrefix", cfg.EndpointStatusPathPrefix, "/run/calico"},
		{"DropActionOverride", cfg.DropActionOverride, "LogAndAccept"},
		{"NftablesMarkMask", cfg.NftablesMarkMask, uint32(0xff000000)},
		{"NftablesFilterDenyAction (default)", cfg.NftablesFilterDenyAction, "DROP"},
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s = %#v, want %#v", c.name, c.got, c.want)
		}
	}
	if cfg.Format("LogActionRateLimit") != "10/second" || cfg.Format("InterfaceExclude") != "kube-ipvs0,/^veth/" {
		t.Errorf("Format: %q %q", cfg.Format("LogActionRateLimit"), cfg.Format("InterfaceExclude"))
	}
	excluded, err := cfg.InterfaceExclude.Matcher()
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]bool{"kube-ipvs0": true, "kube-ipvs01": false, "veth12": true, "tapveth": false, "eth0": false} {
		if excluded(name) != want {
			t.Errorf("InterfaceExclude matches %s: %v, want %v", name, !want, want)
		}
	}
	if d := mustLoad(t); d.LogActionRateLimit != (LogRate{}) || d.LogActionRateLimitBurst != 5 || d.DropActionOverride != "Drop" ||
		d.WorkloadSourceSpoofing != "Disabled" || d.NFTablesMode != "Auto" || d.EndpointStatusPathPrefix != "/var/run/calico" {
		t.Errorf("defaults: %+v", d)
	}

	for _, bad := range []struct{ param, raw string }{
		{"NFTablesMode", "on"}, {"WorkloadSourceSpoofing", "All"},
		{"LogActionRateLimit", "0/second"}, {"LogActionRateLimit", "10000/second"}, {"LogActionRateLimit", "10/week"},
		{"LogActionRateLimit", "10/Second"}, {"LogActionRateLimit", "10"},
		{"LogActionRateLimitBurst", "10000"}, {"LogActionRateLimitBurst", "-1"},
		{"IPv4NormalRoutePriority", "0"}, {"IPv6ElevatedRoutePriority", "2147483647"},
		{"LiveMigrationRouteConvergenceTime", "-1"},
		{"InterfaceExclude", "/a b/"}, {"InterfaceExclude", "/[/"}, {"InterfaceExclude", "waytoolonginterface"}, {"InterfaceExclude", "a.b"},
		{"DropActionOverride", "Reject"}, {"DropActionOverride", "none"},
		{"FailsafeInboundHostPorts", "sctp:22"}, {"FailsafeInboundHostPorts", "tcp:[2001:db8::/32:22"},
	} {
		p, _ := Lookup(bad.param)
		if v, err := parseValue(p, bad.raw); err == nil {
			t.Errorf("%s = %q accepted as %#v", bad.param, bad.raw, v)
		}
	}
}

// Accept and LogAndAccept switch enforcement off: a datastore writer must
// not be able to do that to every host at once.
func TestDropActionOverrideAcceptIsLocalOnly(t *testing.T) {
	vals, _ := FromDatastore(SourceDatastoreGlobal, "felixconfigurations/default", map[string]any{"dropActionOverride": "Accept"}, nil)
	cfg, problems := Load(vals)
	if cfg.DropActionOverride != "Drop" {
		t.Errorf("Accept from the datastore took effect: %q", cfg.DropActionOverride)
	}
	if len(problems) != 1 || problems.Fatal() || !strings.Contains(problems[0].String(),
		`felixconfigurations/default spec.dropActionOverride: DropActionOverride = "Accept": turns policy enforcement off`) {
		t.Errorf("problems %v", problems)
	}
	vals, _ = FromDatastore(SourceDatastoreGlobal, "felixconfigurations/default", map[string]any{"dropActionOverride": "LogAndDrop"}, nil)
	if cfg, _ := Load(vals); cfg.DropActionOverride != "LogAndDrop" {
		t.Errorf("LogAndDrop from the datastore: %q", cfg.DropActionOverride)
	}
	if cfg, _ := Load([]RawValue{{Name: "DropActionOverride", Value: "Accept", Source: SourceFile}}); cfg.DropActionOverride != "Accept" {
		t.Errorf("Accept from the file: %q", cfg.DropActionOverride)
	}
}

func TestLaterSectionWins(t *testing.T) {
	path := writeFile(t, "[global]\nLogSeverityScreen = debug\n[other]\nlogseverityscreen = error\n")
	cfg, problems := ReadLocal(path, nil).Resolve()
	if len(problems) != 0 || cfg.LogSeverityScreen != "ERROR" {
		t.Errorf("LogSeverityScreen = %q (%v), want ERROR from the later section", cfg.LogSeverityScreen, problems)
	}
	if o, _ := cfg.Origin("LogSeverityScreen"); o.Where != path+":4" {
		t.Errorf("origin %q", o.Where)
	}
}
