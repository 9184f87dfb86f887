package config

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// Every value is untrusted: a control character, a format character,
// invalid UTF-8 or an oversized value is refused for every parameter Ocelot
// parses, whatever its kind, and the message names the source.
func TestEveryParameterRejectsHostileText(t *testing.T) {
	hostile := map[string]string{
		"newline":      "a\nb",
		"carriage":     "a\rb",
		"escape":       "a\x1b[31mb",
		"nul":          "a\x00b",
		"del":          "a\x7fb",
		"C1 control":   "a\u0085b",
		"bidi":         "a\u202eb",
		"zero width":   "a\u200bb",
		"line sep":     "a\u2028b",
		"invalid utf8": "a\xffb",
		"huge":         strings.Repeat("a", MaxValueLen+1),
	}
	for _, p := range Params() {
		if !p.HasField() {
			continue
		}
		for what, raw := range hostile {
			for _, src := range []Source{SourceFile, SourceEnv, SourceDatastoreGlobal} {
				if p.Local && src == SourceDatastoreGlobal {
					continue
				}
				where := fmt.Sprintf("%v:%s", src, p.Name)
				cfg, problems := Load([]RawValue{{Name: p.Name, Value: raw, Source: src, Where: where}})
				if len(problems) == 0 || problems[0].Class != Invalid || problems[0].Where != where {
					t.Errorf("%s = %s from %v: accepted (%v)", p.Name, what, src, problems)
					continue
				}
				if o, _ := cfg.Origin(p.Name); o.Source != SourceDefault {
					t.Errorf("%s = %s from %v: in force", p.Name, what, src)
				}
				if s := problems[0].String(); strings.ContainsAny(s, "\n\r\x1b\x00") || !utf8.ValidString(s) || len(s) > 1000 {
					t.Errorf("%s = %s: the message carries the value raw: %q", p.Name, what, s)
				}
			}
		}
	}
}

// The Log action's prefix goes into an iptables-restore script: only what
// the Calico API accepts, and no longer than iptables keeps.
func TestLogPrefix(t *testing.T) {
	good := []string{"calico-packet", "a", "%t %k %n: %p", "drop/web_1-x:", strings.Repeat("x", 27)}
	bad := []string{
		"x\" -j ACCEPT\n-I FORWARD 1 -j ACCEPT", // a newline that would add a rule to the restore script
		`a"b`, "a'b", "a\\b", "a;b", "a\tb", "a$b", "a`b", "région",
		strings.Repeat("x", 28),
	}
	for _, v := range good {
		cfg, problems := Load([]RawValue{{Name: "LogPrefix", Value: v, Source: SourceFile}})
		if len(problems) != 0 || cfg.LogPrefix != v {
			t.Errorf("%q: %v %q", v, problems, cfg.LogPrefix)
		}
	}
	for _, v := range bad {
		for _, src := range []Source{SourceFile, SourceDatastoreGlobal, SourceDatastoreHost} {
			cfg, problems := Load([]RawValue{{Name: "LogPrefix", Value: v, Source: src, Where: "w"}})
			if len(problems) != 1 || problems[0].Class != Invalid || cfg.LogPrefix != "calico-packet" {
				t.Errorf("%q from %v: %v, LogPrefix %q", v, src, problems, cfg.LogPrefix)
			}
		}
	}
	// From a FelixConfiguration, with the resource and field in the message.
	vals, _ := FromDatastore(SourceDatastoreGlobal, "felixconfigurations/default",
		map[string]any{"logPrefix": "x\"\n-I FORWARD 1 -j ACCEPT"}, nil)
	cfg, problems := Load(vals)
	want := `warning: felixconfigurations/default spec.logPrefix: LogPrefix = "x\"\n-I FORWARD 1 -j ACCEPT": contains the non-printable character U+000A at byte 2; control and format characters are not accepted; ignored`
	if cfg.LogPrefix != "calico-packet" || len(problems) != 1 || problems[0].String() != want {
		t.Errorf("LogPrefix %q problems %v\nwant %s", cfg.LogPrefix, problems, want)
	}
	// none means Felix's default, as Felix renders an empty prefix.
	if cfg := mustLoad(t, []RawValue{{Name: "LogPrefix", Value: "none", Source: SourceFile}}); cfg.LogPrefix != "calico-packet" {
		t.Errorf("none: %q", cfg.LogPrefix)
	}
}

