package config

// The Felix parameters Ocelot refuses, with the reason config check prints
// when a source sets one. Their values are ignored: no Config field, no
// validation beyond what the report needs. Kind is kept only to tell a
// value that asks for nothing (Inert, default: Default) from one that does.
const (
	reasonBPF        = "Ocelot has no eBPF dataplane; it programs iptables or nftables"
	reasonWireGuard  = "Ocelot does not encrypt traffic between hosts (no WireGuard)"
	reasonTypha      = "Typha fans a Kubernetes datastore out to many agents; Ocelot reads etcd directly"
	reasonOverlay    = "OpenStack routes VM addresses without an overlay; Ocelot creates no VXLAN or IP-in-IP devices"
	reasonRoutes     = "Ocelot programs routes only to its own VMs; routes to other hosts come from BIRD"
	reasonKubernetes = "Kubernetes only: OpenStack has no services, node ports, sidecars or CNI plugin"
	reasonNAT        = "Ocelot does not program NAT-outgoing for IP pools; Neutron routers do SNAT"
	reasonXDP        = "Ocelot does not use XDP; it enforces in iptables only"
	reasonFlowTable  = "not planned: flowtable offload lets established flows skip the forward chain"
	reasonFlowLogs   = "flow logs feed Calico's Goldmane service; Ocelot has drop logs (DropActionOverride = LogAndDrop), per-policy counters and ocelot explain instead"
	reasonUsage      = "Ocelot never reports usage to anyone"
	reasonDebug      = "Felix's debugging hooks; Ocelot serves pprof when OCELOT_DEBUG_PPROF is set"
	reasonDriver     = "Ocelot is its own dataplane; external dataplane drivers are not supported"
	reasonFeatures   = "Felix's kernel feature switches; Ocelot probes what it needs itself"
	reasonMetricsTLS = "not implemented: metrics are served over plain HTTP; bind PrometheusMetricsHost to a local address or put a TLS proxy in front"
)

