package fakekernel

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"

	"github.com/vishvananda/netlink"

	"ocelot/dataplane/conntrack"
	"ocelot/dataplane/nftables"
)

// Kernel is the fake kernel. Its methods are safe for concurrent use (the
// dataplane applies IPv4 and IPv6 concurrently).
type Kernel struct {
	mu        sync.Mutex
	tables    map[int]map[string]*table // family -> table name -> table
	sets      map[string]*set
	links     map[string]*link
	nextIdx   int
	routes    []netlink.Route
	neighs    []netlink.Neigh
	sysctls   map[string]string
	failing   map[string]error // sysctl path -> the error writing it returns
	flows     []conntrack.Tuple
	journal   []string
	passes    int
	nft       map[string]*nftTable // "<family>/<table>" -> nftables table
	nftCounts map[*nftables.Rule]*[2]uint64

	captures []*Capture

	// FailRestore, when set, is asked before each iptables-restore and
	// ipset restore; an error it returns fails the restore unapplied.
	FailRestore func(tool, script string) error
	// FailNFT, when set, is asked before each nftables transaction; an
	// error it returns fails the transaction unapplied.
	FailNFT func(family int, ops []nftables.Op) error
}

// New returns a kernel with empty tables, no sets, no links, and the
// host-wide sysctls a Debian host starts with.
func New() *Kernel {
	k := &Kernel{tables: map[int]map[string]*table{}, sets: map[string]*set{}, links: map[string]*link{},
		nextIdx: 10, failing: map[string]error{},
		sysctls: map[string]string{
			"net/ipv4/ip_forward":                    "0",
			"net/ipv6/conf/all/forwarding":           "0",
			"net/ipv4/conf/default/rp_filter":        "1",
			"net/netfilter/nf_conntrack_acct":        "0",
			"net/netfilter/nf_conntrack_tcp_loose":   "1",
			"net/ipv4/conf/all/rp_filter":            "1",
			"net/ipv6/conf/default/accept_ra":        "1",
			"net/ipv4/conf/default/route_localnet":   "0",
			"net/ipv4/conf/default/proxy_arp":        "0",
			"net/ipv4/conf/default/forwarding":       "0",
			"net/ipv6/conf/default/forwarding":       "0",
			"net/ipv4/neigh/default/proxy_delay":     "80",
			"net/ipv6/conf/default/proxy_ndp":        "0",
			"net/ipv4/conf/default/accept_redirects": "1",
		}}
	for _, f := range []int{4, 6} {
		k.tables[f] = map[string]*table{}
		for _, name := range []string{"raw", "mangle", "nat", "filter"} {
			k.tables[f][name] = newTable(name)
		}
	}
	return k
}

// Journal returns every change made so far, one line each, in order:
// "ip4tables filter: -A cali-x ...", "ipset: destroy cali40s:x",
// "netlink: route replace ...".
func (k *Kernel) Journal() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return slices.Clone(k.journal)
}

// JournalIndex returns the index of the first journal line containing
// s, or -1.
func (k *Kernel) JournalIndex(s string) int {
	k.mu.Lock()
	defer k.mu.Unlock()
	for i, l := range k.journal {
		if strings.Contains(l, s) {
			return i
		}
	}
	return -1
}

func (k *Kernel) record(format string, args ...any) {
	k.journal = append(k.journal, fmt.Sprintf(format, args...))
}

// link is one interface.
type link struct {
	index       int
	up, running bool
	ifb         bool
	qdiscs      []netlink.Qdisc
	filters     []netlink.Filter // on the ingress qdisc
	addrs       []netip.Addr
}

// AddLink creates an interface and returns its index. Its per-interface
// sysctls appear with the defaults' values.
func (k *Kernel) AddLink(name string, up, running bool) int {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.nextIdx++
	k.links[name] = &link{index: k.nextIdx, up: up, running: running}
	for path, v := range k.sysctls {
		for _, dir := range []string{"net/ipv4/conf/", "net/ipv6/conf/", "net/ipv4/neigh/"} {
			if rest, ok := strings.CutPrefix(path, dir+"default/"); ok {
				k.sysctls[dir+name+"/"+rest] = v
			}
		}
	}
	return k.nextIdx
}

// DelLink removes an interface with its routes, neighbours and sysctls.
func (k *Kernel) DelLink(name string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	l := k.links[name]
	if l == nil {
		return
	}
	delete(k.links, name)
	k.routes = slices.DeleteFunc(k.routes, func(r netlink.Route) bool { return r.LinkIndex == l.index })
	k.neighs = slices.DeleteFunc(k.neighs, func(n netlink.Neigh) bool { return n.LinkIndex == l.index })
	for path := range k.sysctls {
		for _, dir := range []string{"net/ipv4/conf/", "net/ipv6/conf/", "net/ipv4/neigh/"} {
			if strings.HasPrefix(path, dir+name+"/") {
				delete(k.sysctls, path)
			}
		}
	}
}

// LinkIndex looks an interface up by name.
func (k *Kernel) LinkIndex(name string) (int, bool, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if l := k.links[name]; l != nil {
		return l.index, true, nil
	}
	return 0, false, nil
}

// Sysctl returns a sysctl's value ("" if absent).
func (k *Kernel) Sysctl(path string) string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.sysctls[path]
}

// FailSysctl makes writes of path fail with err (nil: succeed again).
func (k *Kernel) FailSysctl(path string, err error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err == nil {
		delete(k.failing, path)
	} else {
		k.failing[path] = err
	}
}

// AddFlow adds a conntrack entry from src to dst.
func (k *Kernel) AddFlow(src, dst netip.Addr) { k.AddNATFlow(src, dst, dst) }

// AddNATFlow adds a conntrack entry from src to dst whose destination was
// translated to replySrc (a floating IP's flow: dst is the floating IP,
// replySrc the VM).
func (k *Kernel) AddNATFlow(src, dst, replySrc netip.Addr) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.flows = append(k.flows, conntrack.Tuple{OrigSrc: src, OrigDst: dst, ReplySrc: replySrc, ReplyDst: src})
}

// Flows returns the conntrack entries as "src->dst" (original direction).
func (k *Kernel) Flows() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	var out []string
	for _, f := range k.flows {
		out = append(out, f.OrigSrc.String()+"->"+f.OrigDst.String())
	}
	slices.Sort(out)
	return out
}

// Passes counts the passes over the conntrack table.
func (k *Kernel) Passes() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.passes
}

// Forget deletes the flows match selects, in one pass over every family,
// as the dataplane's netlink conntrack table does.
func (k *Kernel) Forget(_ context.Context, match func(conntrack.Tuple) bool) (int, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.passes++
	n := 0
	k.flows = slices.DeleteFunc(k.flows, func(f conntrack.Tuple) bool {
		if match(f) {
			n++
			k.record("conntrack: delete %s->%s", f.OrigSrc, f.OrigDst)
			return true
		}
		return false
	})
	return n, nil
}
