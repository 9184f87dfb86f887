package config

import "strings"

// Kind is the type of a parameter's value; it decides how raw text is parsed
// and which Go type the Config field has.
type Kind int

const (
	KindBool              Kind = iota // bool
	KindInt                           // int, within [Min, Max]
	KindSeconds                       // time.Duration, given as (fractional) seconds
	KindMillis                        // time.Duration, given as milliseconds
	KindString                        // string of printable characters
	KindPath                          // string: a file or directory path (need not exist)
	KindEnum                          // string, one of Enum (case-insensitive, stored as listed)
	KindHostname                      // string of [a-zA-Z0-9_.-]
	KindIPOrHost                      // string: an IP address or a host name
	KindHostAddress                   // string: an address to listen on, [a-zA-Z0-9:._+-]{1,64}
	KindRegion                        // string: an OpenStack region name
	KindMarkMask                      // uint32 with enough bits for Ocelot's marks
	KindURLList                       // []string of http(s)://host:port URLs, one scheme for all
	KindHostPort                      // string host:port
	KindFile                          // string: path of a file that must exist
	KindPrefixList                    // []string of interface-name prefixes
	KindInterfacePatterns             // InterfacePatterns: interface names and /regexp/s
	KindPortList                      // []ProtoPort, items [proto:][net:]port
	KindLogPrefix                     // string: an iptables log prefix
	KindLogRate                       // LogRate: N/second|minute|hour|day
)

// isList reports whether values of the kind are lists.
func (k Kind) isList() bool {
	switch k {
	case KindURLList, KindPrefixList, KindInterfacePatterns, KindPortList:
		return true
	}
	return false
}

// Status says what Ocelot does with a parameter.
type Status int

const (
	// Honoured: Ocelot does what Felix does with the parameter.
	Honoured Status = iota
	// Differently: honoured, but not exactly as Felix does; Reason says how.
	Differently
	// Planned: parsed and validated, but not acted on yet; Reason names
	// the work that will. Setting it is reported. (No parameter has this
	// status today.)
	Planned
	// Refused: Ocelot will not act on the parameter; Reason says why.
	// Setting it is reported and the value ignored.
	Refused
)

func (s Status) String() string {
	switch s {
	case Honoured:
		return "honoured"
	case Differently:
		return "honoured differently"
	case Planned:
		return "not yet honoured"
	case Refused:
		return "refused"
	}
	return "unknown"
}

// Origin of a parameter's definition.
const (
	FromFelix        = ""                  // Calico's Felix (the default)
	FromFelixRemoved = "Felix (removed)"   // Felix until recently; felix.cfg files still carry it
	FromEnterprise   = "Calico Enterprise" // Tigera's Felix, not the open-source one
	FromOcelot       = "Ocelot"            // Ocelot's own
)

// anyValue, as the only Inert entry, means no value of the parameter asks
// for something Ocelot does not do.
const anyValue = "*"

// Param describes one configuration parameter.
type Param struct {
	Name      string // canonical (Go) name, also the felix.cfg and FELIX_ name
	YAML      string // FelixConfiguration spec field, "" when it has none
	Kind      Kind
	Default   string   // raw text of the built-in default
	Enum      []string // allowed values for KindEnum
	Min, Max  int      // bounds for KindInt (ignored when both are 0)
	MaxLen    int      // longest raw value in bytes; 0: the kind's bound
	Local     bool     // may not come from the datastore
	DieOnFail bool     // an invalid value stops start-up
	NonZero   bool     // "none" (the zero value) is invalid, and fatal as in Felix
	Live      bool     // may change while running; otherwise a change restarts the agent
	Status    Status
	Reason    string   // how (Differently), why (Refused), the work that will honour it (Planned); a note otherwise
	Inert     []string // Planned/Refused: values that ask for nothing Ocelot does not do; nil: Default
	From      string   // FromFelix, FromFelixRemoved, FromEnterprise or FromOcelot
	Doc       string
}

// HasField reports whether Config has a typed field for the parameter:
// every parameter but the refused ones.
func (p *Param) HasField() bool { return p.Status != Refused }

