package config

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/ini.v1"
)

// Source says where a raw value came from. Higher values take precedence.
type Source int

const (
	SourceDefault         Source = iota // built into Ocelot
	SourceDatastoreGlobal               // FelixConfiguration "default" and ClusterInformation "default"
	SourceDatastoreHost                 // FelixConfiguration "node.<hostname>"
	SourceEtcdEnv                       // libcalico-go variables such as ETCD_ENDPOINTS
	SourceFile                          // the config file
	SourceEnv                           // FELIX_* variables
)

func (s Source) String() string {
	switch s {
	case SourceDefault:
		return "default"
	case SourceDatastoreGlobal:
		return "datastore (global)"
	case SourceDatastoreHost:
		return "datastore (this host)"
	case SourceEtcdEnv:
		return "environment (libcalico-go)"
	case SourceFile:
		return "config file"
	case SourceEnv:
		return "environment"
	}
	return "unknown"
}

// RawValue is one name=value pair as a source gave it.
type RawValue struct {
	Name   string // as written in the source
	Value  string
	Source Source
	Where  string // "/etc/calico/felix.cfg:12", "FELIX_LOGSEVERITYSCREEN", ...
}

// ReadFile reads an INI config file. Keys from every section are merged,
// later ones winning. An absent file is not an error (nil values, nil
// problems, and exists=false); an unreadable or malformed one gives fatal
// problems naming the file and line.
func ReadFile(path string) (values []RawValue, problems []Problem, exists bool) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, false
	}
	if err != nil {
		return nil, []Problem{{Severity: Fatal, Where: path, Rule: "cannot read the config file: " + errors.Unwrap(err).Error()}}, true
	}
	return parseFileData(path, data)
}

func parseFileData(path string, data []byte) (values []RawValue, problems []Problem, exists bool) {
	lines, problems := indexLines(path, data)
	if len(problems) > 0 {
		return nil, problems, true
	}
	f, err := ini.LoadSources(ini.LoadOptions{}, data)
	if err != nil {
		return nil, []Problem{{Severity: Fatal, Where: path, Rule: "cannot parse the config file: " + err.Error()}}, true
	}
	for _, sec := range f.Sections() {
		for _, k := range sec.Keys() {
			where := path
			if n, ok := lines[strings.ToLower(k.Name())]; ok {
				where = fmt.Sprintf("%s:%d", path, n)
			}
			values = append(values, RawValue{Name: k.Name(), Value: strings.TrimSpace(k.String()), Source: SourceFile, Where: where})
		}
	}
	return values, nil, true
}

// indexLines maps each key to the line it was (last) set on, and reports
// lines that are neither blank, comments, section headers nor name = value.
func indexLines(path string, data []byte) (map[string]int, []Problem) {
	lines := map[string]int{}
	var problems []Problem
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if n == 1 {
			line = strings.TrimPrefix(line, "\ufeff")
		}
		switch {
		case line == "", line[0] == '#', line[0] == ';':
			continue
		case line[0] == '[':
			if !strings.HasSuffix(line, "]") || len(line) < 3 {
				problems = append(problems, Problem{Severity: Fatal, Where: fmt.Sprintf("%s:%d", path, n),
					Rule: fmt.Sprintf("malformed section header %q: expected [name]", line)})
			}
			continue
		}
		i := strings.IndexAny(line, "=:")
		if i <= 0 {
			problems = append(problems, Problem{Severity: Fatal, Where: fmt.Sprintf("%s:%d", path, n),
				Rule: fmt.Sprintf("malformed line %q: expected Name = value", line)})
			continue
		}
		lines[strings.ToLower(strings.TrimSpace(line[:i]))] = n
	}
	if err := sc.Err(); err != nil {
		problems = append(problems, Problem{Severity: Fatal, Where: fmt.Sprintf("%s:%d", path, n+1), Rule: "cannot read line: " + err.Error()})
	}
	return lines, problems
}

// etcdEnvNames maps libcalico-go's datastore variables to parameters. The
// CALICO_-prefixed forms are accepted too.
var etcdEnvNames = map[string]string{
	"DATASTORE_TYPE":    "DatastoreType",
	"ETCD_ENDPOINTS":    "EtcdEndpoints",
	"ETCD_KEY_FILE":     "EtcdKeyFile",
	"ETCD_CERT_FILE":    "EtcdCertFile",
	"ETCD_CA_CERT_FILE": "EtcdCaFile",
	"ETCD_USERNAME":     "EtcdUsername",
	"ETCD_PASSWORD":     "EtcdPassword",
}

// ReadEnv picks the configuration out of an environment (os.Environ form):
// every FELIX_<name> variable, in any case, and libcalico-go's datastore
// variables at a lower precedence.
func ReadEnv(environ []string) []RawValue {
	var out []RawValue
	for _, kv := range environ {
		name, value, ok := strings.Cut(kv, "=")
		if !ok {
			continue
		}
		upper := strings.ToUpper(name)
		if strings.HasPrefix(upper, "FELIX_") && len(name) > len("FELIX_") {
			out = append(out, RawValue{Name: name[len("FELIX_"):], Value: strings.TrimSpace(value), Source: SourceEnv, Where: "environment variable " + name})
			continue
		}
		if p, ok := etcdEnvNames[strings.TrimPrefix(upper, "CALICO_")]; ok {
			out = append(out, RawValue{Name: p, Value: strings.TrimSpace(value), Source: SourceEtcdEnv, Where: "environment variable " + name})
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Where < out[j].Where })
	return out
}

