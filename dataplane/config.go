package dataplane

import (
	"fmt"
	"log/slog"
	"time"

	"ocelot/config"
	"ocelot/contract"
	"ocelot/dataplane/routing"
	"ocelot/dataplane/rules"
	"ocelot/dataplane/ruleset"
)

// Config configures the dataplane.
type Config struct {
	Rules        rules.Config // rendering; Family is filled in per family
	IPv6         bool
	Backend      string // auto, legacy or nft
	InsertMode   bool   // ChainInsertMode=insert
	LockProbe    time.Duration
	MaxIpsetSize int

	IptablesRefresh  time.Duration // full re-read of iptables (0: never)
	PostWriteCheck   time.Duration // first re-read after a write
	IpsetsRefresh    time.Duration
	RouteRefresh     time.Duration
	InterfaceRefresh time.Duration

	RouteProtocol        int
	RoutePriorities      [2]routing.Priorities // IPv4, IPv6; zero: Felix's defaults
	RemoveExternalRoutes bool
	// LiveMigrationConvergence is how long a migrated VM's routes keep the
	// elevated priority once its migration is over.
	LiveMigrationConvergence time.Duration
	IPForwarding             bool
	FloatingIPs              bool // FloatingIPs=Enabled; OpenStack endpoints always get theirs

	// MinApplyInterval spaces applies under sustained change; a burst that
	// arrives within it costs one apply. Zero applies at once: changes
	// that arrive while an apply runs are still batched into the next.
	MinApplyInterval time.Duration

	Log *slog.Logger
	// OnStatus receives endpoint status changes: "up", "down", or "" when
	// the endpoint is gone. Called from the dataplane goroutine.
	OnStatus func(id contract.EndpointID, status string)
	// OnInSync is called once, after the first complete apply.
	OnInSync func()
}

// FromConfig derives the dataplane's configuration from the agent's: the
// mark bits from IptablesMarkMask, the verdicts from their parameters,
// and everything else as it is named. It fails for a configuration the
// dataplane cannot enforce (too few mark bits, a verdict of the wrong
// kind). Log and the callbacks are left for the caller.
func FromConfig(c *config.Config) (Config, error) {
	marks, err := rules.MarksFromMask(c.IptablesMarkMask)
	if err != nil {
		return Config{}, err
	}
	var verdictErr error
	verdict := func(param, value string) ruleset.Action {
		a, err := ruleset.Verdict(value)
		if err != nil && verdictErr == nil {
			verdictErr = fmt.Errorf("%s: %w", param, err)
		}
		return a
	}
	rc := rules.Config{Prefixes: c.InterfacePrefix, Marks: marks,
		FilterAllow:    verdict("IptablesFilterAllowAction", c.IptablesFilterAllowAction),
		MangleAllow:    verdict("IptablesMangleAllowAction", c.IptablesMangleAllowAction),
		Deny:           verdict("IptablesFilterDenyAction", c.IptablesFilterDenyAction),
		EndpointToHost: verdict("DefaultEndpointToHostAction", c.DefaultEndpointToHostAction),
		OpenStack:      c.OpenstackActive(), MetadataAddr: c.MetadataAddr, MetadataPort: c.MetadataPort,
		NoInvalidCheck: c.DisableConntrackInvalidCheck, AllowVXLAN: c.AllowVXLANPacketsFromWorkloads,
		AllowIPIP: c.AllowIPIPPacketsFromWorkloads, VXLANPort: c.VXLANPort, LogPrefix: c.LogPrefix}
	if verdictErr != nil {
		return Config{}, verdictErr
	}
	if err := rc.Validate(); err != nil {
		return Config{}, err
	}
	return Config{
		Rules: rc, IPv6: c.Ipv6Support, Backend: c.IptablesBackend, InsertMode: c.ChainInsertMode == "insert",
		LockProbe: c.IptablesLockProbeIntervalMillis, MaxIpsetSize: c.MaxIpsetSize,
		IptablesRefresh: c.IptablesRefreshInterval, PostWriteCheck: c.IptablesPostWriteCheckIntervalSecs,
		IpsetsRefresh: c.IpsetsRefreshInterval, RouteRefresh: c.RouteRefreshInterval, InterfaceRefresh: c.InterfaceRefreshInterval,
		RouteProtocol: c.DeviceRouteProtocol, RemoveExternalRoutes: c.RemoveExternalRoutes, IPForwarding: c.IPForwarding == "Enabled",
		RoutePriorities: [2]routing.Priorities{
			{Normal: c.IPv4NormalRoutePriority, Elevated: c.IPv4ElevatedRoutePriority},
			{Normal: c.IPv6NormalRoutePriority, Elevated: c.IPv6ElevatedRoutePriority}},
		LiveMigrationConvergence: c.LiveMigrationRouteConvergenceTime,
		FloatingIPs:              c.FloatingIPs == "Enabled",
	}, nil
}
