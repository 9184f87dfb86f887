package dataplane

import (
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"time"

	"ocelot/config"
	"ocelot/contract"
	"ocelot/dataplane/routing"
	"ocelot/dataplane/rules"
	"ocelot/dataplane/ruleset"
)

// Config configures the dataplane.
type Config struct {
	Rules   rules.Config // rendering (iptables mode); Family is filled in per family
	IPv6    bool
	Backend string // IptablesBackend: auto, legacy or nft

	// NFTablesMode chooses the backend: Enabled programs native nftables,
	// Disabled iptables; Auto follows the host (nftables when a calico
	// nftables table is there already, Felix's or ours; iptables
	// otherwise). NFTRules is the rendering in nftables mode (its marks
	// and verdicts come from the Nftables* parameters).
	NFTablesMode    string
	NFTRules        rules.Config
	NftablesRefresh time.Duration // full re-read of the nftables table (0: never)
	nftables        bool          // resolved: the nftables backend is in use
	InsertMode      bool          // ChainInsertMode=insert
	LockProbe       time.Duration
	MaxIpsetSize    int

	IptablesRefresh  time.Duration // full re-read of iptables (0: never)
	PostWriteCheck   time.Duration // first re-read after a write
	IpsetsRefresh    time.Duration
	RouteRefresh     time.Duration
	InterfaceRefresh time.Duration

	// EndpointStatusPrefix is EndpointStatusPathPrefix: per-endpoint
	// status files go to its endpoint-status directory ("": none).
	EndpointStatusPrefix string

	// NetlinkTimeout bounds each netlink request (NetlinkTimeoutSecs; 0:
	// netlink's default).
	NetlinkTimeout time.Duration

	// EtcdEndpoints are the etcd URLs the agent uses: no endpoint may be
	// routed their addresses.
	EtcdEndpoints []string

	RouteProtocol        int
	RoutePriorities      [2]routing.Priorities // IPv4, IPv6; zero: Felix's defaults
	RemoveExternalRoutes bool
	// LiveMigrationConvergence is how long a migrated VM's routes keep the
	// elevated priority once its migration is over.
	LiveMigrationConvergence time.Duration
	IPForwarding             bool
	FloatingIPs              bool // FloatingIPs=Enabled; OpenStack endpoints always get theirs

	// DropActionOverride is what a policy denial does: Drop, Accept,
	// LogAndDrop or LogAndAccept (the rules carry it; explanations name it).
	DropActionOverride string
	// DropLog configures the reader of logged denials (the Log variants
	// of DropActionOverride).
	DropLog DropLogConfig

	// ConntrackWindow is how long conntrack deletions are collected before
	// one pass over the table deletes them all (0: conntrack.Window). A
	// connection outlives the rule that allowed it by at most this, plus
	// the pass.
	ConntrackWindow time.Duration

	// MinApplyInterval spaces applies under sustained change; a burst that
	// arrives within it costs one apply. Zero applies at once: changes
	// that arrive while an apply runs are still batched into the next.
	MinApplyInterval time.Duration

	Log *slog.Logger
	// InterfaceExclude says which interfaces are never host endpoints,
	// and never workload interfaces even with a workload prefix
	// (InterfaceExclude); nil: none.
	InterfaceExclude func(name string) bool

	// OnStatus receives endpoint status changes: "up", "down", or "" when
	// the endpoint is gone. Called from the dataplane goroutine.
	OnStatus func(id contract.EndpointID, status string)
	// OnHostEndpointStatus receives host endpoint status changes: "up",
	// "down", "error" (it governs no interface), or "" when it is gone.
	// Called from the dataplane goroutine.
	OnHostEndpointStatus func(id, status string)
	// OnInSync is called once, after the first complete apply.
	OnInSync func()
}

// DropLogConfig is where policy denials are logged and how many lines
// the agent writes: Rate lines per second on average, Burst at once.
type DropLogConfig struct {
	Enabled bool
	Group   uint16
	Rate    float64
	Burst   int
}

