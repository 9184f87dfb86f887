package config

import "strings"

// Kind is the type of a parameter's value; it decides how raw text is parsed
// and which Go type the Config field has.
type Kind int

const (
	KindBool       Kind = iota // bool
	KindInt                    // int, within [Min, Max]
	KindSeconds                // time.Duration, given as (fractional) seconds
	KindMillis                 // time.Duration, given as milliseconds
	KindString                 // string
	KindList                   // []string, comma separated
	KindPortList               // []ProtoPort, items [proto:][net:]port
	KindEnum                   // string, one of Enum (case-insensitive, stored as listed)
	KindHostname               // string of [a-zA-Z0-9_.-]
	KindIPOrHost               // string: an IP address or a host name
	KindRegion                 // string: an OpenStack region name
	KindMarkMask               // uint32 with enough bits for Ocelot's marks
	KindURLList                // []string of http(s) URLs, one scheme for all
	KindHostPort               // string host:port
	KindFile                   // string: path of a file that must exist
	KindPrefixList             // []string of interface-name prefixes
)

// Param describes one configuration parameter.
type Param struct {
	Name      string // canonical (Go) name, also the felix.cfg and FELIX_ name
	YAML      string // FelixConfiguration spec field, "" when it has none
	Kind      Kind
	Default   string   // raw text of the built-in default
	Enum      []string // allowed values for KindEnum
	Min, Max  int      // bounds for KindInt (ignored when both are 0)
	Local     bool     // may not come from the datastore
	DieOnFail bool     // an invalid value stops start-up
	NonZero   bool     // "none" (the zero value) is invalid
	Live      bool     // may change while running; otherwise a change restarts the agent
	Ignored   bool     // accepted for compatibility with Felix, not used by Ocelot
	Doc       string
}

