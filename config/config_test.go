package config

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func init() {
	hostname = func() (string, error) { return "Compute-1", nil }
}

func writeFile(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "felix.cfg")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// mustLoad loads and fails on any problem but the reports of parameters
// Ocelot does not honour (tested on their own).
func mustLoad(t *testing.T, sources ...[]RawValue) *Config {
	t.Helper()
	cfg, problems := Load(sources...)
	for _, p := range problems {
		if p.Class != NotHonoured {
			t.Fatalf("unexpected problem: %v", p)
		}
	}
	return cfg
}

func TestEveryParamHasATypedField(t *testing.T) {
	kindType := map[Kind]reflect.Type{
		KindBool: reflect.TypeOf(false), KindInt: reflect.TypeOf(0),
		KindSeconds: reflect.TypeOf(time.Duration(0)), KindMillis: reflect.TypeOf(time.Duration(0)),
		KindURLList: reflect.TypeOf([]string(nil)), KindPrefixList: reflect.TypeOf([]string(nil)),
		KindInterfacePatterns: reflect.TypeOf(InterfacePatterns(nil)), KindLogRate: reflect.TypeOf(LogRate{}),
		KindPortList: reflect.TypeOf([]ProtoPort(nil)), KindMarkMask: reflect.TypeOf(uint32(0)),
	}
	ct := reflect.TypeOf(Config{})
	seen := map[string]bool{}
	for _, p := range Params() {
		if seen[strings.ToLower(p.Name)] {
			t.Errorf("%s listed twice", p.Name)
		}
		seen[strings.ToLower(p.Name)] = true
		f, ok := ct.FieldByName(p.Name)
		if !p.HasField() {
			if ok {
				t.Errorf("%s is refused but has a Config field", p.Name)
			}
		} else if !ok {
			t.Errorf("%s has no Config field", p.Name)
		} else {
			want, ok := kindType[p.Kind]
			if !ok {
				want = reflect.TypeOf("")
			}
			if f.Type != want {
				t.Errorf("%s: field type %v, kind wants %v", p.Name, f.Type, want)
			}
		}
		if p.Default != "" {
			if _, err := parseValue(&p, p.Default); err != nil {
				t.Errorf("%s: default %q does not validate: %v", p.Name, p.Default, err)
			}
		}
	}
	for i := 0; i < ct.NumField(); i++ {
		if f := ct.Field(i); f.IsExported() && !seen[strings.ToLower(f.Name)] {
			t.Errorf("Config field %s is no parameter", f.Name)
		}
	}
}

func TestDefaults(t *testing.T) {
	cfg := mustLoad(t)
	checks := []struct {
		name string
		got  any
		want any
	}{
		{"FelixHostname", cfg.FelixHostname, "compute-1"},
		{"InterfacePrefix", cfg.InterfacePrefix, []string{"cali"}},
		{"IptablesMarkMask", cfg.IptablesMarkMask, uint32(0xffff0000)},
		{"ReportingTTLSecs", cfg.ReportingTTLSecs, 90 * time.Second},
		{"IptablesLockProbeIntervalMillis", cfg.IptablesLockProbeIntervalMillis, 50 * time.Millisecond},
		{"MetadataPort", cfg.MetadataPort, 8775},
		{"Ipv6Support", cfg.Ipv6Support, true},
		{"FailsafeInboundHostPorts[0]", cfg.FailsafeInboundHostPorts[0], ProtoPort{Protocol: "tcp", Port: 22}},
		{"Namespace", cfg.Namespace(), "openstack"},
		{"RegionString", cfg.RegionString(), "no-region"},
		{"EtcdURLs", cfg.EtcdURLs(), []string{"http://127.0.0.1:2379"}},
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s = %#v, want %#v", c.name, c.got, c.want)
		}
	}
	if rv, _ := cfg.Origin("metadataport"); rv.Source != SourceDefault {
		t.Errorf("MetadataPort origin = %v, want default", rv.Source)
	}
}