// FromConfig derives the dataplane's configuration from the agent's: the
// mark bits from IptablesMarkMask (NftablesMarkMask for nftables mode),
// the verdicts from their parameters (the Nftables* ones for nftables),
// the failsafe ports and InterfaceExclude's matcher, and everything else
// as it is named. It fails for a configuration the dataplane cannot
// enforce (too few mark bits, a verdict of the wrong kind, a failsafe
// entry it cannot render). Log and the callbacks are left for the
// caller.
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
		AllowIPIP: c.AllowIPIPPacketsFromWorkloads, VXLANPort: c.VXLANPort, LogPrefix: c.LogPrefix,
		DropAccept: strings.HasSuffix(c.DropActionOverride, "Accept")}
	if c.LogActionRateLimit.Count > 0 {
		l := limitOf(c.LogActionRateLimit, c.LogActionRateLimitBurst, 1)
		rc.LogLimit = &l
	}
	dl := DropLogConfig{Enabled: strings.HasPrefix(c.DropActionOverride, "Log"), Group: uint16(c.DropLogNflogGroup),
		Rate: c.DropLogRateLimit.PerSecond(), Burst: c.DropLogRateLimitBurst}
	if dl.Enabled {
		// Each logging rule passes ten times the agent's rate, so that
		// what the agent does not write is counted, not lost unseen.
		rc.DropLog = &rules.DropLog{Group: dl.Group, Limit: limitOf(c.DropLogRateLimit, c.DropLogRateLimitBurst, 10), Size: dropLogSize}
	}
	if verdictErr != nil {
		return Config{}, verdictErr
	}
	if rc.FailsafeIn, err = failsafes("FailsafeInboundHostPorts", c.FailsafeInboundHostPorts); err != nil {
		return Config{}, err
	}
	if rc.FailsafeOut, err = failsafes("FailsafeOutboundHostPorts", c.FailsafeOutboundHostPorts); err != nil {
		return Config{}, err
	}
	// nftables mode: the same, with the Nftables* marks and verdicts.
	nmarks, err := rules.MarksFromMask(c.NftablesMarkMask)
	if err != nil {
		return Config{}, fmt.Errorf("NftablesMarkMask: %w", err)
	}
	nrc := rc
	nrc.Marks = nmarks
	nrc.FilterAllow = verdict("NftablesFilterAllowAction", c.NftablesFilterAllowAction)
	nrc.MangleAllow = verdict("NftablesMangleAllowAction", c.NftablesMangleAllowAction)
	nrc.Deny = verdict("NftablesFilterDenyAction", c.NftablesFilterDenyAction)
	if verdictErr != nil {
		return Config{}, verdictErr
	}
	if err := rc.Validate(); err != nil {
		return Config{}, err
	}
	if err := nrc.Validate(); err != nil {
		return Config{}, err
	}
	exclude, err := c.InterfaceExclude.Matcher()
	if err != nil {
		return Config{}, fmt.Errorf("InterfaceExclude: %w", err)
	}
	return Config{
		Rules: rc, NFTRules: nrc, NFTablesMode: c.NFTablesMode, NftablesRefresh: c.NftablesRefreshInterval, IPv6: c.Ipv6Support, Backend: c.IptablesBackend, InsertMode: c.ChainInsertMode == "insert",
		LockProbe: c.IptablesLockProbeIntervalMillis, MaxIpsetSize: c.MaxIpsetSize,
		IptablesRefresh: c.IptablesRefreshInterval, PostWriteCheck: c.IptablesPostWriteCheckIntervalSecs,
		IpsetsRefresh: c.IpsetsRefreshInterval, RouteRefresh: c.RouteRefreshInterval, InterfaceRefresh: c.InterfaceRefreshInterval,
		RouteProtocol: c.DeviceRouteProtocol, RemoveExternalRoutes: c.RemoveExternalRoutes, IPForwarding: c.IPForwarding == "Enabled",
		RoutePriorities: [2]routing.Priorities{
			{Normal: c.IPv4NormalRoutePriority, Elevated: c.IPv4ElevatedRoutePriority},
			{Normal: c.IPv6NormalRoutePriority, Elevated: c.IPv6ElevatedRoutePriority}},
		LiveMigrationConvergence: c.LiveMigrationRouteConvergenceTime,
		FloatingIPs:              c.FloatingIPs == "Enabled", InterfaceExclude: exclude,
		DropActionOverride: c.DropActionOverride, DropLog: dl,
		EtcdEndpoints: c.EtcdURLs(), NetlinkTimeout: c.NetlinkTimeoutSecs,
		EndpointStatusPrefix: c.EndpointStatusPathPrefix,
	}, nil
}

// dropLogSize is how much of each denied packet reaches the agent: its
// IP and transport headers (IPv6 with a few extension headers).
const dropLogSize = 128

// limitOf is a kernel rate limit of times the rate and burst given,
// within what the kernel takes (10,000).
func limitOf(r config.LogRate, burst, times int) ruleset.Limit {
	return ruleset.Limit{Count: uint32(min(r.Count*times, 10000)), Per: ruleset.Unit(r.Per), Burst: uint32(min(burst*times, 10000))}
}

// failsafes turns a failsafe port list into the rules' form.
func failsafes(param string, ports []config.ProtoPort) ([]rules.Failsafe, error) {
	out := make([]rules.Failsafe, 0, len(ports))
	for _, p := range ports {
		f := rules.Failsafe{Port: uint16(p.Port)}
		switch p.Protocol {
		case "tcp":
			f.Protocol = contract.Protocol{Name: "tcp", Num: 6}
		case "udp":
			f.Protocol = contract.Protocol{Name: "udp", Num: 17}
		default:
			return nil, fmt.Errorf("%s: entry %s: protocol must be tcp or udp", param, p)
		}
		if p.Port < 0 || p.Port > 65535 {
			return nil, fmt.Errorf("%s: entry %s: port must be from 0 to 65535", param, p)
		}
		if p.Net != "" {
			n, err := netip.ParsePrefix(p.Net)
			if err != nil {
				return nil, fmt.Errorf("%s: entry %s: %w", param, p, err)
			}
			f.Net = n.Masked()
		}
		out = append(out, f)
	}
	return out, nil
}