// params is the parameter table: the parameters of Felix's iptables mode
// that an OpenStack host uses (docs/parameters.md says what Ocelot does
// with each).
var params = []Param{
	// Datastore connection: local only.
	{Name: "DatastoreType", Kind: KindEnum, Default: "etcdv3", Enum: []string{"etcdv3", "kubernetes"}, Local: true, DieOnFail: true,
		Doc: "datastore driver; Ocelot supports etcdv3 only"},
	{Name: "FelixHostname", Kind: KindHostname, Local: true, DieOnFail: true, NonZero: true,
		Doc: "this host's name as Neutron knows it (binding:host_id); default: the lower-cased kernel hostname"},
	{Name: "EtcdEndpoints", Kind: KindURLList, Local: true, DieOnFail: true,
		Doc: "comma-separated etcd URLs; overrides EtcdAddr and EtcdScheme"},
	{Name: "EtcdAddr", Kind: KindHostPort, Default: "127.0.0.1:2379", Local: true, DieOnFail: true, Doc: "etcd host:port when EtcdEndpoints is unset"},
	{Name: "EtcdScheme", Kind: KindEnum, Default: "http", Enum: []string{"http", "https"}, Local: true, DieOnFail: true},
	{Name: "EtcdKeyFile", Kind: KindFile, Local: true, DieOnFail: true, Doc: "client key for etcd TLS"},
	{Name: "EtcdCertFile", Kind: KindFile, Local: true, DieOnFail: true, Doc: "client certificate for etcd TLS"},
	{Name: "EtcdCaFile", Kind: KindFile, Local: true, DieOnFail: true, Doc: "CA bundle for etcd TLS"},
	{Name: "EtcdUsername", Kind: KindString, Local: true},
	{Name: "EtcdPassword", Kind: KindString, Local: true},

	// Region.
	{Name: "OpenstackRegion", YAML: "openstackRegion", Kind: KindRegion, DieOnFail: true,
		Doc: "OpenStack region of this host; selects namespace openstack-region-<region> and status prefix region-<region>"},

	// Interfaces and rules.
	{Name: "InterfacePrefix", YAML: "interfacePrefix", Kind: KindPrefixList, Default: "cali", DieOnFail: true, NonZero: true,
		Doc: "comma-separated workload interface prefixes; OpenStack uses tap"},
	{Name: "InterfaceExclude", YAML: "interfaceExclude", Kind: KindList, Default: "kube-ipvs0"},
	{Name: "DefaultEndpointToHostAction", YAML: "defaultEndpointToHostAction", Kind: KindEnum, Default: "DROP", Enum: []string{"DROP", "RETURN", "ACCEPT"}},
	{Name: "ChainInsertMode", YAML: "chainInsertMode", Kind: KindEnum, Default: "insert", Enum: []string{"insert", "append"}},
	{Name: "IptablesBackend", YAML: "iptablesBackend", Kind: KindEnum, Default: "auto", Enum: []string{"auto", "legacy", "nft"}},
	{Name: "NFTablesMode", YAML: "nftablesMode", Kind: KindEnum, Default: "Auto", Enum: []string{"Auto", "Enabled", "Disabled"}, Ignored: true,
		Doc: "Ocelot always programs iptables; Enabled is reported and ignored"},
	{Name: "IptablesFilterAllowAction", YAML: "iptablesFilterAllowAction", Kind: KindEnum, Default: "ACCEPT", Enum: []string{"ACCEPT", "RETURN"}},
	{Name: "IptablesMangleAllowAction", YAML: "iptablesMangleAllowAction", Kind: KindEnum, Default: "ACCEPT", Enum: []string{"ACCEPT", "RETURN"}},
	{Name: "IptablesFilterDenyAction", YAML: "iptablesFilterDenyAction", Kind: KindEnum, Default: "DROP", Enum: []string{"DROP", "REJECT"}},
	{Name: "IptablesMarkMask", YAML: "iptablesMarkMask", Kind: KindMarkMask, Default: "0xffff0000", DieOnFail: true, NonZero: true},
	{Name: "IptablesRefreshInterval", YAML: "iptablesRefreshInterval", Kind: KindSeconds, Default: "180"},
	{Name: "IptablesPostWriteCheckIntervalSecs", YAML: "iptablesPostWriteCheckInterval", Kind: KindSeconds, Default: "5"},
	{Name: "IptablesLockProbeIntervalMillis", YAML: "iptablesLockProbeInterval", Kind: KindMillis, Default: "50"},
	{Name: "IpsetsRefreshInterval", YAML: "ipsetsRefreshInterval", Kind: KindSeconds, Default: "90"},
	{Name: "MaxIpsetSize", YAML: "maxIpsetSize", Kind: KindInt, Default: "1048576", Min: 1, Max: 1 << 30},
	{Name: "RouteRefreshInterval", YAML: "routeRefreshInterval", Kind: KindSeconds, Default: "90"},
	{Name: "InterfaceRefreshInterval", YAML: "interfaceRefreshInterval", Kind: KindSeconds, Default: "90"},
	{Name: "RemoveExternalRoutes", YAML: "removeExternalRoutes", Kind: KindBool, Default: "true"},
	{Name: "DeviceRouteProtocol", YAML: "deviceRouteProtocol", Kind: KindInt, Default: "3", Min: 0, Max: 255},
	{Name: "RouteSource", YAML: "routeSource", Kind: KindEnum, Default: "CalicoIPAM", Enum: []string{"CalicoIPAM", "WorkloadIPs"}, Ignored: true},
	{Name: "IPForwarding", YAML: "ipForwarding", Kind: KindEnum, Default: "Enabled", Enum: []string{"Enabled", "Disabled"}},
	{Name: "Ipv6Support", YAML: "ipv6Support", Kind: KindBool, Default: "true"},
	{Name: "MetadataAddr", YAML: "metadataAddr", Kind: KindIPOrHost, Default: "127.0.0.1"},
	{Name: "MetadataPort", YAML: "metadataPort", Kind: KindInt, Default: "8775", Min: 0, Max: 65535},
	{Name: "FailsafeInboundHostPorts", YAML: "failsafeInboundHostPorts", Kind: KindPortList,
		Default: "tcp:22,udp:68,tcp:179,tcp:2379,tcp:2380,tcp:5473,tcp:6443,tcp:6666,tcp:6667"},
	{Name: "FailsafeOutboundHostPorts", YAML: "failsafeOutboundHostPorts", Kind: KindPortList,
		Default: "udp:53,udp:67,tcp:179,tcp:2379,tcp:2380,tcp:5473,tcp:6443,tcp:6666,tcp:6667"},
	{Name: "DisableConntrackInvalidCheck", YAML: "disableConntrackInvalidCheck", Kind: KindBool, Default: "false"},
	{Name: "AllowVXLANPacketsFromWorkloads", YAML: "allowVXLANPacketsFromWorkloads", Kind: KindBool, Default: "false"},
	{Name: "AllowIPIPPacketsFromWorkloads", YAML: "allowIPIPPacketsFromWorkloads", Kind: KindBool, Default: "false"},
	{Name: "VXLANPort", YAML: "vxlanPort", Kind: KindInt, Default: "4789", Min: 1, Max: 65535},
	{Name: "FloatingIPs", YAML: "floatingIPs", Kind: KindEnum, Default: "Disabled", Enum: []string{"Enabled", "Disabled"}},
	{Name: "BPFEnabled", YAML: "bpfEnabled", Kind: KindBool, Default: "false", Ignored: true, Doc: "Ocelot has no BPF dataplane; true is reported and ignored"},

	// Logging.
	{Name: "LogSeverityScreen", YAML: "logSeverityScreen", Kind: KindEnum, Default: "INFO", Enum: logLevels, Live: true},
	{Name: "LogSeverityFile", YAML: "logSeverityFile", Kind: KindEnum, Default: "INFO", Enum: logLevels, Live: true},
	{Name: "LogSeveritySys", YAML: "logSeveritySys", Kind: KindEnum, Default: "INFO", Enum: logLevels, Live: true},
	{Name: "LogFilePath", YAML: "logFilePath", Kind: KindString, Default: "/var/log/calico/felix.log"},
	{Name: "LogPrefix", YAML: "logPrefix", Kind: KindString, Default: "calico-packet"},

	// Observability.
	{Name: "PrometheusMetricsEnabled", YAML: "prometheusMetricsEnabled", Kind: KindBool, Default: "false"},
	{Name: "PrometheusMetricsHost", YAML: "prometheusMetricsHost", Kind: KindString},
	{Name: "PrometheusMetricsPort", YAML: "prometheusMetricsPort", Kind: KindInt, Default: "9091", Min: 0, Max: 65535},
	{Name: "PrometheusGoMetricsEnabled", YAML: "prometheusGoMetricsEnabled", Kind: KindBool, Default: "true"},
	{Name: "PrometheusProcessMetricsEnabled", YAML: "prometheusProcessMetricsEnabled", Kind: KindBool, Default: "true"},
	{Name: "HealthEnabled", YAML: "healthEnabled", Kind: KindBool, Default: "false"},
	{Name: "HealthHost", YAML: "healthHost", Kind: KindString, Default: "localhost"},
	{Name: "HealthPort", YAML: "healthPort", Kind: KindInt, Default: "9099", Min: 0, Max: 65535},
	{Name: "DataplaneWatchdogTimeout", YAML: "dataplaneWatchdogTimeout", Kind: KindSeconds, Default: "90"},

	// Status reporting.
	{Name: "ReportingIntervalSecs", YAML: "reportingInterval", Kind: KindSeconds, Default: "30", Live: true},
	{Name: "ReportingTTLSecs", YAML: "reportingTTL", Kind: KindSeconds, Default: "90", Live: true},
	{Name: "EndpointReportingEnabled", YAML: "endpointReportingEnabled", Kind: KindBool, Default: "false", Live: true},
	{Name: "EndpointReportingDelaySecs", YAML: "endpointReportingDelay", Kind: KindSeconds, Default: "1", Live: true},
	{Name: "UsageReportingEnabled", YAML: "usageReportingEnabled", Kind: KindBool, Default: "true", Live: true, Ignored: true},
	{Name: "NetlinkTimeoutSecs", YAML: "netlinkTimeout", Kind: KindSeconds, Default: "10"},

	// From ClusterInformation "default".
	{Name: "ClusterType", Kind: KindString, Doc: "from ClusterInformation; containing openstack turns on the OpenStack special cases"},
	{Name: "ClusterGUID", Kind: KindString, Live: true},
	{Name: "CalicoVersion", Kind: KindString, Live: true},
	{Name: "Variant", Kind: KindString, Default: "Calico", Live: true},
}

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