var refusedParams = refuse([]Param{
	{Name: "UseInternalDataplaneDriver", YAML: "useInternalDataplaneDriver", Kind: KindBool, Default: "true", Reason: reasonDriver, Inert: []string{"true"}},
	{Name: "DataplaneDriver", YAML: "dataplaneDriver", Kind: KindString, Default: "calico-iptables-plugin", Reason: reasonDriver},
	{Name: "WireguardEnabled", YAML: "wireguardEnabled", Kind: KindBool, Default: "false", Reason: reasonWireGuard},
	{Name: "WireguardEnabledV6", YAML: "wireguardEnabledV6", Kind: KindBool, Default: "false", Reason: reasonWireGuard},
	{Name: "WireguardListeningPort", YAML: "wireguardListeningPort", Kind: KindInt, Default: "51820", Reason: reasonWireGuard},
	{Name: "WireguardListeningPortV6", YAML: "wireguardListeningPortV6", Kind: KindInt, Default: "51821", Reason: reasonWireGuard},
	{Name: "WireguardRoutingRulePriority", YAML: "wireguardRoutingRulePriority", Kind: KindInt, Default: "99", Reason: reasonWireGuard},
	{Name: "WireguardInterfaceName", YAML: "wireguardInterfaceName", Kind: KindString, Default: "wireguard.cali", Reason: reasonWireGuard},
	{Name: "WireguardInterfaceNameV6", YAML: "wireguardInterfaceNameV6", Kind: KindString, Default: "wg-v6.cali", Reason: reasonWireGuard},
	{Name: "WireguardMTU", YAML: "wireguardMTU", Kind: KindInt, Default: "0", Reason: reasonWireGuard},
	{Name: "WireguardMTUV6", YAML: "wireguardMTUV6", Kind: KindInt, Default: "0", Reason: reasonWireGuard},
	{Name: "WireguardHostEncryptionEnabled", YAML: "wireguardHostEncryptionEnabled", Kind: KindBool, Default: "false", Reason: reasonWireGuard},
	{Name: "WireguardPersistentKeepAlive", YAML: "wireguardKeepAlive", Kind: KindSeconds, Default: "0", Reason: reasonWireGuard},
	{Name: "WireguardThreadingEnabled", YAML: "wireguardThreadingEnabled", Kind: KindBool, Default: "false", Reason: reasonWireGuard},
	{Name: "NFTablesFlowTableOffload", YAML: "nftablesFlowTableOffload", Kind: KindString, Default: "Disabled", Reason: reasonFlowTable},
	{Name: "NFTablesFlowTableDataIfacePattern", YAML: "nftablesFlowTableDataIfacePattern", Kind: KindString, Reason: reasonFlowTable},
	{Name: "BPFEnabled", YAML: "bpfEnabled", Kind: KindBool, Default: "false", Reason: reasonBPF, Inert: []string{"false"}},
	{Name: "BPFOverlayHostSourceIP", YAML: "bpfOverlayHostSourceIP", Kind: KindString, Default: "TunnelAddress", Reason: reasonBPF},
	{Name: "BPFDisableUnprivileged", YAML: "bpfDisableUnprivileged", Kind: KindBool, Default: "true", Reason: reasonBPF},
	{Name: "BPFJITHardening", YAML: "bpfJITHardening", Kind: KindString, Default: "Auto", Reason: reasonBPF},
	{Name: "BPFLogLevel", YAML: "bpfLogLevel", Kind: KindString, Default: "off", Reason: reasonBPF},
	{Name: "BPFConntrackLogLevel", YAML: "bpfConntrackLogLevel", Kind: KindString, Default: "off", Reason: reasonBPF},
	{Name: "BPFConntrackCleanupMode", YAML: "bpfConntrackMode", Kind: KindString, Default: "Auto", Reason: reasonBPF},
	{Name: "BPFConntrackTimeouts", YAML: "bpfConntrackTimeouts", Kind: KindString, Default: "CreationGracePeriod=10s,TCPSynSent=20s,TCPEstablished=1h,TCPFinsSeen=Auto,TCPResetSeen=40s,UDPTimeout=60s,GenericTimeout=10m,ICMPTimeout=5s", Reason: reasonBPF},
	{Name: "BPFIPFragTimeout", YAML: "bpfIPFragTimeout", Kind: KindSeconds, Default: "0", Reason: reasonBPF},
	{Name: "BPFLogFilters", YAML: "bpfLogFilters", Kind: KindString, Reason: reasonBPF},
	{Name: "BPFCTLBLogFilter", YAML: "bpfCTLBLogFilter", Kind: KindString, Reason: reasonBPF},
	{Name: "BPFDataIfacePattern", YAML: "bpfDataIfacePattern", Kind: KindString, Default: "^((en|wl|ww|sl|ib)[Popsx].*|(eth|wlan|wwan|bond).*)", Reason: reasonBPF},
	{Name: "BPFL3IfacePattern", YAML: "bpfL3IfacePattern", Kind: KindString, Reason: reasonBPF},
	{Name: "BPFConnectTimeLoadBalancingEnabled", YAML: "bpfConnectTimeLoadBalancingEnabled", Kind: KindBool, Reason: reasonBPF},
	{Name: "BPFConnectTimeLoadBalancing", YAML: "bpfConnectTimeLoadBalancing", Kind: KindString, Default: "TCP", Reason: reasonBPF},
	{Name: "BPFHostNetworkedNATWithoutCTLB", YAML: "bpfHostNetworkedNATWithoutCTLB", Kind: KindString, Default: "Enabled", Reason: reasonBPF},
	{Name: "BPFExternalServiceMode", YAML: "bpfExternalServiceMode", Kind: KindString, Default: "tunnel", Reason: reasonBPF},
	{Name: "BPFDSROptoutCIDRs", YAML: "bpfDSROptoutCIDRs", Kind: KindString, Reason: reasonBPF},
	{Name: "BPFKubeProxyIptablesCleanupEnabled", YAML: "bpfKubeProxyIptablesCleanupEnabled", Kind: KindBool, Default: "true", Reason: reasonBPF},
	{Name: "BPFKubeProxyMinSyncPeriod", YAML: "bpfKubeProxyMinSyncPeriod", Kind: KindSeconds, Default: "1", Reason: reasonBPF},
	{Name: "BPFKubeProxyHealthzPort", YAML: "bpfKubeProxyHealthzPort", Kind: KindInt, Default: "10256", Reason: reasonBPF},
	{Name: "BPFExtToServiceConnmark", YAML: "bpfExtToServiceConnmark", Kind: KindInt, Default: "0", Reason: reasonBPF},
	{Name: "BPFPSNATPorts", YAML: "bpfPSNATPorts", Kind: KindString, Default: "20000:29999", Reason: reasonBPF},
	{Name: "BPFMapSizeNATFrontend", YAML: "bpfMapSizeNATFrontend", Kind: KindInt, Default: "65536", Reason: reasonBPF},
	{Name: "BPFMapSizeNATBackend", YAML: "bpfMapSizeNATBackend", Kind: KindInt, Default: "262144", Reason: reasonBPF},
	{Name: "BPFMapSizeNATAffinity", YAML: "bpfMapSizeNATAffinity", Kind: KindInt, Default: "65536", Reason: reasonBPF},
	{Name: "BPFMapSizeRoute", YAML: "bpfMapSizeRoute", Kind: KindInt, Default: "262144", Reason: reasonBPF},
	{Name: "BPFMapSizeConntrack", YAML: "bpfMapSizeConntrack", Kind: KindInt, Default: "512000", Reason: reasonBPF},
	{Name: "BPFMapSizePerCPUConntrack", YAML: "bpfMapSizePerCpuConntrack", Kind: KindInt, Default: "0", Reason: reasonBPF},
	{Name: "BPFMapSizeConntrackScaling", YAML: "bpfMapSizeConntrackScaling", Kind: KindString, Default: "DoubleIfFull", Reason: reasonBPF},
	{Name: "BPFMapSizeConntrackCleanupQueue", YAML: "bpfMapSizeConntrackCleanupQueue", Kind: KindInt, Default: "100000", Reason: reasonBPF},
	{Name: "BPFMapSizeIPSets", YAML: "bpfMapSizeIPSets", Kind: KindInt, Default: "1048576", Reason: reasonBPF},
	{Name: "BPFMapSizeIfState", YAML: "bpfMapSizeIfState", Kind: KindInt, Default: "1000", Reason: reasonBPF},
	{Name: "BPFHostConntrackBypass", YAML: "bpfHostConntrackBypass", Kind: KindBool, Default: "false", Reason: reasonBPF},
	{Name: "BPFIPFragmentReassemblyEnabled", YAML: "bpfIPFragmentReassemblyEnabled", Kind: KindBool, Default: "true", Reason: reasonBPF},
	{Name: "BPFEnforceRPF", YAML: "bpfEnforceRPF", Kind: KindString, Default: "Loose", Reason: reasonBPF},
	{Name: "BPFPolicyDebugEnabled", YAML: "bpfPolicyDebugEnabled", Kind: KindBool, Default: "true", Reason: reasonBPF},
	{Name: "BPFForceTrackPacketsFromIfaces", YAML: "bpfForceTrackPacketsFromIfaces", Kind: KindString, Default: "docker+", Reason: reasonBPF},
	{Name: "BPFDisableGROForIfaces", YAML: "bpfDisableGROForIfaces", Kind: KindString, Reason: reasonBPF},
	{Name: "BPFExcludeCIDRsFromNAT", YAML: "bpfExcludeCIDRsFromNAT", Kind: KindString, Reason: reasonBPF},
	{Name: "BPFRedirectToPeer", YAML: "bpfRedirectToPeer", Kind: KindString, Default: "Enabled", Reason: reasonBPF},
	{Name: "BPFAttachType", YAML: "bpfAttachType", Kind: KindString, Default: "Netkit", Reason: reasonBPF},
	{Name: "BPFExportBufferSizeMB", YAML: "bpfExportBufferSizeMB", Kind: KindInt, Default: "1", Reason: reasonBPF},
	{Name: "BPFProfiling", YAML: "bpfProfiling", Kind: KindString, Default: "Disabled", Reason: reasonBPF},
	{Name: "IstioAmbientMode", YAML: "istioAmbientMode", Kind: KindString, Default: "Disabled", Reason: reasonKubernetes},
	{Name: "IstioDSCPMark", YAML: "istioDSCPMark", Kind: KindString, Default: "23", Reason: reasonKubernetes},
	{Name: "CgroupV2Path", YAML: "cgroupV2Path", Kind: KindString, Reason: reasonBPF},
	{Name: "DebugBPFCgroupV2", Kind: KindString, Local: true, Reason: reasonBPF},
	{Name: "TyphaAddr", Kind: KindString, Local: true, Reason: reasonTypha},
	{Name: "TyphaK8sServiceName", Kind: KindString, Local: true, Reason: reasonTypha},
	{Name: "TyphaK8sNamespace", Kind: KindString, Default: "kube-system", Local: true, Reason: reasonTypha},
	{Name: "TyphaReadTimeout", Kind: KindSeconds, Default: "30", Local: true, Reason: reasonTypha},
	{Name: "TyphaWriteTimeout", Kind: KindSeconds, Default: "10", Local: true, Reason: reasonTypha},
	{Name: "TyphaKeyFile", Kind: KindString, Local: true, Reason: reasonTypha},
	{Name: "TyphaCertFile", Kind: KindString, Local: true, Reason: reasonTypha},
	{Name: "TyphaCAFile", Kind: KindString, Local: true, Reason: reasonTypha},
	{Name: "TyphaCN", Kind: KindString, Local: true, Reason: reasonTypha},
	{Name: "TyphaURISAN", Kind: KindString, Local: true, Reason: reasonTypha},
	{Name: "DeviceRouteSourceAddress", YAML: "deviceRouteSourceAddress", Kind: KindString, Reason: "not implemented: routes to VMs carry no preferred source address"},
	{Name: "DeviceRouteSourceAddressIPv6", YAML: "deviceRouteSourceAddressIPv6", Kind: KindString, Reason: "not implemented: routes to VMs carry no preferred source address"},
	{Name: "ProgramClusterRoutes", YAML: "programClusterRoutes", Kind: KindString, Default: "EnabledIPIPOnly", Reason: reasonRoutes},
	{Name: "FeatureDetectOverride", YAML: "featureDetectOverride", Kind: KindString, Reason: reasonFeatures},
	{Name: "FeatureGates", YAML: "featureGates", Kind: KindString, Reason: reasonFeatures},
	{Name: "XDPRefreshInterval", YAML: "xdpRefreshInterval", Kind: KindSeconds, Default: "90", Reason: reasonXDP},
	{Name: "PolicySyncPathPrefix", YAML: "policySyncPathPrefix", Kind: KindString, Reason: reasonKubernetes},
	{Name: "LogDebugFilenameRegex", YAML: "logDebugFilenameRegex", Kind: KindString, Reason: "not implemented: debug logs are not filtered by source file"},
	{Name: "VXLANEnabled", YAML: "vxlanEnabled", Kind: KindBool, Reason: reasonOverlay},
	{Name: "VXLANVNI", YAML: "vxlanVNI", Kind: KindInt, Default: "4096", Reason: reasonOverlay},
	{Name: "VXLANMTU", YAML: "vxlanMTU", Kind: KindInt, Default: "0", Reason: reasonOverlay},
	{Name: "VXLANMTUV6", YAML: "vxlanMTUV6", Kind: KindInt, Default: "0", Reason: reasonOverlay},
	{Name: "IPv4VXLANTunnelAddr", Kind: KindString, Reason: reasonOverlay},
	{Name: "IPv6VXLANTunnelAddr", Kind: KindString, Reason: reasonOverlay},
	{Name: "VXLANTunnelMACAddr", Kind: KindString, Reason: reasonOverlay},
	{Name: "VXLANTunnelMACAddrV6", Kind: KindString, Reason: reasonOverlay},
	{Name: "IpInIpEnabled", YAML: "ipipEnabled", Kind: KindBool, Reason: reasonOverlay},
	{Name: "IpInIpMtu", YAML: "ipipMTU", Kind: KindInt, Default: "0", Reason: reasonOverlay},
	{Name: "IpInIpTunnelAddr", Kind: KindString, Reason: reasonOverlay},
	{Name: "LocalSubnetL2Reachability", YAML: "localSubnetL2Reachability", Kind: KindString, Default: "Disabled", Reason: reasonKubernetes},
	{Name: "LocalSubnetL2ReachabilityRefreshInterval", YAML: "localSubnetL2ReachabilityRefreshInterval", Kind: KindSeconds, Default: "120", Reason: reasonKubernetes},
	{Name: "WindowsManageFirewallRules", YAML: "windowsManageFirewallRules", Kind: KindString, Default: "Disabled", Reason: "Windows only"},
	{Name: "AWSSrcDstCheck", YAML: "awsSrcDstCheck", Kind: KindString, Default: "DoNothing", Reason: "AWS only: Ocelot does not manage EC2 source/destination checks"},
	{Name: "ServiceLoopPrevention", YAML: "serviceLoopPrevention", Kind: KindString, Default: "Drop", Reason: reasonKubernetes},
	{Name: "HealthTimeoutOverrides", YAML: "healthTimeoutOverrides", Kind: KindString, Reason: "not implemented: Ocelot's health timeouts are fixed"},
	{Name: "PrometheusWireGuardMetricsEnabled", YAML: "prometheusWireGuardMetricsEnabled", Kind: KindBool, Default: "true", Reason: reasonWireGuard, Inert: []string{anyValue}},
	{Name: "PrometheusMetricsCAFile", YAML: "prometheusMetricsCAFile", Kind: KindString, Reason: reasonMetricsTLS},
	{Name: "PrometheusMetricsCertFile", YAML: "prometheusMetricsCertFile", Kind: KindString, Reason: reasonMetricsTLS},
	{Name: "PrometheusMetricsKeyFile", YAML: "prometheusMetricsKeyFile", Kind: KindString, Reason: reasonMetricsTLS},
	{Name: "PrometheusMetricsClientAuth", YAML: "prometheusMetricsClientAuth", Kind: KindString, Default: "NoClientCert", Reason: reasonMetricsTLS},
	{Name: "FlowLogsFlushInterval", YAML: "flowLogsFlushInterval", Kind: KindSeconds, Default: "300", Reason: reasonFlowLogs},
	{Name: "FlowLogsCollectorDebugTrace", YAML: "flowLogsCollectorDebugTrace", Kind: KindBool, Default: "false", Reason: reasonFlowLogs},
	{Name: "FlowLogsGoldmaneServer", YAML: "flowLogsGoldmaneServer", Kind: KindString, Reason: reasonFlowLogs},
	{Name: "FlowLogsLocalReporter", YAML: "flowLogsLocalReporter", Kind: KindString, Default: "Disabled", Reason: reasonFlowLogs},
	{Name: "FlowLogsPolicyEvaluationMode", YAML: "flowLogsPolicyEvaluationMode", Kind: KindString, Default: "Continuous", Reason: reasonFlowLogs},
	{Name: "KubeNodePortRanges", YAML: "kubeNodePortRanges", Kind: KindString, Default: "30000:32767", Reason: reasonKubernetes},
	{Name: "NATPortRange", YAML: "natPortRange", Kind: KindString, Reason: reasonNAT},
	{Name: "NATOutgoingAddress", YAML: "natOutgoingAddress", Kind: KindString, Reason: reasonNAT},
	{Name: "NATOutgoingExclusions", YAML: "natOutgoingExclusions", Kind: KindString, Default: "IPPoolsOnly", Reason: reasonNAT},
	{Name: "UsageReportingEnabled", YAML: "usageReportingEnabled", Kind: KindBool, Default: "true", Reason: reasonUsage, Inert: []string{"false"}},
	{Name: "UsageReportingInitialDelaySecs", YAML: "usageReportingInitialDelay", Kind: KindSeconds, Default: "300", Reason: reasonUsage},
	{Name: "UsageReportingIntervalSecs", YAML: "usageReportingInterval", Kind: KindSeconds, Default: "86400", Reason: reasonUsage},
	{Name: "ExternalNodesCIDRList", YAML: "externalNodesList", Kind: KindString, Reason: reasonOverlay},
	{Name: "DebugMemoryProfilePath", YAML: "debugMemoryProfilePath", Kind: KindString, Reason: reasonDebug},
	{Name: "DebugCPUProfilePath", Kind: KindString, Default: "/tmp/felix-cpu-<timestamp>.pprof", Reason: reasonDebug},
	{Name: "DebugDisableLogDropping", YAML: "debugDisableLogDropping", Kind: KindBool, Default: "false", Reason: "Ocelot never drops log lines", Inert: []string{anyValue}},
	{Name: "DebugSimulateCalcGraphHangAfter", YAML: "debugSimulateCalcGraphHangAfter", Kind: KindSeconds, Default: "0", Reason: reasonDebug},
	{Name: "DebugSimulateDataplaneHangAfter", YAML: "debugSimulateDataplaneHangAfter", Kind: KindSeconds, Default: "0", Reason: reasonDebug},
	{Name: "DebugSimulateDataplaneApplyDelay", YAML: "debugSimulateDataplaneApplyDelay", Kind: KindSeconds, Default: "0", Reason: reasonDebug},
	{Name: "DebugPanicAfter", Kind: KindSeconds, Default: "0", Reason: reasonDebug},
	{Name: "DebugSimulateDataRace", Kind: KindBool, Default: "false", Reason: reasonDebug},
	{Name: "DebugHost", YAML: "debugHost", Kind: KindString, Default: "localhost", Reason: reasonDebug},
	{Name: "DebugPort", YAML: "debugPort", Kind: KindInt, Reason: reasonDebug},
	{Name: "RouteSource", YAML: "routeSource", Kind: KindString, Default: "CalicoIPAM", Reason: reasonRoutes},
	{Name: "RouteTableRange", YAML: "routeTableRange", Kind: KindString, Reason: reasonRoutes},
	{Name: "RouteTableRanges", YAML: "routeTableRanges", Kind: KindString, Reason: reasonRoutes},
	{Name: "RouteSyncDisabled", YAML: "routeSyncDisabled", Kind: KindBool, Default: "false", Reason: "Ocelot always programs the routes to its own VMs", Inert: []string{"false"}},
	{Name: "IptablesNATOutgoingInterfaceFilter", YAML: "iptablesNATOutgoingInterfaceFilter", Kind: KindString, Reason: reasonNAT},
	{Name: "SidecarAccelerationEnabled", YAML: "sidecarAccelerationEnabled", Kind: KindBool, Default: "false", Reason: reasonKubernetes},
	{Name: "XDPEnabled", YAML: "xdpEnabled", Kind: KindBool, Default: "true", Reason: reasonXDP},
	{Name: "GenericXDPEnabled", YAML: "genericXDPEnabled", Kind: KindBool, Default: "false", Reason: reasonXDP},
	{Name: "MTUIfacePattern", YAML: "mtuIfacePattern", Kind: KindString, Default: "^((en|wl|ww|sl|ib)[Pcopsvx].*|(eth|wlan|wwan).*)", Reason: reasonKubernetes},
	{Name: "RequireMTUFile", YAML: "requireMTUFile", Kind: KindBool, Default: "false", Reason: reasonKubernetes},
	{Name: "BPFMaglevMaxEndpointsPerService", YAML: "bpfMaglevMaxEndpointsPerService", Kind: KindInt, Default: "100", Reason: reasonBPF},
	{Name: "BPFMaglevMaxServices", YAML: "bpfMaglevMaxServices", Kind: KindInt, Default: "100", Reason: reasonBPF},
})