func TestPrecedence(t *testing.T) {
	rv := func(src Source, v string) []RawValue {
		return []RawValue{{Name: "LogSeverityScreen", Value: v, Source: src, Where: src.String()}}
	}
	cases := []struct {
		name    string
		sources [][]RawValue
		want    string
		from    Source
	}{
		{"default", nil, "INFO", SourceDefault},
		{"datastore global", [][]RawValue{rv(SourceDatastoreGlobal, "debug")}, "DEBUG", SourceDatastoreGlobal},
		{"host beats global", [][]RawValue{rv(SourceDatastoreGlobal, "debug"), rv(SourceDatastoreHost, "error")}, "ERROR", SourceDatastoreHost},
		{"file beats host", [][]RawValue{rv(SourceDatastoreHost, "error"), rv(SourceFile, "warning")}, "WARNING", SourceFile},
		{"env beats file", [][]RawValue{rv(SourceFile, "warning"), rv(SourceEnv, "fatal")}, "FATAL", SourceEnv},
		{"order of arguments does not matter", [][]RawValue{rv(SourceEnv, "fatal"), rv(SourceDatastoreGlobal, "debug")}, "FATAL", SourceEnv},
		{"empty value is unset", [][]RawValue{rv(SourceFile, "warning"), rv(SourceEnv, "")}, "WARNING", SourceFile},
		{"invalid value falls through", [][]RawValue{rv(SourceFile, "warning"), rv(SourceEnv, "loud")}, "WARNING", SourceFile},
		{"invalid value alone gives the default", [][]RawValue{rv(SourceEnv, "loud")}, "INFO", SourceDefault},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg, _ := Load(c.sources...)
			if cfg.LogSeverityScreen != c.want {
				t.Errorf("got %q, want %q", cfg.LogSeverityScreen, c.want)
			}
			if o, _ := cfg.Origin("LogSeverityScreen"); o.Source != c.from {
				t.Errorf("origin %v, want %v", o.Source, c.from)
			}
		})
	}
}

func TestReadFile(t *testing.T) {
	path := writeFile(t, `# comment
; another comment
[global]
OpenstackRegion = RegionTwo
EtcdEndpoints=http://198.18.0.1:2379,http://198.18.0.2:2379
LOGSEVERITYSCREEN = debug
MetadataAddr = none
ReportingIntervalSecs =

[other]
felixhostname = r2-compute1
InterfacePrefix = tap
`)
	local := ReadLocal(path, nil)
	if !local.Exists || len(local.Problems) > 0 {
		t.Fatalf("exists=%v problems=%v", local.Exists, local.Problems)
	}
	cfg, problems := local.Resolve()
	if len(problems) > 0 {
		t.Fatalf("problems: %v", problems)
	}
	if cfg.OpenstackRegion != "RegionTwo" || cfg.Namespace() != "openstack-region-RegionTwo" || cfg.RegionString() != "region-RegionTwo" {
		t.Errorf("region %q namespace %q region string %q", cfg.OpenstackRegion, cfg.Namespace(), cfg.RegionString())
	}
	if cfg.FelixHostname != "r2-compute1" {
		t.Errorf("keys from every section: FelixHostname = %q", cfg.FelixHostname)
	}
	if cfg.LogSeverityScreen != "DEBUG" {
		t.Errorf("case-insensitive names and values: LogSeverityScreen = %q", cfg.LogSeverityScreen)
	}
	if cfg.MetadataAddr != "" {
		t.Errorf("none sets the zero value: MetadataAddr = %q", cfg.MetadataAddr)
	}
	if cfg.ReportingIntervalSecs != 30*time.Second {
		t.Errorf("empty value is unset: ReportingIntervalSecs = %v", cfg.ReportingIntervalSecs)
	}
	if want := []string{"http://198.18.0.1:2379", "http://198.18.0.2:2379"}; !reflect.DeepEqual(cfg.EtcdURLs(), want) {
		t.Errorf("EtcdURLs = %v", cfg.EtcdURLs())
	}
	if o, _ := cfg.Origin("OpenstackRegion"); o.Where != path+":4" {
		t.Errorf("origin of OpenstackRegion = %q, want %s:4", o.Where, path)
	}
	if !cfg.OpenstackActive() {
		t.Error("tap prefix should turn on the OpenStack special cases")
	}
}

