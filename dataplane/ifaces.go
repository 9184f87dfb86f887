package dataplane

import (
	"log/slog"
	"strings"
)

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
	return w.prefixed(name) && !w.excluded(name)
}

func (w workloadIfaces) prefixed(name string) bool {
	for _, p := range w.prefixes {
		if p != "" && strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

func (w workloadIfaces) excluded(name string) bool { return w.exclude != nil && w.exclude(name) }

// Host reports whether an interface is one host endpoints may govern: not
// a workload interface (by its prefix, excluded or not), not excluded,
// and a name rules can match as it is (a '+', a quote or anything else a
// renderer would have to escape never is).
func (w workloadIfaces) Host(name string) bool {
	return validIfaceName(name) && !w.prefixed(name) && !w.excluded(name)
}

// hostIfaceFilter is Host for the host interface monitor, which calls it
// on its own goroutine: it logs, once per name, an interface that could
// have been a host endpoint's but whose name no rule can match.
func hostIfaceFilter(w workloadIfaces, log *slog.Logger) func(name string) bool {
	skipped := map[string]bool{}
	return func(name string) bool {
		if w.Host(name) {
			return true
		}
		if !validIfaceName(name) && !skipped[name] {
			skipped[name] = true
			log.Warn("host interface has a name rules cannot match by name; only an all-interfaces host endpoint governs it", "iface", name)
		}
		return false
	}
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