// Felix's die-on-fail set is marked DieOnFail below; Ocelot adds the etcd
// connection parameters (a mistyped endpoint should not silently become
// 127.0.0.1:2379).
var params = append(append([]Param{
	// Datastore connection: local only.
	{Name: "DatastoreType", Kind: KindEnum, Default: "etcdv3", Enum: []string{"etcdv3", "kubernetes"}, Local: true, DieOnFail: true, NonZero: true,
		Status: Differently, Reason: "etcdv3 only; kubernetes stops start-up",
		Doc: "datastore driver"},
	{Name: "FelixHostname", Kind: KindHostname, Local: true, DieOnFail: true, NonZero: true,
		Doc: "this host's name as Neutron knows it (binding:host_id); default: the lower-cased kernel hostname"},
	{Name: "EtcdEndpoints", Kind: KindURLList, Local: true, DieOnFail: true,
		Reason: felixEtcdFallback, Doc: "comma-separated etcd URLs; overrides EtcdAddr and EtcdScheme"},
	{Name: "EtcdAddr", Kind: KindHostPort, Default: "127.0.0.1:2379", Local: true, DieOnFail: true,
		Reason: felixEtcdFallback, Doc: "etcd host:port when EtcdEndpoints is unset"},
	{Name: "EtcdScheme", Kind: KindEnum, Default: "http", Enum: []string{"http", "https"}, Local: true, DieOnFail: true,
		Reason: felixEtcdFallback},
	{Name: "EtcdKeyFile", Kind: KindFile, Local: true, DieOnFail: true, Reason: felixEtcdFallback, Doc: "client key for etcd TLS"},
	{Name: "EtcdCertFile", Kind: KindFile, Local: true, DieOnFail: true, Reason: felixEtcdFallback, Doc: "client certificate for etcd TLS"},
	{Name: "EtcdCaFile", Kind: KindFile, Local: true, DieOnFail: true, Reason: felixEtcdFallback, Doc: "CA bundle for etcd TLS"},
	{Name: "EtcdUsername", Kind: KindString, Local: true, From: FromOcelot,
		Doc: "etcd user; libcalico-go's ETCD_USERNAME, also settable here"},
	{Name: "EtcdPassword", Kind: KindString, Local: true, From: FromOcelot,
		Doc: "etcd password; libcalico-go's ETCD_PASSWORD, also settable here"},

	// Region.
	{Name: "OpenstackRegion", YAML: "openstackRegion", Kind: KindRegion, DieOnFail: true,
		Status: Differently, Reason: "case is kept, so OpenStack's RegionOne works; Felix accepts lower case only",
		Doc: "OpenStack region of this host; selects namespace openstack-region-<region> and status prefix region-<region>"},

	// Interfaces and rules.
	{Name: "InterfacePrefix", YAML: "interfacePrefix", Kind: KindPrefixList, Default: "cali", DieOnFail: true, NonZero: true,
		Doc: "comma-separated workload interface prefixes; OpenStack uses tap"},
	{Name: "InterfaceExclude", YAML: "interfaceExclude", Kind: KindInterfacePatterns, Default: "kube-ipvs0",
		Doc: "interfaces never treated as host endpoints: names, or /regexp/"},
	{Name: "DefaultEndpointToHostAction", YAML: "defaultEndpointToHostAction", Kind: KindEnum, Default: "DROP", Enum: []string{"DROP", "RETURN", "ACCEPT"}, DieOnFail: true, NonZero: true},
	{Name: "ChainInsertMode", YAML: "chainInsertMode", Kind: KindEnum, Default: "insert", Enum: []string{"insert", "append"}, DieOnFail: true, NonZero: true},
	{Name: "IptablesBackend", YAML: "iptablesBackend", Kind: KindEnum, Default: "auto", Enum: []string{"auto", "legacy", "nft"}},
	{Name: "IptablesFilterAllowAction", YAML: "iptablesFilterAllowAction", Kind: KindEnum, Default: "ACCEPT", Enum: []string{"ACCEPT", "RETURN"}, DieOnFail: true, NonZero: true},
	{Name: "IptablesMangleAllowAction", YAML: "iptablesMangleAllowAction", Kind: KindEnum, Default: "ACCEPT", Enum: []string{"ACCEPT", "RETURN"}, DieOnFail: true, NonZero: true},
	{Name: "IptablesFilterDenyAction", YAML: "iptablesFilterDenyAction", Kind: KindEnum, Default: "DROP", Enum: []string{"DROP", "REJECT"}, DieOnFail: true, NonZero: true},
	{Name: "IptablesMarkMask", YAML: "iptablesMarkMask", Kind: KindMarkMask, Default: "0xffff0000", DieOnFail: true, NonZero: true,
		Reason: "needs at least 5 bits (accept, pass, drop, two scratch marks); Felix checks for 2"},
	{Name: "IptablesRefreshInterval", YAML: "iptablesRefreshInterval", Kind: KindSeconds, Default: "180"},
	{Name: "IptablesPostWriteCheckIntervalSecs", YAML: "iptablesPostWriteCheckInterval", Kind: KindSeconds, Default: "5"},
	{Name: "IptablesLockProbeIntervalMillis", YAML: "iptablesLockProbeInterval", Kind: KindMillis, Default: "50"},
	{Name: "IpsetsRefreshInterval", YAML: "ipsetsRefreshInterval", Kind: KindSeconds, Default: "90"},
	{Name: "MaxIpsetSize", YAML: "maxIpsetSize", Kind: KindInt, Default: "1048576", Min: 1, Max: 1 << 30, NonZero: true},
	{Name: "RouteRefreshInterval", YAML: "routeRefreshInterval", Kind: KindSeconds, Default: "90"},
	{Name: "InterfaceRefreshInterval", YAML: "interfaceRefreshInterval", Kind: KindSeconds, Default: "90"},
	{Name: "RemoveExternalRoutes", YAML: "removeExternalRoutes", Kind: KindBool, Default: "true"},
	{Name: "DeviceRouteProtocol", YAML: "deviceRouteProtocol", Kind: KindInt, Default: "3", Min: 0, Max: 255},
	{Name: "IPForwarding", YAML: "ipForwarding", Kind: KindEnum, Default: "Enabled", Enum: []string{"Enabled", "Disabled"}},
	{Name: "Ipv6Support", YAML: "ipv6Support", Kind: KindBool, Default: "true"},
	{Name: "MetadataAddr", YAML: "metadataAddr", Kind: KindIPOrHost, Default: "127.0.0.1", DieOnFail: true,
		Reason: "an IPv6 address is accepted too; as in Felix, a host name gives no rule"},
	{Name: "MetadataPort", YAML: "metadataPort", Kind: KindInt, Default: "8775", Min: 0, Max: 65535, DieOnFail: true},
	{Name: "DisableConntrackInvalidCheck", YAML: "disableConntrackInvalidCheck", Kind: KindBool, Default: "false"},
	{Name: "AllowVXLANPacketsFromWorkloads", YAML: "allowVXLANPacketsFromWorkloads", Kind: KindBool, Default: "false"},
	{Name: "AllowIPIPPacketsFromWorkloads", YAML: "allowIPIPPacketsFromWorkloads", Kind: KindBool, Default: "false"},
	{Name: "VXLANPort", YAML: "vxlanPort", Kind: KindInt, Default: "4789", Min: 1, Max: 65535,
		Reason: "used for the rule that drops VXLAN from workloads; Ocelot creates no VXLAN device"},
	{Name: "FloatingIPs", YAML: "floatingIPs", Kind: KindEnum, Default: "Disabled", Enum: []string{"Enabled", "Disabled"},
		Reason: "as in Felix, OpenStack endpoints' floating IPs are always programmed"},

	// Anti-spoofing.
	{Name: "WorkloadSourceSpoofing", YAML: "workloadSourceSpoofing", Kind: KindEnum, Default: "Disabled", Enum: []string{"Disabled", "Any"},
		Doc: "Any lets an endpoint's allowSpoofedSourcePrefixes take effect; with Disabled they are reported and not programmed"},

	// Host endpoints.
	{Name: "FailsafeInboundHostPorts", YAML: "failsafeInboundHostPorts", Kind: KindPortList, DieOnFail: true,
		Default: "tcp:22,udp:68,tcp:179,tcp:2379,tcp:2380,tcp:5473,tcp:6443,tcp:6666,tcp:6667",
		Doc:     "ports host-endpoint policy never blocks inbound: [tcp|udp:][net:]port"},
	{Name: "FailsafeOutboundHostPorts", YAML: "failsafeOutboundHostPorts", Kind: KindPortList, DieOnFail: true,
		Default: "udp:53,udp:67,tcp:179,tcp:2379,tcp:2380,tcp:5473,tcp:6443,tcp:6666,tcp:6667",
		Doc:     "ports host-endpoint policy never blocks outbound"},

	// Live migration.
	{Name: "LiveMigrationRouteConvergenceTime", YAML: "liveMigrationRouteConvergenceTime", Kind: KindSeconds, Default: "30",
		Doc: "how long a migrated VM's route keeps the elevated priority after its migration ends"},
	{Name: "IPv4NormalRoutePriority", YAML: "ipv4NormalRoutePriority", Kind: KindInt, Default: "1024", Min: 1, Max: 2147483646,
		Doc: "metric of VMs' IPv4 routes"},
	{Name: "IPv4ElevatedRoutePriority", YAML: "ipv4ElevatedRoutePriority", Kind: KindInt, Default: "512", Min: 1, Max: 2147483646,
		Doc: "metric of a migrated VM's IPv4 routes until they converge (lower wins)"},
	{Name: "IPv6NormalRoutePriority", YAML: "ipv6NormalRoutePriority", Kind: KindInt, Default: "1024", Min: 1, Max: 2147483646,
		Doc: "metric of VMs' IPv6 routes"},
	{Name: "IPv6ElevatedRoutePriority", YAML: "ipv6ElevatedRoutePriority", Kind: KindInt, Default: "512", Min: 1, Max: 2147483646,
		Doc: "metric of a migrated VM's IPv6 routes until they converge (lower wins)"},

	// nftables.
	{Name: "NFTablesMode", YAML: "nftablesMode", Kind: KindEnum, Default: "Auto", Enum: []string{"Disabled", "Enabled", "Auto"},
		Status: Differently, Reason: "Auto follows the host, not kube-proxy (an OpenStack host has none): nftables when a calico nftables table is there already (Felix's nftables mode, or Ocelot's), iptables otherwise"},
	{Name: "NftablesRefreshInterval", YAML: "nftablesRefreshInterval", Kind: KindSeconds, Default: "180",
		Reason: "the re-read covers the IP sets too (IpsetsRefreshInterval applies to iptables mode)"},
	{Name: "NftablesFilterAllowAction", YAML: "nftablesFilterAllowAction", Kind: KindEnum, Default: "ACCEPT", Enum: []string{"ACCEPT", "RETURN"}, DieOnFail: true, NonZero: true},
	{Name: "NftablesMangleAllowAction", YAML: "nftablesMangleAllowAction", Kind: KindEnum, Default: "ACCEPT", Enum: []string{"ACCEPT", "RETURN"}, DieOnFail: true, NonZero: true},
	{Name: "NftablesFilterDenyAction", YAML: "nftablesFilterDenyAction", Kind: KindEnum, Default: "DROP", Enum: []string{"DROP", "REJECT"}, DieOnFail: true, NonZero: true},
	{Name: "NftablesMarkMask", YAML: "nftablesMarkMask", Kind: KindMarkMask, Default: "0xffff0000", DieOnFail: true, NonZero: true},

	// Logging, and the Log action.
	{Name: "LogSeverityScreen", YAML: "logSeverityScreen", Kind: KindEnum, Default: "INFO", Enum: logLevels, Live: true},
	{Name: "LogSeverityFile", YAML: "logSeverityFile", Kind: KindEnum, Default: "INFO", Enum: logLevels, Live: true},
	{Name: "LogSeveritySys", YAML: "logSeveritySys", Kind: KindEnum, Default: "INFO", Enum: logLevels, Live: true},
	{Name: "LogFilePath", YAML: "logFilePath", Kind: KindPath, Default: "/var/log/calico/felix.log", DieOnFail: true},
	{Name: "LogPrefix", YAML: "logPrefix", Kind: KindLogPrefix, Default: "calico-packet",
		Status: Differently, Reason: "at most 27 characters, so that the rendered \"<prefix>: \" fits iptables' 29; %t, %k, %n and %p are written as they are, not expanded; none means calico-packet",
		Doc: "prefix of the Log action's kernel log lines: letters, digits and %: /_-"},
	{Name: "LogActionRateLimit", YAML: "logActionRateLimit", Kind: KindLogRate,
		Doc: "the Log action's rate limit, N/second, N/minute, N/hour or N/day, N from 1 to 9999; empty: no limit"},
	{Name: "LogActionRateLimitBurst", YAML: "logActionRateLimitBurst", Kind: KindInt, Default: "5", Min: 0, Max: 9999,
		Doc: "the Log action's burst when LogActionRateLimit is set"},
	{Name: "DropActionOverride", YAML: "dropActionOverride", Kind: KindEnum, Default: "Drop", Enum: []string{"Drop", "Accept", "LogAndDrop", "LogAndAccept"},
		DieOnFail: true, NonZero: true, From: FromEnterprise,
		Status: Differently, Reason: "it covers policy denials only (Deny rules, the end of a tier, the end of the profiles), not the anti-spoofing, unknown-interface, encapsulation or INVALID drops; the Log variants send each denial through NFLOG (DropLogNflogGroup) to the agent, which writes one line naming the policy and rule within DropLogRateLimit; Accept and LogAndAccept turn enforcement off and are taken from the config file and environment only",
		Doc: "what a policy denial does: Drop, Accept, LogAndDrop, LogAndAccept"},
	{Name: "DropLogNflogGroup", Kind: KindInt, Default: "20", Min: 1, Max: 65535, From: FromOcelot,
		Doc: "the NFLOG group policy denials are logged to under DropActionOverride LogAndDrop or LogAndAccept; the agent reads it"},
	{Name: "DropLogRateLimit", Kind: KindLogRate, Default: "10/second", NonZero: true, From: FromOcelot,
		Doc: "the most drop-log lines the agent writes, N/second, N/minute, N/hour or N/day; each logging rule passes at most ten times this to the agent, and lines over it are counted in ocelot_drop_log_suppressed_total"},
	{Name: "DropLogRateLimitBurst", Kind: KindInt, Default: "20", Min: 1, Max: 1000, From: FromOcelot,
		Doc: "the drop log's burst"},

	// Observability.
	{Name: "PrometheusMetricsEnabled", YAML: "prometheusMetricsEnabled", Kind: KindBool, Default: "false"},
	{Name: "PrometheusMetricsHost", YAML: "prometheusMetricsHost", Kind: KindHostAddress},
	{Name: "PrometheusMetricsPort", YAML: "prometheusMetricsPort", Kind: KindInt, Default: "9091", Min: 0, Max: 65535},
	{Name: "PrometheusGoMetricsEnabled", YAML: "prometheusGoMetricsEnabled", Kind: KindBool, Default: "true"},
	{Name: "PrometheusProcessMetricsEnabled", YAML: "prometheusProcessMetricsEnabled", Kind: KindBool, Default: "true"},
	{Name: "HealthEnabled", YAML: "healthEnabled", Kind: KindBool, Default: "false"},
	{Name: "HealthHost", YAML: "healthHost", Kind: KindHostAddress, Default: "localhost"},
	{Name: "HealthPort", YAML: "healthPort", Kind: KindInt, Default: "9099", Min: 0, Max: 65535},
	{Name: "ExplainSocketPath", Kind: KindPath, Default: "/var/run/calico/ocelot.sock", Local: true, From: FromOcelot,
		Doc: "the local socket 'ocelot explain' asks: mode 0600, in a directory that only root may write; none turns it off"},
	// The Go runtime. The environment's GOGC, GOMEMLIMIT and GOMAXPROCS
	// win over these, as in Felix.
	{Name: "GoGCThreshold", YAML: "goGCThreshold", Kind: KindInt, Default: "40", Min: -1, Max: 10000, Live: true,
		Status: Differently, Reason: "when set, the GC percentage as in Felix (-1: no GC, with GoMemoryLimitMB); when not set, Ocelot's own: 25 while loading a snapshot, then 25 with at least 16 MiB of headroom",
		Doc: "how far the heap may grow, in percent of the live heap, before a garbage collection"},
	{Name: "GoMemoryLimitMB", YAML: "goMemoryLimitMB", Kind: KindInt, Default: "-1", Min: -1, Max: 1 << 20, Live: true,
		Doc: "a soft limit on the agent's Go memory in MiB; -1: none"},
	{Name: "GoMaxProcs", YAML: "goMaxProcs", Kind: KindInt, Default: "-1", Min: -1, Max: 1024, Live: true,
		Status: Differently, Reason: "-1 is Ocelot's own choice: every CPU while loading a snapshot, one once in sync (each change is a short burst of work that a second processor only spreads over more thread wake-ups)",
		Doc: "how many threads may run Go code at once; -1: Ocelot chooses"},
	{Name: "DataplaneWatchdogTimeout", YAML: "dataplaneWatchdogTimeout", Kind: KindSeconds, Default: "90"},
	{Name: "NetlinkTimeoutSecs", YAML: "netlinkTimeout", Kind: KindSeconds, Default: "10",
		Doc: "deadline on each netlink request of the dataplane (routes, neighbours, interface and address listings, IP-set members, conntrack)"},

	// Status reporting.
	{Name: "ReportingIntervalSecs", YAML: "reportingInterval", Kind: KindSeconds, Default: "30", Live: true},
	{Name: "ReportingTTLSecs", YAML: "reportingTTL", Kind: KindSeconds, Default: "90", Live: true},
	{Name: "EndpointReportingEnabled", YAML: "endpointReportingEnabled", Kind: KindBool, Default: "false", Live: true},
	{Name: "EndpointReportingDelaySecs", YAML: "endpointReportingDelay", Kind: KindSeconds, Default: "1", Live: true},
	{Name: "EndpointStatusPathPrefix", YAML: "endpointStatusPathPrefix", Kind: KindPath, Default: "/var/run/calico",
		Doc: "per-endpoint status files go to its endpoint-status directory, as Felix writes them (Neutron reads the status keys in etcd); none turns them off"},

	// From ClusterInformation "default".
	{Name: "ClusterType", Kind: KindString, Doc: "from ClusterInformation; containing openstack turns on the OpenStack special cases"},
	{Name: "ClusterGUID", Kind: KindString, Default: "baddecaf", Live: true,
		Status: Differently, Reason: "read from ClusterInformation and shown; Felix uses it only for usage reporting, which Ocelot does not do"},
	{Name: "CalicoVersion", Kind: KindString, Live: true,
		Status: Differently, Reason: "read from ClusterInformation and shown; Felix uses it only for usage reporting, which Ocelot does not do"},
	{Name: "Variant", Kind: KindString, Default: "Calico", Live: true,
		Status: Differently, Reason: "read from ClusterInformation; Ocelot always acts as the Calico variant"},
}, refusedParams...), removedParams...)

// felixEtcdFallback notes where Ocelot is stricter than Felix.
const felixEtcdFallback = "Felix replaces an invalid value with the default; Ocelot stops rather than dial the wrong etcd"

var logLevels = []string{"TRACE", "DEBUG", "INFO", "WARNING", "ERROR", "FATAL"}

var paramsByLower = func() map[string]*Param {
	m := make(map[string]*Param, len(params))
	for i := range params {
		m[strings.ToLower(params[i].Name)] = &params[i]
	}
	return m
}()

var paramsByYAML = func() map[string]*Param {
	m := make(map[string]*Param, len(params))
	for i := range params {
		if params[i].YAML != "" {
			m[strings.ToLower(params[i].YAML)] = &params[i]
		}
	}
	return m
}()

// Lookup finds a parameter by name, case-insensitively.
func Lookup(name string) (*Param, bool) {
	p, ok := paramsByLower[strings.ToLower(name)]
	return p, ok
}

// Params returns the parameter table in its documented order.
func Params() []Param {
	out := make([]Param, len(params))
	copy(out, params)
	return out
}