func TestReadFileAbsent(t *testing.T) {
	local := ReadLocal(filepath.Join(t.TempDir(), "nope.cfg"), nil)
	if local.Exists || len(local.File) != 0 || len(local.Problems) != 0 {
		t.Fatalf("absent file: %+v", local)
	}
}

func TestFileProblems(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name  string
		text  string
		want  []string // one Problem.String() per entry, with PATH for the file
		fatal bool
	}{
		{"malformed line", "[global]\nOpenstackRegion RegionOne\n",
			[]string{`error: PATH:2: malformed line "OpenstackRegion RegionOne": expected Name = value`}, true},
		{"malformed section", "[global\nA = b\n",
			[]string{`error: PATH:1: malformed section header "[global": expected [name]`}, true},
		{"unknown parameter", "[global]\nFrobnicate = yes\n",
			[]string{`warning: PATH:2: Frobnicate = "yes": is an unknown parameter (neither Felix nor Ocelot has it); ignored`}, false},
		{"bad region", "[global]\n\nOpenstackRegion = Region_One\n",
			[]string{`error: PATH:3: OpenstackRegion = "Region_One": must be letters, digits and '-', starting and ending with a letter or digit; start-up stops`}, true},
		{"long region", "[global]\nOpenstackRegion = " + strings.Repeat("a", 47) + "\n",
			[]string{`error: PATH:2: OpenstackRegion = "` + strings.Repeat("a", 47) + `": must be at most 46 characters (the namespace openstack-region-<region> is limited to 63), not 47; start-up stops`}, true},
		{"bad int falls back", "[global]\nHealthPort = 70000\n",
			[]string{`warning: PATH:2: HealthPort = "70000": must be an integer from 0 to 65535; ignored`}, false},
		{"bad die-on-fail int", "[global]\nMetadataPort = 70000\n",
			[]string{`error: PATH:2: MetadataPort = "70000": must be an integer from 0 to 65535; start-up stops`}, true},
		{"bad bool", "[global]\nHealthEnabled = maybe\n",
			[]string{`warning: PATH:2: HealthEnabled = "maybe": must be true or false; ignored`}, false},
		{"bad enum", "[global]\nIptablesBackend = middle\n",
			[]string{`warning: PATH:2: IptablesBackend = "middle": must be one of auto, legacy, nft (any case); ignored`}, false},
		{"bad die-on-fail enum", "[global]\nChainInsertMode = middle\n",
			[]string{`error: PATH:2: ChainInsertMode = "middle": must be one of insert, append (any case); start-up stops`}, true},
		{"none for non-zero is fatal as in Felix", "[global]\nMaxIpsetSize = none\n",
			[]string{`error: PATH:2: MaxIpsetSize = "none": may not be none: this parameter needs a value; start-up stops`}, true},
		{"none for required", "[global]\nInterfacePrefix = none\n",
			[]string{`error: PATH:2: InterfacePrefix = "none": may not be none: this parameter needs a value; start-up stops`}, true},
		{"bad prefix", "[global]\nInterfacePrefix = tap,waytoolongprefix16\n",
			[]string{`error: PATH:2: InterfacePrefix = "tap,waytoolongprefix16": prefix "waytoolongprefix16" must be 1-15 characters from [a-zA-Z0-9_.-]; start-up stops`}, true},
		{"bad mark mask", "[global]\nIptablesMarkMask = 0x3\n",
			[]string{`error: PATH:2: IptablesMarkMask = "0x3": must have at least 5 bits set (accept, pass, drop and two scratch marks); start-up stops`}, true},
		{"bad seconds", "[global]\nReportingTTLSecs = -5\n",
			[]string{`warning: PATH:2: ReportingTTLSecs = "-5": must be a non-negative number of seconds; ignored`}, false},
		{"bad port list", "[global]\nFailsafeInboundHostPorts = tcp:22,icmp:8\n",
			[]string{`error: PATH:2: FailsafeInboundHostPorts = "tcp:22,icmp:8": entry "icmp:8": "icmp" is not a protocol (tcp, udp) or an IPv4 CIDR (expected [tcp|udp:][net:]port); start-up stops`}, true},
		{"bad endpoints", "[global]\nEtcdEndpoints = 198.18.0.1:2379\n",
			[]string{`error: PATH:2: EtcdEndpoints = "198.18.0.1:2379": "198.18.0.1:2379" must be a URL like http://host:2379 or https://host:2379; start-up stops`}, true},
		{"mixed schemes", "[global]\nEtcdEndpoints = http://a:1,https://b:2\n",
			[]string{`error: PATH:2: EtcdEndpoints = "http://a:1,https://b:2": all endpoints must use the same scheme (http or https); start-up stops`}, true},
		{"missing key file", "[global]\nEtcdKeyFile = " + dir + "/missing.key\nEtcdCertFile = " + dir + "\n",
			[]string{
				`error: PATH:2: EtcdKeyFile = "` + dir + `/missing.key": must name a readable file: no such file or directory; start-up stops`,
				`error: PATH:3: EtcdCertFile = "` + dir + `": must name a file, not a directory; start-up stops`,
			}, true},
		{"kubernetes", "[global]\nDatastoreType = kubernetes\n",
			[]string{`error: PATH:2: DatastoreType = "kubernetes": Ocelot supports only the etcdv3 datastore; start-up stops`}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := writeFile(t, c.text)
			_, problems := ReadLocal(path, nil).Resolve()
			var got []string
			for _, p := range problems {
				got = append(got, strings.ReplaceAll(p.String(), path, "PATH"))
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("problems:\n got %q\nwant %q", got, c.want)
			}
			if problems.Fatal() != c.fatal {
				t.Errorf("fatal = %v, want %v", problems.Fatal(), c.fatal)
			}
		})
	}
}

