package dataplane

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"ocelot/config"
	"ocelot/dataplane/routing"
	"ocelot/dataplane/ruleset"
)

func defaults(t *testing.T) *config.Config {
	t.Helper()
	cfg, problems := config.ReadLocal(filepath.Join(t.TempDir(), "absent.cfg"), nil).Resolve()
	if problems.Fatal() {
		t.Fatalf("defaults: %v", problems)
	}
	return cfg
}

func TestFromConfig(t *testing.T) {
	cfg := defaults(t)
	dc, err := FromConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if dc.Rules.FilterAllow != ruleset.Action(ruleset.Accept{}) || dc.Rules.Deny != ruleset.Action(ruleset.Drop{}) ||
		dc.Rules.Marks.Accept != 0x10000 || dc.Rules.Marks.Scratch1 != 0x100000 {
		t.Errorf("defaults translated to %+v", dc.Rules)
	}
	if dc.NetlinkTimeout != 10*time.Second || len(dc.EtcdEndpoints) != 1 || dc.InterfaceExclude == nil || !dc.InterfaceExclude("kube-ipvs0") {
		t.Errorf("netlink timeout %v, etcd %v, exclude of kube-ipvs0: want Felix's 10 s, the etcd URL and excluded", dc.NetlinkTimeout, dc.EtcdEndpoints)
	}
	if dc.RoutePriorities != [2]routing.Priorities{{Normal: 1024, Elevated: 512}, {Normal: 1024, Elevated: 512}} || dc.LiveMigrationConvergence != 30*time.Second {
		t.Errorf("live migration defaults: %v %v", dc.RoutePriorities, dc.LiveMigrationConvergence)
	}
	cfg.IPv6ElevatedRoutePriority, cfg.LiveMigrationRouteConvergenceTime = 100, 5*time.Second
	if dc, _ = FromConfig(cfg); dc.RoutePriorities[1].Elevated != 100 || dc.RoutePriorities[0].Elevated != 512 || dc.LiveMigrationConvergence != 5*time.Second {
		t.Errorf("live migration parameters: %v %v", dc.RoutePriorities, dc.LiveMigrationConvergence)
	}
	cfg.IptablesFilterDenyAction, cfg.IptablesFilterAllowAction = "REJECT", "RETURN"
	if dc, err = FromConfig(cfg); err != nil || dc.Rules.Deny != ruleset.Action(ruleset.Reject{}) || dc.Rules.FilterAllow != ruleset.Action(ruleset.Return{}) {
		t.Errorf("REJECT/RETURN: %+v %v", dc.Rules, err)
	}

	// What the dataplane cannot enforce is refused, naming the parameter.
	bad := defaults(t)
	bad.IptablesMarkMask = 0xf
	if _, err := FromConfig(bad); err == nil || !strings.Contains(err.Error(), "IptablesMarkMask") {
		t.Errorf("a 4-bit mark mask: %v", err)
	}
	bad = defaults(t)
	bad.IptablesFilterDenyAction = "ACCEPT"
	if _, err := FromConfig(bad); err == nil {
		t.Error("ACCEPT as the deny action was accepted")
	}
	bad = defaults(t)
	bad.DefaultEndpointToHostAction = "DROP\n-A INPUT -j ACCEPT"
	if _, err := FromConfig(bad); err == nil || !strings.Contains(err.Error(), "DefaultEndpointToHostAction") {
		t.Errorf("a verdict with a line in it: %v", err)
	}
}

func TestFromConfigDropLogAndLogLimit(t *testing.T) {
	cfg := defaults(t)
	dc, err := FromConfig(cfg)
	if err != nil || dc.Rules.DropLog != nil || dc.Rules.DropAccept || dc.Rules.LogLimit != nil || dc.DropLog.Enabled {
		t.Fatalf("defaults turn on drop logging or limits: %+v %v", dc, err)
	}
	cfg.DropActionOverride = "LogAndAccept"
	cfg.LogActionRateLimit = config.LogRate{Count: 3, Per: "minute"}
	cfg.LogActionRateLimitBurst = 7
	cfg.DropLogRateLimit = config.LogRate{Count: 2000, Per: "second"}
	if dc, err = FromConfig(cfg); err != nil {
		t.Fatal(err)
	}
	if !dc.Rules.DropAccept || !dc.DropLog.Enabled || dc.DropLog.Group != 20 || dc.DropLog.Rate != 2000 || dc.DropLog.Burst != 20 {
		t.Errorf("LogAndAccept: %+v %+v", dc.Rules, dc.DropLog)
	}
	// The kernel passes ten times the agent's rate, within its maximum.
	if l := dc.Rules.DropLog.Limit; l.Count != 10000 || l.Per != ruleset.PerSecond || l.Burst != 200 {
		t.Errorf("kernel limit %+v", l)
	}
	if l := dc.Rules.LogLimit; l == nil || *l != (ruleset.Limit{Count: 3, Per: ruleset.PerMinute, Burst: 7}) {
		t.Errorf("Log limit %+v", l)
	}
	cfg.DropActionOverride = "Accept"
	if dc, _ = FromConfig(cfg); !dc.Rules.DropAccept || dc.Rules.DropLog != nil {
		t.Errorf("Accept: %+v", dc.Rules)
	}
}
