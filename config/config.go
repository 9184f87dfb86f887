package config

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Config is the effective configuration. Each field is named after its
// parameter; see the table in params.go for meaning and defaults. Refused
// parameters have no field.
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
	InterfaceExclude                   InterfacePatterns
	DefaultEndpointToHostAction        string
	ChainInsertMode                    string
	IptablesBackend                    string
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
	IPForwarding                       string
	Ipv6Support                        bool
	MetadataAddr                       string
	MetadataPort                       int
	DisableConntrackInvalidCheck       bool
	AllowVXLANPacketsFromWorkloads     bool
	AllowIPIPPacketsFromWorkloads      bool
	VXLANPort                          int
	FloatingIPs                        string

	WorkloadSourceSpoofing string // "Disabled" or "Any"

	FailsafeInboundHostPorts  []ProtoPort
	FailsafeOutboundHostPorts []ProtoPort

	LiveMigrationRouteConvergenceTime time.Duration // live migration
	IPv4NormalRoutePriority           int           // live migration
	IPv4ElevatedRoutePriority         int           // live migration
	IPv6NormalRoutePriority           int           // live migration
	IPv6ElevatedRoutePriority         int           // live migration

	NFTablesMode              string        // "Disabled", "Enabled" or "Auto"
	NftablesRefreshInterval   time.Duration // nftables mode
	NftablesFilterAllowAction string        // nftables mode
	NftablesMangleAllowAction string        // nftables mode
	NftablesFilterDenyAction  string        // nftables mode
	NftablesMarkMask          uint32        // nftables mode

	LogSeverityScreen       string
	LogSeverityFile         string
	LogSeveritySys          string
	LogFilePath             string
	LogPrefix               string
	LogActionRateLimit      LogRate // zero means no limit
	LogActionRateLimitBurst int
	DropActionOverride      string // "Drop", "Accept", "LogAndDrop" or "LogAndAccept"
	DropLogNflogGroup       int
	DropLogRateLimit        LogRate
	DropLogRateLimitBurst   int

	PrometheusMetricsEnabled        bool
	PrometheusMetricsHost           string
	PrometheusMetricsPort           int
	PrometheusGoMetricsEnabled      bool
	PrometheusProcessMetricsEnabled bool
	HealthEnabled                   bool
	HealthHost                      string
	HealthPort                      int
	ExplainSocketPath               string // "" means off
	DataplaneWatchdogTimeout        time.Duration

	GoGCThreshold      int
	GoMemoryLimitMB    int
	GoMaxProcs         int
	NetlinkTimeoutSecs time.Duration

	ReportingIntervalSecs      time.Duration
	ReportingTTLSecs           time.Duration
	EndpointReportingEnabled   bool
	EndpointReportingDelaySecs time.Duration
	EndpointStatusPathPrefix   string // "" means off

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

// Class says what kind of problem a Problem is.
type Class int

const (
	Invalid     Class = iota // a value breaks a rule
	Unknown                  // a name that is no parameter at all
	NotHonoured              // a parameter Ocelot refuses or does not honour yet, set by a source
	LocalOnly                // a local-only parameter that came from the datastore
)

// Problem is one message about configuration input.
type Problem struct {
	Severity Severity
	Class    Class
	Source   Source // where the input came from (SourceFile for problems of the file itself)
	Where    string // file:line, variable, or datastore resource and field
	Param    string // parameter name as written ("" for file-level problems)
	Value    string
	Rule     string // the rule that was broken, and the consequence
}

// maxShownValue bounds how much of a value a message repeats.
const maxShownValue = 80

func (p Problem) String() string {
	var b strings.Builder
	b.WriteString(p.Severity.String())
	b.WriteString(": ")
	if p.Where != "" {
		b.WriteString(printable(p.Where))
		b.WriteString(": ")
	}
	if p.Param != "" {
		fmt.Fprintf(&b, "%s = %q: ", printable(p.Param), clip(p.Value))
	}
	b.WriteString(p.Rule)
	return b.String()
}

