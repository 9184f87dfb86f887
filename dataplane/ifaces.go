package dataplane

import "strings"

// workloadIfaces decides which interfaces are Ocelot's to program: a name
// that starts with one of InterfacePrefix, is not excluded by
// InterfaceExclude, and is a kernel interface name from the alphabet the
// datastore accepts ([A-Za-z0-9_.-], at most 15 characters). Everything
// that acts on an interface — routes, neighbours, sysctls, dispatch
// rules, QoS — asks it first, whatever a message says: an endpoint that
// names eth0 must not make the dataplane touch eth0.
type workloadIfaces struct {
	prefixes []string
	exclude  func(name string) bool // nil: nothing is excluded
}

// maxIfaceName is the kernel's limit (IFNAMSIZ less the terminating NUL).
const maxIfaceName = 15

// Ours reports whether an interface is a workload interface this agent
// may program.
func (w workloadIfaces) Ours(name string) bool {
	if !validIfaceName(name) {
		return false
	}
	prefixed := false
	for _, p := range w.prefixes {
		if p != "" && strings.HasPrefix(name, p) {
			prefixed = true
			break
		}
	}
	return prefixed && (w.exclude == nil || !w.exclude(name))
}

func validIfaceName(name string) bool {
	if name == "" || len(name) > maxIfaceName || name == "." || name == ".." {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}