func TestUnreadableFile(t *testing.T) {
	dir := t.TempDir()
	local := ReadLocal(dir, nil) // a directory cannot be read as a file
	if !local.Problems.Fatal() || !strings.Contains(local.Problems[0].String(), "cannot read the config file") ||
		!strings.Contains(local.Problems[0].String(), dir) {
		t.Fatalf("problems = %v", local.Problems)
	}
}

func TestParseValues(t *testing.T) {
	cases := []struct {
		param, raw string
		want       any
	}{
		{"HealthEnabled", "Yes", true},
		{"HealthEnabled", "0", false},
		{"IptablesRefreshInterval", "1.5", 1500 * time.Millisecond},
		{"IptablesRefreshInterval", "90s", 90 * time.Second},
		{"IptablesRefreshInterval", "0", time.Duration(0)},
		{"IptablesLockProbeIntervalMillis", "250", 250 * time.Millisecond},
		{"IptablesMarkMask", "4294901760", uint32(0xffff0000)},
		{"IptablesMarkMask", "0x1f00", uint32(0x1f00)},
		{"IptablesBackend", "NFT", "nft"},
		{"DefaultEndpointToHostAction", "accept", "ACCEPT"},
		{"InterfacePrefix", "cali, tap", []string{"cali", "tap"}},
		{"MetadataAddr", "metadata.example.org", "metadata.example.org"},
		{"MetadataAddr", "2001:db8::1", "2001:db8::1"},
		{"OpenstackRegion", "RegionOne", "RegionOne"},
		{"OpenstackRegion", "regionone", "regionone"},
		{"OpenstackRegion", "r", "r"},
		{"OpenstackRegion", strings.Repeat("R", 46), strings.Repeat("R", 46)},
		{"FailsafeInboundHostPorts", "22, udp:68, tcp:198.18.0.0/16:443, udp:[2001:db8::/32]:53",
			[]ProtoPort{{"tcp", "", 22}, {"udp", "", 68}, {"tcp", "198.18.0.0/16", 443}, {"udp", "2001:db8::/32", 53}}},
		{"FailsafeInboundHostPorts", "none", []ProtoPort(nil)},
	}
	for _, c := range cases {
		p, ok := Lookup(c.param)
		if !ok {
			t.Fatalf("no param %s", c.param)
		}
		got, err := parseValue(p, c.raw)
		if err != nil {
			t.Errorf("%s = %q: %v", c.param, c.raw, err)
			continue
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s = %q: got %#v, want %#v", c.param, c.raw, got, c.want)
		}
	}
	for _, bad := range []struct{ param, raw string }{
		{"OpenstackRegion", "-RegionOne"}, {"OpenstackRegion", "RegionOne-"}, {"OpenstackRegion", "Region One"},
		{"OpenstackRegion", "région"}, {"OpenstackRegion", "a/b"}, {"FelixHostname", "host name"},
		{"MetadataAddr", "not an address!"}, {"EtcdAddr", "localhost"}, {"EtcdAddr", "localhost:0"},
		{"IptablesMarkMask", "0x1ffffffff"}, {"DeviceRouteProtocol", "256"},
	} {
		p, _ := Lookup(bad.param)
		if v, err := parseValue(p, bad.raw); err == nil {
			t.Errorf("%s = %q accepted as %#v", bad.param, bad.raw, v)
		}
	}
}