func TestListsAndAddressesAreBounded(t *testing.T) {
	long := strings.TrimSuffix(strings.Repeat("tcp:1,", maxListItems+1), ",")
	cases := []struct{ param, raw, rule string }{
		{"FailsafeInboundHostPorts", long, "lists more than 128 items"},
		{"InterfacePrefix", strings.TrimSuffix(strings.Repeat("tap,", maxListItems+1), ","), "lists more than 128 items"},
		{"EtcdPassword", strings.Repeat("p", maxStringLen+1), "is 1025 bytes long; at most 1024 are accepted"},
		{"HealthHost", "0.0.0.0 --evil", "must be a host name or address"},
		{"HealthHost", strings.Repeat("h", 65), "must be a host name or address"},
		{"PrometheusMetricsHost", "[::1]", "must be a host name or address"},
		{"EtcdEndpoints", "http://etcd:2379/v2", "must be scheme://host:port only"},
		{"EtcdEndpoints", "http://etcd:2379?x=1", "must be scheme://host:port only"},
	}
	for _, c := range cases {
		_, problems := Load([]RawValue{{Name: c.param, Value: c.raw, Source: SourceFile, Where: "f:1"}})
		if len(problems) == 0 || !strings.Contains(problems[0].Rule, c.rule) {
			t.Errorf("%s = %.40q: %v, want %q", c.param, c.raw, problems, c.rule)
		}
	}
	vals, problems := FromDatastore(SourceDatastoreGlobal, "felixconfigurations/default",
		map[string]any{"interfaceExclude": make([]any, maxListItems+1)}, nil)
	if len(vals) != 0 || len(problems) != 1 || !strings.Contains(problems[0].Rule, "at most 128 are accepted") {
		t.Errorf("long spec list: %v %v", vals, problems)
	}
	// An item cannot smuggle in another item, nor a value be of the
	// wrong JSON type.
	for field, v := range map[string]any{
		"interfaceExclude": []any{"lo,eth0"},
		"interfacePrefix":  []any{"tap", float64(1)},
		"logPrefix":        map[string]any{"a": "b"},
		"healthPort":       []any{"1"},
	} {
		_, problems := FromDatastore(SourceDatastoreGlobal, "felixconfigurations/default", map[string]any{field: v}, nil)
		if len(problems) != 1 || problems[0].Class != Invalid || !strings.Contains(problems[0].Where, "spec."+field) {
			t.Errorf("%s = %v: %v", field, v, problems)
		}
	}
}

// Credentials never reach a message.
func TestSecretsAreNotEchoed(t *testing.T) {
	_, problems := Load(
		[]RawValue{{Name: "EtcdEndpoints", Value: "http://root:hunter2@etcd:2379", Source: SourceFile, Where: "f:1"}},
		[]RawValue{{Name: "EtcdPassword", Value: "hunter2\n", Source: SourceEnv, Where: "environment variable FELIX_ETCDPASSWORD"}},
	)
	if len(problems) != 2 {
		t.Fatalf("problems %v", problems)
	}
	for _, p := range problems {
		if strings.Contains(p.String(), "hunter2") {
			t.Errorf("secret echoed: %s", p)
		}
	}
	if !strings.Contains(problems[0].String(), "http://(redacted)@etcd:2379") {
		t.Errorf("the endpoint is not recognisable: %s", problems[0])
	}
}