// printable returns s, quoted when it holds anything but printable text,
// so that no name from a source can break a message into lines.
func printable(s string) string {
	for _, r := range s {
		if !unicode.IsPrint(r) || r == '"' {
			return strconv.Quote(s)
		}
	}
	if !utf8.ValidString(s) {
		return strconv.Quote(s)
	}
	return s
}

// clip shortens a long value for a message, on a rune boundary.
func clip(v string) string {
	if len(v) <= maxShownValue {
		return v
	}
	cut := maxShownValue
	for cut > 0 && !utf8.RuneStart(v[cut]) {
		cut--
	}
	return fmt.Sprintf("%s...(%d bytes)", v[:cut], len(v))
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

// Invalid reports whether any value breaks a rule (fatal or not): what
// makes "ocelot config check" fail. Unknown names and parameters Ocelot does
// not honour are reported but are not invalid.
func (ps Problems) Invalid() bool {
	for _, p := range ps {
		if p.Severity == Fatal || p.Class == Invalid {
			return true
		}
	}
	return false
}

// hostname is the kernel host name source; tests replace it.
var hostname = os.Hostname

// candidate is a raw value with its position in the input, so that among
// values of one source the later wins.
type candidate struct {
	RawValue
	seq int
}

// Load resolves the effective configuration from any number of sources.
// For each parameter the highest-precedence valid value wins (within one
// source, the later); an invalid value is reported and skipped (fatal for
// die-on-fail parameters). A set parameter Ocelot refuses, or does not
// honour yet, is reported with the reason.
func Load(sources ...[]RawValue) (*Config, Problems) {
	var problems Problems
	byParam := map[*Param][]candidate{}
	seq := 0
	for _, src := range sources {
		for _, rv := range src {
			seq++
			if rv.Value == "" {
				continue // empty means unset
			}
			p, ok := Lookup(rv.Name)
			if !ok {
				if !rv.Source.datastore() {
					problems = append(problems, Problem{Severity: Warning, Class: Unknown, Source: rv.Source, Where: rv.Where,
						Param: rv.Name, Value: rv.Value, Rule: "is an unknown parameter (neither Felix nor Ocelot has it); ignored"})
				}
				continue
			}
			if p.Local && rv.Source.datastore() {
				problems = append(problems, localOnlyProblem(p, rv))
				continue
			}
			byParam[p] = append(byParam[p], candidate{rv, seq})
		}
	}

	cfg := &Config{origin: map[string]RawValue{}}
	for i := range params {
		p := &params[i]
		cands := byParam[p]
		sort.SliceStable(cands, func(a, b int) bool {
			if cands[a].Source != cands[b].Source {
				return cands[a].Source > cands[b].Source
			}
			return cands[a].seq > cands[b].seq
		})
		if !p.HasField() {
			problems = append(problems, cfg.refused(p, cands)...)
			continue
		}
		set := false
		for _, c := range cands {
			rv := c.RawValue
			v, bad := judge(p, rv)
			if bad != nil {
				problems = append(problems, *bad)
				continue
			}
			cfg.set(p, v, rv)
			if p.Status == Planned && !p.inert(rv.Value) {
				problems = append(problems, problemAt(Warning, NotHonoured, rv, p,
					"Ocelot does not honour this parameter yet (planned: "+p.Reason+"); the value is checked and kept"))
			}
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
	cfg.normalize()
	problems = append(problems, cfg.crossCheck()...)
	return cfg, problems
}

// judge parses one raw value of p, or says why it is not taken: fatal for
// die-on-fail parameters and for "none" where a value is needed, as in
// Felix; a warning otherwise (the next source down applies).
func judge(p *Param, rv RawValue) (any, *Problem) {
	v, err := parseValue(p, rv.Value)
	if err != nil {
		sev, consequence := Warning, "; ignored"
		if p.DieOnFail || (p.NonZero && strings.EqualFold(rv.Value, "none")) {
			sev, consequence = Fatal, "; start-up stops"
		}
		bad := problemAt(sev, Invalid, rv, p, err.Error()+consequence)
		return nil, &bad
	}
	if err := sourceRule(p, v, rv.Source); err != nil {
		bad := problemAt(Warning, Invalid, rv, p, err.Error()+"; ignored")
		return nil, &bad
	}
	return v, nil
}

// refused records the raw value in force for a refused parameter and
// reports it unless it asks for nothing Ocelot does not do.
func (c *Config) refused(p *Param, cands []candidate) Problems {
	if len(cands) == 0 {
		c.origin[p.Name] = RawValue{Name: p.Name, Value: p.Default, Source: SourceDefault, Where: "default"}
		return nil
	}
	rv := cands[0].RawValue
	c.origin[p.Name] = rv
	if p.inert(rv.Value) {
		return nil
	}
	return Problems{problemAt(Warning, NotHonoured, rv, p, "Ocelot refuses this parameter ("+p.Reason+"); the value is ignored")}
}

// inert reports whether raw asks for nothing Ocelot does not do.
func (p *Param) inert(raw string) bool {
	refs := p.Inert
	if refs == nil {
		refs = []string{p.Default}
	}
	for _, ref := range refs {
		if ref == anyValue || sameValue(p, raw, ref) {
			return true
		}
	}
	return false
}

// sourceRule applies rules that depend on where a valid value came from.
func sourceRule(p *Param, v any, src Source) error {
	if p.Name == "DropActionOverride" && src.datastore() && (v == "Accept" || v == "LogAndAccept") {
		return errors.New("turns policy enforcement off; Ocelot takes Accept and LogAndAccept from the config file or the environment only")
	}
	return nil
}

func problemAt(sev Severity, class Class, rv RawValue, p *Param, rule string) Problem {
	return Problem{Severity: sev, Class: class, Source: rv.Source, Where: rv.Where, Param: rv.Name, Value: shownValue(p, rv.Value), Rule: rule}
}

func localOnlyProblem(p *Param, rv RawValue) Problem {
	return problemAt(Warning, LocalOnly, rv, p, "is local-only and may not come from the datastore; ignored")
}

// shownValue is the value as messages may repeat it: secrets hidden.
func shownValue(p *Param, v string) string {
	switch {
	case p == nil:
		return v
	case p.Name == "EtcdPassword":
		return "(redacted)"
	case p.Kind == KindURLList:
		return redactURLs(v)
	}
	return v
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

// normalize gives zero values the meaning Felix gives them.
func (c *Config) normalize() {
	if c.LogPrefix == "" {
		c.LogPrefix = "calico-packet" // Felix renders an empty prefix as its default
	}
}

// crossCheck applies the rules that involve more than one parameter.
func (c *Config) crossCheck() Problems {
	var ps Problems
	fatal := func(param, rule string) {
		rv := c.origin[param]
		p, _ := Lookup(param)
		ps = append(ps, problemAt(Fatal, Invalid, rv, p, rule))
		ps[len(ps)-1].Param = param
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

// Value returns the typed value of a parameter by name; refused parameters
// have none.
func (c *Config) Value(name string) (any, bool) {
	p, ok := Lookup(name)
	if !ok || !p.HasField() {
		return nil, false
	}
	return reflect.ValueOf(c).Elem().FieldByName(p.Name).Interface(), true
}

// Format renders a parameter's effective value the way the config file
// would write it (a refused parameter: the raw value in force).
func (c *Config) Format(name string) string {
	p, ok := Lookup(name)
	if !ok {
		return ""
	}
	if !p.HasField() {
		return c.origin[p.Name].Value
	}
	v, _ := c.Value(name)
	switch x := v.(type) {
	case []string:
		return strings.Join(x, ",")
	case InterfacePatterns:
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
		if !p.HasField() {
			continue
		}
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
