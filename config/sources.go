package config

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/ini.v1"

	"ocelot/internal/cidr"
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

// datastore reports whether the source is a FelixConfiguration or
// ClusterInformation in etcd.
func (s Source) datastore() bool { return s == SourceDatastoreGlobal || s == SourceDatastoreHost }

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

// MaxFileSize is the largest config file Ocelot reads.
const MaxFileSize = 1 << 20

// ReadFile reads an INI config file. Keys from every section are merged,
// later ones winning. An absent file is not an error (nil values, nil
// problems, and exists=false); an unreadable, oversized or malformed one
// gives fatal problems naming the file and line.
func ReadFile(path string) (values []RawValue, problems []Problem, exists bool) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, false
	}
	if err != nil {
		return nil, []Problem{fileProblem(path, "cannot read the config file: "+errors.Unwrap(err).Error())}, true
	}
	defer func() { _ = f.Close() }() // read only
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, []Problem{fileProblem(path, "cannot read the config file: "+err.Error())}, true
	}
	if len(data) > MaxFileSize {
		return nil, []Problem{fileProblem(path, fmt.Sprintf("the config file is larger than %d bytes", MaxFileSize))}, true
	}
	return parseFileData(path, data)
}

// fileProblem is a fatal problem of the config file as a whole (or of one
// of its lines, when where names it).
func fileProblem(where, rule string) Problem {
	return Problem{Severity: Fatal, Class: Invalid, Source: SourceFile, Where: where, Rule: rule}
}