// removedParams were Felix parameters until recently; felix.cfg files still
// carry them, so they are known (and reported), not unknown.
var removedParams = removed(refuse([]Param{
	{Name: "IptablesLockFilePath", YAML: "iptablesLockFilePath", Kind: KindString, Default: "/run/xtables.lock",
		Reason: "removed from Felix in Calico 3.32; iptables-restore takes the lock itself"},
	{Name: "IptablesLockTimeoutSecs", YAML: "iptablesLockTimeout", Kind: KindSeconds, Default: "0",
		Reason: "removed from Felix in Calico 3.32; iptables-restore waits for the lock itself"},
	{Name: "BPFKubeProxyEndpointSlicesEnabled", YAML: "bpfKubeProxyEndpointSlicesEnabled", Kind: KindBool, Default: "false",
		Reason: "removed from Felix in Calico 3.32; " + reasonBPF},
	{Name: "DebugBPFMapRepinEnabled", Kind: KindBool, Default: "false", Local: true,
		Reason: "removed from Felix in Calico 3.31; " + reasonBPF},
	{Name: "BpfIpv6Support", Kind: KindBool, Default: "false",
		Reason: "removed from Felix in Calico 3.27; " + reasonBPF},
}))

func refuse(ps []Param) []Param {
	for i := range ps {
		ps[i].Status = Refused
	}
	return ps
}

func removed(ps []Param) []Param {
	for i := range ps {
		ps[i].From = FromFelixRemoved
	}
	return ps
}