// Failsafe port objects are checked field by field: no field's text can
// add an entry to the rendered list.
func TestFailsafePortObjects(t *testing.T) {
	obj := func(kv ...any) map[string]any {
		m := map[string]any{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return m
	}
	bad := []map[string]any{
		obj("protocol", "tcp", "port", float64(22), "net", "198.18.0.0/16:1,udp:53"),
		obj("protocol", "tcp,udp:53,tcp", "port", float64(22)),
		obj("protocol", "ICMP", "port", float64(22)),
		obj("port", float64(65536)),
		obj("port", float64(22.5)),
		obj("port", float64(-1)),
		obj("port", "22"),
		obj("port", float64(1e300)),
	}
	for _, b := range bad {
		vals, problems := FromDatastore(SourceDatastoreGlobal, "felixconfigurations/default",
			map[string]any{"failsafeInboundHostPorts": []any{b}}, nil)
		if len(vals) != 0 || len(problems) != 1 || !problems.Fatal() ||
			!strings.HasPrefix(problems[0].String(), "error: felixconfigurations/default spec.failsafeInboundHostPorts: FailsafeInboundHostPorts = ") {
			t.Errorf("%v: %v %v", b, vals, problems)
		}
	}
	vals, problems := FromDatastore(SourceDatastoreGlobal, "felixconfigurations/default",
		map[string]any{"failsafeInboundHostPorts": []any{obj("protocol", "UDP", "port", float64(53), "net", "198.18.0.1")}}, nil)
	if len(problems) != 0 || len(vals) != 1 || vals[0].Value != "udp:198.18.0.1/32:53" {
		t.Errorf("good object: %v %v", vals, problems)
	}
}

// A name from a source cannot break a message into lines either.
func TestProblemIsOneLine(t *testing.T) {
	cfg, problems := Load(ReadEnv([]string{"FELIX_evil\nwarning: all is well=1", "FELIX_X\x1b[2J=1"}))
	_ = cfg
	if len(problems) != 2 {
		t.Fatalf("problems %v", problems)
	}
	for _, p := range problems {
		if s := p.String(); strings.ContainsAny(s, "\n\x1b") {
			t.Errorf("message spans lines or carries escapes: %q", s)
		}
	}
	long := Problem{Param: "LogFilePath", Value: strings.Repeat("é", 1000), Rule: "r"}
	if s := long.String(); len(s) > 200 || !utf8.ValidString(s) || !strings.Contains(s, "(2000 bytes)") {
		t.Errorf("long value not clipped on a rune boundary: %q", s)
	}
}

func TestOversizedFile(t *testing.T) {
	path := writeFile(t, "[global]\n# "+strings.Repeat("x", MaxFileSize)+"\n")
	local := ReadLocal(path, nil)
	if !local.Problems.Fatal() || !strings.Contains(local.Problems[0].String(), "larger than 1048576 bytes") {
		t.Errorf("problems %v", local.Problems)
	}
}

// checkClean fails when a value that breaks the text rules is in force.
func checkClean(t *testing.T, cfg *Config) {
	t.Helper()
	v := reflect.ValueOf(cfg).Elem()
	var walk func(name string, f reflect.Value)
	walk = func(name string, f reflect.Value) {
		switch f.Kind() {
		case reflect.String:
			s := f.String()
			if len(s) > MaxValueLen || !utf8.ValidString(s) || strings.IndexFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0 {
				t.Fatalf("%s = %q is in force", name, s)
			}
		case reflect.Slice:
			if f.Len() > maxListItems {
				t.Fatalf("%s has %d items", name, f.Len())
			}
			for i := 0; i < f.Len(); i++ {
				walk(name, f.Index(i))
			}
		case reflect.Struct:
			for i := 0; i < f.NumField(); i++ {
				if f.Type().Field(i).IsExported() {
					walk(name, f.Field(i))
				}
			}
		}
	}
	for _, p := range Params() {
		if p.HasField() {
			walk(p.Name, v.FieldByName(p.Name))
		}
	}
	if len(cfg.LogPrefix) > maxLogPrefixLen || !logPrefixRE.MatchString(cfg.LogPrefix) {
		t.Fatalf("LogPrefix %q is in force", cfg.LogPrefix)
	}
}