func parseFileData(path string, data []byte) (values []RawValue, problems []Problem, exists bool) {
	lines, problems := indexLines(path, data)
	if len(problems) > 0 {
		return nil, problems, true
	}
	f, err := ini.LoadSources(ini.LoadOptions{}, data)
	if err != nil {
		return nil, []Problem{fileProblem(path, "cannot parse the config file: "+printable(err.Error()))}, true
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
	var problems Problems
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
				problems = append(problems, fileProblem(fmt.Sprintf("%s:%d", path, n),
					fmt.Sprintf("malformed section header %q: expected [name]", clip(line))))
			}
			continue
		}
		i := strings.IndexAny(line, "=:")
		if i <= 0 {
			problems = append(problems, fileProblem(fmt.Sprintf("%s:%d", path, n),
				fmt.Sprintf("malformed line %q: expected Name = value", clip(line))))
			continue
		}
		lines[strings.ToLower(strings.TrimSpace(line[:i]))] = n
	}
	if err := sc.Err(); err != nil {
		problems = append(problems, fileProblem(fmt.Sprintf("%s:%d", path, n+1), "cannot read line: "+err.Error()))
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

// FromDatastore converts a FelixConfiguration spec, decoded from JSON,
// into raw values. resource names the object for messages, e.g.
// "felixconfigurations/node.compute1"; every message names it and the field.
// Spec fields that are no parameter are reported; local-only parameters are
// reported and ignored. Values are judged by Load, as those of any source.
func FromDatastore(source Source, resource string, spec map[string]any, annotations map[string]string) ([]RawValue, Problems) {
	var out []RawValue
	var problems Problems
	add := func(p *Param, name, value, where string) {
		rv := RawValue{Name: name, Value: value, Source: source, Where: where}
		if p.Local {
			problems = append(problems, localOnlyProblem(p, rv))
			return
		}
		out = append(out, rv)
	}
	keys := make([]string, 0, len(spec))
	for k := range spec {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, field := range keys {
		where := resource + " spec." + printable(field)
		if field == "nodeSelector" {
			continue // chooses hosts; not a parameter
		}
		p, ok := paramsByYAML[strings.ToLower(field)]
		if !ok {
			text, _ := jsonText(spec[field])
			problems = append(problems, Problem{Severity: Warning, Class: Unknown, Source: source, Where: where,
				Param: field, Value: text, Rule: "is an unknown FelixConfiguration field (no Felix or Ocelot parameter); ignored"})
			continue
		}
		value, err := specValueText(p, spec[field])
		if err != nil {
			text, _ := jsonText(spec[field])
			sev, consequence := Warning, "; ignored"
			if p.DieOnFail {
				sev, consequence = Fatal, "; start-up stops"
			}
			problems = append(problems, problemAt(sev, Invalid, RawValue{Name: p.Name, Value: text, Source: source, Where: where}, p, err.Error()+consequence))
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
		where := resource + " annotation " + printable(k)
		p, ok := Lookup(name)
		if !ok {
			problems = append(problems, Problem{Severity: Warning, Class: Unknown, Source: source, Where: where,
				Param: name, Value: annotations[k], Rule: "is an unknown parameter (neither Felix nor Ocelot has it); ignored"})
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
	if !p.HasField() {
		// Refused: the value is only reported; any JSON will do.
		if s, ok := v.(string); ok {
			return s, nil
		}
		text, _ := jsonText(v) // clipped when too long
		return text, nil
	}
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
		if !p.Kind.isList() {
			return "", errors.New("must not be a list")
		}
		if len(x) > maxListItems {
			return "", fmt.Errorf("lists %d items; at most %d are accepted", len(x), maxListItems)
		}
		if p.Kind == KindPortList {
			return portObjectsText(x)
		}
		parts := make([]string, 0, len(x))
		for _, e := range x {
			s, ok := e.(string)
			if !ok {
				return "", fmt.Errorf("list items must be strings, not %s", jsonKind(e))
			}
			if strings.Contains(s, ",") {
				return "", errors.New("list items may not contain commas")
			}
			parts = append(parts, s)
		}
		if len(parts) == 0 {
			return "none", nil
		}
		return strings.Join(parts, ","), nil
	}
	return "", fmt.Errorf("must not be %s", jsonKind(v))
}

// jsonKind names the JSON type of a decoded value.
func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case float64:
		return "a number"
	case []any:
		return "a list"
	}
	return "an object"
}

// jsonText renders a decoded JSON value compactly (null as ""), bounded.
func jsonText(v any) (string, error) {
	if v == nil {
		return "", nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	if len(b) > MaxValueLen {
		return string(b[:MaxValueLen]), fmt.Errorf("is %d bytes long; at most %d are accepted", len(b), MaxValueLen)
	}
	return string(b), nil
}

// portObjectsText turns [{protocol, port, net}] into "proto:net:port,...".
func portObjectsText(items []any) (string, error) {
	if len(items) == 0 {
		return "none", nil
	}
	parts := make([]string, 0, len(items))
	for i, it := range items {
		pp, err := portObject(it)
		if err != nil {
			return "", fmt.Errorf("entry %d: %v", i+1, err)
		}
		parts = append(parts, pp.String())
	}
	return strings.Join(parts, ","), nil
}

// portObject checks one {protocol, port, net} object field by field, so
// that no field's text can add or change entries of the rendered list.
func portObject(it any) (ProtoPort, error) {
	m, ok := it.(map[string]any)
	if !ok {
		return ProtoPort{}, errors.New("failsafe ports must be objects {protocol, port, net}")
	}
	pp := ProtoPort{Protocol: "tcp"}
	switch proto, _ := m["protocol"].(string); strings.ToLower(proto) {
	case "", "tcp":
	case "udp":
		pp.Protocol = "udp"
	default:
		return pp, errors.New("protocol must be TCP or UDP")
	}
	port, ok := m["port"].(float64)
	if !ok || port != math.Trunc(port) || port < 0 || port > 65535 {
		return pp, errors.New("port must be an integer from 0 to 65535")
	}
	pp.Port = int(port)
	if n, _ := m["net"].(string); n != "" {
		p, err := cidr.Parse(n)
		if err != nil {
			return pp, errors.New("net must be a CIDR or an address")
		}
		pp.Net = p.String()
	}
	return pp, nil
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