// AnnotationPrefix marks FelixConfiguration annotations that set parameters
// by their config-file name.
const AnnotationPrefix = "config.projectcalico.org/"

// FromDatastore converts a FelixConfiguration (or ClusterInformation) spec,
// decoded from JSON, into raw values. resource names the object for messages,
// e.g. "felixconfigurations/node.compute1". Spec fields Ocelot does not know
// are skipped; local-only parameters are reported and ignored.
func FromDatastore(source Source, resource string, spec map[string]any, annotations map[string]string) ([]RawValue, []Problem) {
	var out []RawValue
	var problems []Problem
	add := func(p *Param, name, value, where string) {
		if p.Local {
			problems = append(problems, Problem{Severity: Warning, Where: where, Param: p.Name, Value: value,
				Rule: "is local-only and may not come from the datastore; ignored"})
			return
		}
		out = append(out, RawValue{Name: name, Value: value, Source: source, Where: where})
	}
	keys := make([]string, 0, len(spec))
	for k := range spec {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, field := range keys {
		p, ok := paramsByYAML[strings.ToLower(field)]
		if !ok {
			continue
		}
		where := resource + " spec." + field
		value, err := specValueText(p, spec[field])
		if err != nil {
			problems = append(problems, Problem{Severity: Warning, Where: where, Param: p.Name, Value: fmt.Sprint(spec[field]), Rule: err.Error() + "; ignored"})
			continue
		}
		add(p, p.Name, value, where)
	}
	akeys := make([]string, 0, len(annotations))
	for k := range annotations {
		akeys = append(akeys, k)
	}
	sort.Strings(akeys)
	for _, k := range akeys {
		name, ok := strings.CutPrefix(k, AnnotationPrefix)
		if !ok {
			continue
		}
		where := resource + " annotation " + k
		p, ok := Lookup(name)
		if !ok {
			problems = append(problems, Problem{Severity: Warning, Where: where, Param: name, Value: annotations[k], Rule: "is not a parameter Ocelot knows; ignored"})
			continue
		}
		add(p, name, annotations[k], where)
	}
	return out, problems
}

// FromClusterInformation turns ClusterInformation "default" into the global
// values Felix derives from it.
func FromClusterInformation(clusterGUID, clusterType, calicoVersion, variant string) []RawValue {
	var out []RawValue
	for _, kv := range [][2]string{{"ClusterGUID", clusterGUID}, {"ClusterType", clusterType}, {"CalicoVersion", calicoVersion}, {"Variant", variant}} {
		if kv[1] != "" {
			out = append(out, RawValue{Name: kv[0], Value: kv[1], Source: SourceDatastoreGlobal, Where: "clusterinformations/default"})
		}
	}
	return out
}

// specValueText renders a JSON-decoded spec value as the text the config
// file would hold.
func specValueText(p *Param, v any) (string, error) {
	switch x := v.(type) {
	case nil:
		return "", nil
	case string:
		return x, nil
	case bool:
		return strconv.FormatBool(x), nil
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), nil
	case []any:
		if p.Kind == KindPortList {
			return portObjectsText(x)
		}
		parts := make([]string, 0, len(x))
		for _, e := range x {
			s, ok := e.(string)
			if !ok {
				return "", fmt.Errorf("list items must be strings, not %T", e)
			}
			parts = append(parts, s)
		}
		if len(parts) == 0 {
			return "none", nil
		}
		return strings.Join(parts, ","), nil
	}
	return "", fmt.Errorf("a value of JSON type %T is not supported here", v)
}

// portObjectsText turns [{protocol, port, net}] into "proto:net:port,...".
func portObjectsText(items []any) (string, error) {
	if len(items) == 0 {
		return "none", nil
	}
	parts := make([]string, 0, len(items))
	for _, it := range items {
		m, ok := it.(map[string]any)
		if !ok {
			return "", errors.New("failsafe ports must be objects {protocol, port, net}")
		}
		proto, _ := m["protocol"].(string)
		if proto == "" {
			proto = "tcp"
		}
		port, ok := m["port"].(float64)
		if !ok {
			return "", errors.New("failsafe port entry needs a numeric port")
		}
		s := strings.ToLower(proto) + ":"
		if n, _ := m["net"].(string); n != "" {
			if strings.Contains(n, ":") {
				s += "[" + n + "]:"
			} else {
				s += n + ":"
			}
		}
		parts = append(parts, s+strconv.Itoa(int(port)))
	}
	return strings.Join(parts, ","), nil
}

// Local holds the sources read from this host: the config file and the
// environment. The datastore sources are added at Resolve time.
type Local struct {
	Path     string
	Exists   bool // whether the config file exists
	File     []RawValue
	Env      []RawValue
	Problems Problems // problems reading the file itself
}

// ReadLocal reads the config file at path and picks the configuration out
// of environ.
func ReadLocal(path string, environ []string) *Local {
	file, problems, exists := ReadFile(path)
	return &Local{Path: path, Exists: exists, File: file, Env: ReadEnv(environ), Problems: problems}
}

// Resolve combines the local sources with any datastore sources.
func (l *Local) Resolve(datastore ...[]RawValue) (*Config, Problems) {
	sources := append(append([][]RawValue{}, datastore...), l.File, l.Env)
	cfg, problems := Load(sources...)
	return cfg, append(append(Problems{}, l.Problems...), problems...)
}