func TestEnv(t *testing.T) {
	path := writeFile(t, "[global]\nEtcdEndpoints = http://198.18.0.9:2379\nLogSeverityScreen = error\n")
	env := []string{
		"FELIX_logseverityscreen=debug",
		"felix_OpenstackRegion=RegionOne",
		"ETCD_ENDPOINTS=http://198.18.0.1:2379",
		"CALICO_ETCD_CA_CERT_FILE=",
		"ETCD_USERNAME=neutron",
		"PATH=/usr/bin",
		"FELIX_=nothing",
		"FELIX_NOSUCHTHING=1",
	}
	cfg, problems := ReadLocal(path, env).Resolve()
	if cfg.LogSeverityScreen != "DEBUG" || cfg.OpenstackRegion != "RegionOne" {
		t.Errorf("FELIX_ variables in any case: %q %q", cfg.LogSeverityScreen, cfg.OpenstackRegion)
	}
	if got := cfg.EtcdURLs(); !reflect.DeepEqual(got, []string{"http://198.18.0.9:2379"}) {
		t.Errorf("the file's EtcdEndpoints beats ETCD_ENDPOINTS: %v", got)
	}
	if cfg.EtcdUsername != "neutron" {
		t.Errorf("ETCD_USERNAME: %q", cfg.EtcdUsername)
	}
	want := []string{`warning: environment variable FELIX_NOSUCHTHING: NOSUCHTHING = "1": is an unknown parameter (neither Felix nor Ocelot has it); ignored`}
	var got []string
	for _, p := range problems {
		got = append(got, p.String())
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("problems %q, want %q", got, want)
	}

	cfg, _ = Load(ReadEnv([]string{"CALICO_ETCD_ENDPOINTS=https://198.18.0.3:2379"}))
	if got := cfg.EtcdURLs(); !reflect.DeepEqual(got, []string{"https://198.18.0.3:2379"}) {
		t.Errorf("CALICO_ETCD_ENDPOINTS: %v", got)
	}
}

