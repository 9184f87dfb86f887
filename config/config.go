package config

import (
	"fmt"
	"os"
	"reflect"
	"sort"
	"strings"
	"time"
)

// Config is the effective configuration. Each field is named after its
// parameter; see the table in params.go for meaning and defaults.
type Config struct {
	DatastoreType string
	FelixHostname string
	EtcdEndpoints []string
	EtcdAddr      string
	EtcdScheme    string
	EtcdKeyFile   string
	EtcdCertFile  string
	EtcdCaFile    string
	EtcdUsername  string
	EtcdPassword  string

	OpenstackRegion string

	InterfacePrefix                    []string
	InterfaceExclude                   []string
	DefaultEndpointToHostAction        string
	ChainInsertMode                    string
	IptablesBackend                    string
	NFTablesMode                       string
	IptablesFilterAllowAction          string
	IptablesMangleAllowAction          string
	IptablesFilterDenyAction           string
	IptablesMarkMask                   uint32
	IptablesRefreshInterval            time.Duration
	IptablesPostWriteCheckIntervalSecs time.Duration
	IptablesLockProbeIntervalMillis    time.Duration
	IpsetsRefreshInterval              time.Duration
	MaxIpsetSize                       int
	RouteRefreshInterval               time.Duration
	InterfaceRefreshInterval           time.Duration
	RemoveExternalRoutes               bool
	DeviceRouteProtocol                int
	RouteSource                        string
	IPForwarding                       string
	Ipv6Support                        bool
	MetadataAddr                       string
	MetadataPort                       int
	FailsafeInboundHostPorts           []ProtoPort
	FailsafeOutboundHostPorts          []ProtoPort
	DisableConntrackInvalidCheck       bool
	AllowVXLANPacketsFromWorkloads     bool
	AllowIPIPPacketsFromWorkloads      bool
	VXLANPort                          int
	FloatingIPs                        string
	BPFEnabled                         bool

	LogSeverityScreen string
	LogSeverityFile   string
	LogSeveritySys    string
	LogFilePath       string
	LogPrefix         string

	PrometheusMetricsEnabled        bool
	PrometheusMetricsHost           string
	PrometheusMetricsPort           int
	PrometheusGoMetricsEnabled      bool
	PrometheusProcessMetricsEnabled bool
	HealthEnabled                   bool
	HealthHost                      string
	HealthPort                      int
	DataplaneWatchdogTimeout        time.Duration

	ReportingIntervalSecs      time.Duration
	ReportingTTLSecs           time.Duration
	EndpointReportingEnabled   bool
	EndpointReportingDelaySecs time.Duration
	UsageReportingEnabled      bool
	NetlinkTimeoutSecs         time.Duration

	ClusterType   string
	ClusterGUID   string
	CalicoVersion string
	Variant       string

	// origin records, per canonical parameter name, the raw value in force.
	origin map[string]RawValue
}

// Severity of a Problem.
type Severity int

const (
	Warning Severity = iota // the value is ignored; start-up continues
	Fatal                   // start-up stops (exit code 1)
)

func (s Severity) String() string {
	if s == Fatal {
		return "error"
	}
	return "warning"
}

// Problem is one message about bad configuration input.
type Problem struct {
	Severity Severity
	Where    string // file:line, variable, or datastore resource and field
	Param    string // parameter name as written ("" for file-level problems)
	Value    string
	Rule     string // the rule that was broken, and the consequence
}

func (p Problem) String() string {
	var b strings.Builder
	b.WriteString(p.Severity.String())
	b.WriteString(": ")
	if p.Where != "" {
		b.WriteString(p.Where)
		b.WriteString(": ")
	}
	if p.Param != "" {
		fmt.Fprintf(&b, "%s = %q: ", p.Param, p.Value)
	}
	b.WriteString(p.Rule)
	return b.String()
}

// Problems is a list of Problem with helpers.
type Problems []Problem

// Fatal reports whether any problem stops start-up.
func (ps Problems) Fatal() bool {
	for _, p := range ps {
		if p.Severity == Fatal {
			return true
		}
	}
	return false
}

// hostname is the kernel host name source; tests replace it.
var hostname = os.Hostname

// Load resolves the effective configuration from any number of sources.
// For each parameter the highest-precedence valid value wins; an invalid
// value is reported and skipped (fatal for die-on-fail parameters).
func Load(sources ...[]RawValue) (*Config, Problems) {
	var problems Problems
	byParam := map[*Param][]RawValue{}
	for _, src := range sources {
		for _, rv := range src {
			if rv.Value == "" {
				continue // empty means unset
			}
			p, ok := Lookup(rv.Name)
			if !ok {
				if rv.Source != SourceDatastoreGlobal && rv.Source != SourceDatastoreHost {
					problems = append(problems, Problem{Severity: Warning, Where: rv.Where, Param: rv.Name, Value: rv.Value,
						Rule: "is not a parameter Ocelot knows; ignored"})
				}
				continue
			}
			byParam[p] = append(byParam[p], rv)
		}
	}

	cfg := &Config{origin: map[string]RawValue{}}
	for i := range params {
		p := &params[i]
		cands := byParam[p]
		sort.SliceStable(cands, func(a, b int) bool { return cands[a].Source > cands[b].Source })
		set := false
		for _, rv := range cands {
			v, err := parseValue(p, rv.Value)
			if err != nil {
				pr := Problem{Severity: Warning, Where: rv.Where, Param: rv.Name, Value: rv.Value, Rule: err.Error()}
				if p.DieOnFail {
					pr.Severity = Fatal
					pr.Rule += "; start-up stops"
				} else {
					pr.Rule += "; ignored"
				}
				problems = append(problems, pr)
				continue
			}
			cfg.set(p, v, rv)
			set = true
			break
		}
		if !set {
			def := defaultValue(p)
			v, err := parseValue(p, def)
			if def == "" || err != nil {
				v = zeroValue(p.Kind)
			}
			cfg.set(p, v, RawValue{Name: p.Name, Value: def, Source: SourceDefault, Where: "default"})
		}
	}
	problems = append(problems, cfg.crossCheck()...)
	return cfg, problems
}

func defaultValue(p *Param) string {
	if p.Name == "FelixHostname" {
		if h, err := hostname(); err == nil {
			return strings.ToLower(h)
		}
	}
	return p.Default
}

func (c *Config) set(p *Param, v any, rv RawValue) {
	f := reflect.ValueOf(c).Elem().FieldByName(p.Name)
	f.Set(reflect.ValueOf(v))
	c.origin[p.Name] = rv
}

// crossCheck applies the rules that involve more than one parameter.
func (c *Config) crossCheck() Problems {
	var ps Problems
	fatal := func(param, rule string) {
		rv := c.origin[param]
		ps = append(ps, Problem{Severity: Fatal, Where: rv.Where, Param: param, Value: rv.Value, Rule: rule})
	}
	warn := func(param, rule string) {
		rv := c.origin[param]
		ps = append(ps, Problem{Severity: Warning, Where: rv.Where, Param: param, Value: rv.Value, Rule: rule})
	}
	if c.DatastoreType != "etcdv3" {
		fatal("DatastoreType", "Ocelot supports only the etcdv3 datastore; start-up stops")
	}
	if (c.EtcdKeyFile == "") != (c.EtcdCertFile == "") {
		if c.EtcdKeyFile == "" {
			fatal("EtcdCertFile", "EtcdCertFile needs EtcdKeyFile as well; start-up stops")
		} else {
			fatal("EtcdKeyFile", "EtcdKeyFile needs EtcdCertFile as well; start-up stops")
		}
	}
	if c.BPFEnabled {
		warn("BPFEnabled", "Ocelot has no BPF dataplane; programming iptables instead")
	}
	if c.NFTablesMode == "Enabled" {
		warn("NFTablesMode", "Ocelot has no nftables dataplane; programming iptables instead")
	}
	return ps
}

// Origin returns the raw value in force for a parameter and where it came from.
func (c *Config) Origin(name string) (RawValue, bool) {
	p, ok := Lookup(name)
	if !ok {
		return RawValue{}, false
	}
	rv, ok := c.origin[p.Name]
	return rv, ok
}

// Value returns the typed value of a parameter by name.
func (c *Config) Value(name string) (any, bool) {
	p, ok := Lookup(name)
	if !ok {
		return nil, false
	}
	return reflect.ValueOf(c).Elem().FieldByName(p.Name).Interface(), true
}

// Format renders a parameter's effective value the way the config file
// would write it.
func (c *Config) Format(name string) string {
	v, ok := c.Value(name)
	if !ok {
		return ""
	}
	p, _ := Lookup(name)
	switch x := v.(type) {
	case []string:
		return strings.Join(x, ",")
	case []ProtoPort:
		parts := make([]string, len(x))
		for i, pp := range x {
			parts[i] = pp.String()
		}
		return strings.Join(parts, ",")
	case time.Duration:
		if p.Kind == KindMillis {
			return fmt.Sprint(float64(x) / float64(time.Millisecond))
		}
		return fmt.Sprint(x.Seconds())
	case uint32:
		return fmt.Sprintf("%#x", x)
	}
	return fmt.Sprint(v)
}

// Changed lists the parameters whose values differ between c and other, and
// whether every one of them may change live.
func (c *Config) Changed(other *Config) (names []string, allLive bool) {
	allLive = true
	for i := range params {
		p := &params[i]
		a := reflect.ValueOf(c).Elem().FieldByName(p.Name).Interface()
		b := reflect.ValueOf(other).Elem().FieldByName(p.Name).Interface()
		if !reflect.DeepEqual(a, b) {
			names = append(names, p.Name)
			if !p.Live {
				allLive = false
			}
		}
	}
	return names, allLive
}

// Namespace is the local region's namespace: openstack-region-<region>, or
// openstack without a region.
func (c *Config) Namespace() string { return RegionNamespace(c.OpenstackRegion) }

// RegionString is the region segment of the status keys: region-<region>,
// or no-region.
func (c *Config) RegionString() string {
	if c.OpenstackRegion == "" {
		return "no-region"
	}
	return "region-" + c.OpenstackRegion
}

// RegionNamespace gives the namespace the Neutron driver uses for a region.
func RegionNamespace(region string) string {
	if region == "" {
		return "openstack"
	}
	return "openstack-region-" + region
}

// EtcdURLs are the etcd endpoints to dial: EtcdEndpoints when set, otherwise
// EtcdScheme://EtcdAddr.
func (c *Config) EtcdURLs() []string {
	if len(c.EtcdEndpoints) > 0 {
		return append([]string(nil), c.EtcdEndpoints...)
	}
	return []string{c.EtcdScheme + "://" + c.EtcdAddr}
}

// OpenstackActive reports whether Felix's OpenStack special cases apply:
// ClusterType mentions openstack, the metadata address or port is not the
// default, or an interface prefix is "tap".
func (c *Config) OpenstackActive() bool {
	if strings.Contains(strings.ToLower(c.ClusterType), "openstack") {
		return true
	}
	if c.MetadataAddr != "127.0.0.1" || c.MetadataPort != 8775 {
		return true
	}
	for _, p := range c.InterfacePrefix {
		if p == "tap" {
			return true
		}
	}
	return false
}