func TestFromDatastore(t *testing.T) {
	spec := map[string]any{
		"reportingInterval":         "1m30s",
		"iptablesLockProbeInterval": "100ms",
		"endpointReportingEnabled":  true,
		"interfacePrefix":           "tap",
		"interfaceExclude":          []any{"lo", "eth9"},
		"metadataPort":              float64(8776),
		"failsafeInboundHostPorts":  []any{map[string]any{"protocol": "TCP", "port": float64(22)}, map[string]any{"protocol": "UDP", "net": "2001:db8::/32", "port": float64(53)}},
		"failsafeOutboundHostPorts": []any{},
		"bpfLogLevel":               "Off",   // refused, but asks for Felix's default: not reported
		"nodeSelector":              "all()", // no parameter: skipped
		"openstackRegion":           "RegionThree",
	}
	ann := map[string]string{
		AnnotationPrefix + "LogPrefix":     "ocelot-test",
		AnnotationPrefix + "FelixHostname": "sneaky",
		"unrelated/annotation":             "x",
	}
	vals, problems := FromDatastore(SourceDatastoreGlobal, "felixconfigurations/default", spec, ann)
	wantProblems := []string{`warning: felixconfigurations/default annotation config.projectcalico.org/FelixHostname: FelixHostname = "sneaky": is local-only and may not come from the datastore; ignored`}
	var gotProblems []string
	for _, p := range problems {
		gotProblems = append(gotProblems, p.String())
	}
	if !reflect.DeepEqual(gotProblems, wantProblems) {
		t.Errorf("problems %q, want %q", gotProblems, wantProblems)
	}
	host, _ := FromDatastore(SourceDatastoreHost, "felixconfigurations/node.compute-1", map[string]any{"metadataPort": float64(8777)}, nil)
	cfg := mustLoad(t, vals, host)
	if cfg.ReportingIntervalSecs != 90*time.Second || cfg.IptablesLockProbeIntervalMillis != 100*time.Millisecond {
		t.Errorf("durations: %v %v", cfg.ReportingIntervalSecs, cfg.IptablesLockProbeIntervalMillis)
	}
	if !cfg.EndpointReportingEnabled || !reflect.DeepEqual(cfg.InterfacePrefix, []string{"tap"}) ||
		!reflect.DeepEqual(cfg.InterfaceExclude, InterfacePatterns{"lo", "eth9"}) {
		t.Errorf("bool/list: %v %v %v", cfg.EndpointReportingEnabled, cfg.InterfacePrefix, cfg.InterfaceExclude)
	}
	if cfg.MetadataPort != 8777 {
		t.Errorf("node.<host> beats default: MetadataPort = %d", cfg.MetadataPort)
	}
	if want := []ProtoPort{{"tcp", "", 22}, {"udp", "2001:db8::/32", 53}}; !reflect.DeepEqual(cfg.FailsafeInboundHostPorts, want) {
		t.Errorf("failsafe in: %#v", cfg.FailsafeInboundHostPorts)
	}
	if cfg.FailsafeOutboundHostPorts != nil {
		t.Errorf("empty failsafe list means none: %#v", cfg.FailsafeOutboundHostPorts)
	}
	if cfg.LogPrefix != "ocelot-test" || cfg.FelixHostname != "compute-1" || cfg.OpenstackRegion != "RegionThree" {
		t.Errorf("annotations: %q %q %q", cfg.LogPrefix, cfg.FelixHostname, cfg.OpenstackRegion)
	}
	if o, _ := cfg.Origin("MetadataPort"); o.Where != "felixconfigurations/node.compute-1 spec.metadataPort" {
		t.Errorf("origin %q", o.Where)
	}
	ci := FromClusterInformation("abc", "openstack", "", "")
	cfg = mustLoad(t, ci)
	if cfg.ClusterType != "openstack" || !cfg.OpenstackActive() || cfg.Variant != "Calico" {
		t.Errorf("cluster information: %q %v %q", cfg.ClusterType, cfg.OpenstackActive(), cfg.Variant)
	}
}

func TestTLSNeedsKeyAndCert(t *testing.T) {
	dir := t.TempDir()
	cert := filepath.Join(dir, "c.pem")
	os.WriteFile(cert, []byte("x"), 0o600)
	_, problems := ReadLocal(writeFile(t, "[global]\nEtcdCertFile = "+cert+"\n"), nil).Resolve()
	if !problems.Fatal() || !strings.Contains(problems[0].String(), "EtcdCertFile needs EtcdKeyFile as well") {
		t.Errorf("problems %v", problems)
	}
}

func TestChanged(t *testing.T) {
	a := mustLoad(t)
	b := mustLoad(t, []RawValue{{Name: "LogSeverityScreen", Value: "debug", Source: SourceFile}})
	names, live := a.Changed(b)
	if !reflect.DeepEqual(names, []string{"LogSeverityScreen"}) || !live {
		t.Errorf("changed %v live %v", names, live)
	}
	c := mustLoad(t, []RawValue{{Name: "InterfacePrefix", Value: "tap", Source: SourceFile}})
	if names, live = a.Changed(c); !reflect.DeepEqual(names, []string{"InterfacePrefix"}) || live {
		t.Errorf("changed %v live %v", names, live)
	}
}

// The loaders under arbitrary input: never a panic; every problem names its
// source and is one line; nothing that breaks the text rules is in force.
func FuzzConfigFile(f *testing.F) {
	f.Add("[global]\nOpenstackRegion = RegionOne\nEtcdEndpoints = http://198.18.0.1:2379\n")
	f.Add("a=b\n[x]\n;c\n#d\nFailsafeInboundHostPorts = tcp:[::1]:22\n")
	f.Add("[\n=\n]\nIptablesMarkMask=0x\n")
	f.Add("LogPrefix = \"x\\\" -j ACCEPT\"\nLogPrefix = a\x00b\n")
	f.Add("\ufeff[global]\r\nLogPrefix = calico\u202e-packet\r\nInterfaceExclude = /[/,/^veth/\r\n")
	f.Add("\xff\xfe[\x00g\x00l\x00o\x00b\x00a\x00l\x00]\x00\n") // UTF-16
	f.Add("EtcdEndpoints = http://u:p@a:1\nLogActionRateLimit = 9999/day\nBPFEnabled = yes\nlogprefix = \"\"\"\nmulti\n\"\"\"\n")
	f.Add("InterfacePrefix = tap\\\n,cali\nHealthHost = `localhost`\n")
	f.Fuzz(func(t *testing.T, text string) {
		values, problems, _ := parseFileData("fuzz.cfg", []byte(text))
		cfg, more := Load(values)
		for _, p := range append(problems, more...) {
			s := p.String()
			if !strings.Contains(s, "fuzz.cfg") && p.Source != SourceDefault {
				t.Fatalf("problem does not name the file: %v", s)
			}
			if strings.ContainsAny(s, "\n\r") {
				t.Fatalf("problem spans lines: %q", s)
			}
		}
		checkClean(t, cfg)
	})
}

func FuzzEnv(f *testing.F) {
	f.Add("FELIX_OPENSTACKREGION", "RegionOne")
	f.Add("ETCD_ENDPOINTS", "http://[::1]:2379")
	f.Add("felix_failsafeinboundhostports", "udp:[x]:1")
	f.Add("FELIX_LOGPREFIX", "a\nb")
	f.Add("FELIX_LOG\x1bPREFIX", "\xff")
	f.Add("FELIX_INTERFACEEXCLUDE", "/(a+)+$/")
	f.Fuzz(func(t *testing.T, name, value string) {
		cfg, problems := Load(ReadEnv([]string{name + "=" + value}))
		for _, p := range problems {
			if s := p.String(); !strings.Contains(s, "environment variable") || strings.ContainsAny(s, "\n\r") {
				t.Fatalf("problem does not name its variable on one line: %q", s)
			}
		}
		checkClean(t, cfg)
	})
}

func FuzzDatastore(f *testing.F) {
	f.Add(`{"logPrefix": "x\"\n-I FORWARD 1 -j ACCEPT", "bpfEnabled": true}`, "LogPrefix", "x")
	f.Add(`{"failsafeInboundHostPorts": [{"protocol": "TCP", "port": 22, "net": "10.0.0.0/8,udp:1"}]}`, "FelixHostname", "h")
	f.Add(`{"interfaceExclude": "/x/", "healthTimeoutOverrides": [{"name": "a", "timeout": "1s"}], "metadataPort": 1e999}`, "", "")
	f.Add(`{"reportingInterval": "-1s", "iptablesMarkMask": 4294967296, "x\u0000y": null}`, "DropActionOverride", "Accept")
	f.Fuzz(func(t *testing.T, specJSON, annName, annValue string) {
		var spec map[string]any
		if json.Unmarshal([]byte(specJSON), &spec) != nil {
			return
		}
		vals, problems := FromDatastore(SourceDatastoreHost, "felixconfigurations/node.h", spec,
			map[string]string{AnnotationPrefix + annName: annValue})
		cfg, more := Load(vals)
		for _, p := range append(problems, more...) {
			if s := p.String(); !strings.Contains(s, "felixconfigurations/node.h ") || strings.ContainsAny(s, "\n\r") {
				t.Fatalf("problem does not name the resource on one line: %q", s)
			}
		}
		checkClean(t, cfg)
		if cfg.DropActionOverride == "Accept" || cfg.DropActionOverride == "LogAndAccept" {
			t.Fatalf("the datastore switched enforcement off")
		}
	})
}
