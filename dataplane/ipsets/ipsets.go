package ipsets

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"ocelot/contract"
)

// NetlinkMaxChanges is the largest member change written over netlink;
// larger ones go to one ipset restore, which is cheaper per line.
const NetlinkMaxChanges = 64

// MaxNameLength is the kernel's limit on set names.
const MaxNameLength = 31

// Set types.
const (
	TypeNet       = "hash:net"
	TypeIPAndPort = "hash:ip,port"
)

type meta struct {
	typ     string
	maxElem int
}

type desiredSet struct {
	meta
	members map[member]struct{}
	touched map[member]bool // members changed since the last apply -> present before
	full    bool            // compare every member at the next apply
}

// kernelSet is what the kernel has. members is known only right after a
// read; otherwise (nil) the set matches what was last written.
type kernelSet struct {
	meta
	members  map[member]struct{}
	unparsed bool // a member could not be read back: rebuild the set
}

// Options configure a family's driver.
type Options struct {
	MaxSize int    // maxelem of new sets
	Runner  Runner // the ipset tool; Command{} if nil
	// Netlink lets small member changes bypass the tool; nil writes
	// everything through Runner.
	Netlink Netlink
	Log     *slog.Logger
	Metrics *Metrics // nil counts into instruments nobody registered
}

// IPSets drives the sets of one family. It is not safe for concurrent use.
type IPSets struct {
	Family  int // 4 or 6
	MaxSize int // maxelem for new sets

	runner  Runner
	netlink Netlink
	log     *slog.Logger
	metrics *Metrics

	desired map[string]*desiredSet // by kernel name
	kernel  map[string]*kernelSet  // nil: read before the next apply
	dirty   map[string]struct{}    // names to create or update
	// sweep says that the kernel may hold sets no longer desired: a set
	// was removed, or the kernel was read. ApplyDeletions looks only then,
	// so that a member change does not cost a scan of every set.
	sweep bool
	temp  int

	// LinesWritten counts operations written (tests and benchmarks);
	// BytesWritten the bytes of restore input.
	LinesWritten int
	BytesWritten int
}

// New returns a driver for one family.
func New(family int, opts Options) *IPSets {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.Runner == nil {
		opts.Runner = Command{}
	}
	if opts.Metrics == nil {
		opts.Metrics = NewMetrics(nil)
	}
	return &IPSets{Family: family, MaxSize: opts.MaxSize, runner: opts.Runner, netlink: opts.Netlink,
		log: opts.Log.With("ip_version", family), metrics: opts.Metrics,
		desired: map[string]*desiredSet{}, dirty: map[string]struct{}{}}
}

func (s *IPSets) prefix() string { return "cali" + strconv.Itoa(s.Family) }

func (s *IPSets) familyName() string {
	if s.Family == 6 {
		return "inet6"
	}
	return "inet"
}

// Name is the kernel name of a set ID: cali<family>0<id>, cut to 31
// characters, as Felix names it.
func (s *IPSets) Name(id string) string {
	n := s.prefix() + "0" + id
	if len(n) > MaxNameLength {
		n = n[:MaxNameLength]
	}
	return n
}

// ours reports whether a member belongs in this family's sets.
func (s *IPSets) ours(m contract.Member) bool { return m.Net.Addr().Is6() == (s.Family == 6) }

// Replace sets a set's type and full membership. Members of the other
// family are left out.
func (s *IPSets) Replace(id, typ string, members []contract.Member) {
	name := s.Name(id)
	d := &desiredSet{meta: meta{typ, s.MaxSize}, members: make(map[member]struct{}, len(members)), full: true}
	for _, m := range members {
		if s.ours(m) {
			d.members[keyOf(m)] = struct{}{}
		}
	}
	s.desired[name] = d
	s.dirty[name] = struct{}{}
	if k := s.kernel[name]; k != nil && k.members == nil {
		s.kernel = nil // its content is unknown: read it before comparing
	}
}

// AddMembers and RemoveMembers change a set already given to Replace.
func (s *IPSets) AddMembers(id string, members []contract.Member) { s.change(id, members, true) }

func (s *IPSets) RemoveMembers(id string, members []contract.Member) { s.change(id, members, false) }

func (s *IPSets) change(id string, members []contract.Member, add bool) {
	name := s.Name(id)
	d := s.desired[name]
	if d == nil {
		s.log.Warn("member change for an unknown set ignored", "set", name)
		return
	}
	if d.touched == nil {
		d.touched = map[member]bool{}
	}
	changed := false
	for _, m := range members {
		if !s.ours(m) {
			continue // the other family's driver has it
		}
		changed = true
		k := keyOf(m)
		if _, seen := d.touched[k]; !seen {
			_, was := d.members[k]
			d.touched[k] = was
		}
		if add {
			d.members[k] = struct{}{}
		} else {
			delete(d.members, k)
		}
	}
	if changed {
		s.dirty[name] = struct{}{}
	}
}

// Remove forgets a set; ApplyDeletions destroys it.
func (s *IPSets) Remove(id string) {
	name := s.Name(id)
	delete(s.desired, name)
	delete(s.dirty, name)
	s.sweep = true
}

// Has reports whether a set is desired.
func (s *IPSets) Has(id string) bool { _, ok := s.desired[s.Name(id)]; return ok }

// Members returns a desired set's members, sorted (tests).
func (s *IPSets) Members(id string) []contract.Member {
	d := s.desired[s.Name(id)]
	if d == nil {
		return nil
	}
	var out []contract.Member
	for _, k := range slices.SortedFunc(maps.Keys(d.members), compareKeys) {
		out = append(out, k.member())
	}
	return out
}

// Size is the number of a desired set's members, and whether it is
// desired.
func (s *IPSets) Size(id string) (int, bool) {
	d := s.desired[s.Name(id)]
	if d == nil {
		return 0, false
	}
	return len(d.members), true
}

// Contains reports whether a desired set matches a packet's address (and,
// for a hash:ip,port set, its protocol and port) as the kernel would: a
// hash:net set by any of its networks, a hash:ip,port set exactly.
func (s *IPSets) Contains(id string, addr netip.Addr, proto uint8, port uint16) bool {
	d := s.desired[s.Name(id)]
	if d == nil || addr.Is6() != (s.Family == 6) {
		return false
	}
	if d.typ == TypeIPAndPort {
		_, ok := d.members[keyOf(contract.Member{Net: netip.PrefixFrom(addr, addr.BitLen()), Proto: proto, Port: port})]
		return ok
	}
	for bits := addr.BitLen(); bits >= 0; bits-- {
		if _, ok := d.members[keyOf(contract.Member{Net: netip.PrefixFrom(addr, bits)})]; ok {
			return true
		}
	}
	return false
}

// NumSets is the number of desired sets.
func (s *IPSets) NumSets() int { return len(s.desired) }

// Resync makes the next apply re-read the kernel and repair any drift.
func (s *IPSets) Resync() {
	s.kernel = nil
	for name, d := range s.desired {
		d.full = true
		s.dirty[name] = struct{}{}
	}
}

// Dirty reports whether ApplyUpdates has work to do.
func (s *IPSets) Dirty() bool { return len(s.dirty) > 0 || s.kernel == nil }

// Read loads the kernel's sets if they are not known yet, so that the
// next ApplyUpdates need not (the dataplane reads ahead while it waits for
// the datastore). A view that goes stale before the write is caught
// there: a failed write re-reads.
func (s *IPSets) Read(ctx context.Context) error {
	if s.kernel != nil {
		return nil
	}
	s.metrics.calls.Inc()
	out, err := s.runner.Save(ctx)
	if err != nil {
		s.metrics.errors.Inc()
		return err
	}
	s.kernel = parseSave(out, s.prefix())
	s.sweep = true
	return nil
}

// ApplyUpdates creates sets and writes member changes.
func (s *IPSets) ApplyUpdates(ctx context.Context) error {
	defer s.publish()
	if err := s.Read(ctx); err != nil {
		return err
	}
	ops := s.planUpdates()
	if len(ops) == 0 {
		return nil
	}
	if err := s.write(ctx, ops); err != nil {
		s.Resync()
		return err
	}
	for name := range s.dirty {
		d := s.desired[name]
		s.kernel[name] = &kernelSet{meta: d.meta}
		d.touched, d.full = nil, false
	}
	clear(s.dirty)
	return nil
}

func (s *IPSets) publish() {
	s.metrics.sets.WithLabelValues(s.familyName()).Set(float64(len(s.desired)))
}

// planUpdates plans the dirty sets: create what is missing, swap in a
// rebuilt set when its type or size changed (or its content could not be
// read), otherwise add and delete the members that changed.
func (s *IPSets) planUpdates() []Op {
	var ops []Op
	sorted := func(m map[member]struct{}) []member { return slices.SortedFunc(maps.Keys(m), compareKeys) }
	for _, name := range slices.Sorted(maps.Keys(s.dirty)) {
		d := s.desired[name]
		k := s.kernel[name]
		fill := func(set string) {
			ops = append(ops, Op{Kind: OpCreate, Set: set, Type: d.typ, MaxElem: d.maxElem})
			for _, m := range sorted(d.members) {
				ops = append(ops, Op{Kind: OpAdd, Set: set, Member: m.member()})
			}
		}
		switch {
		case k == nil:
			fill(name)
		case k.meta != d.meta || k.unparsed:
			temp := s.tempName()
			fill(temp)
			ops = append(ops, Op{Kind: OpSwap, Set: name, Other: temp}, Op{Kind: OpDestroy, Set: temp})
		case d.full || k.members != nil:
			// Compare everything with what was read.
			for _, m := range sorted(d.members) {
				if _, have := k.members[m]; !have {
					ops = append(ops, Op{Kind: OpAdd, Set: name, Member: m.member()})
				}
			}
			for _, m := range sorted(k.members) {
				if _, want := d.members[m]; !want {
					ops = append(ops, Op{Kind: OpDel, Set: name, Member: m.member()})
				}
			}
		default:
			// Only what changed since the last write.
			for _, m := range slices.SortedFunc(maps.Keys(d.touched), compareKeys) {
				_, want := d.members[m]
				switch was := d.touched[m]; {
				case want && !was:
					ops = append(ops, Op{Kind: OpAdd, Set: name, Member: m.member()})
				case was && !want:
					ops = append(ops, Op{Kind: OpDel, Set: name, Member: m.member()})
				}
			}
		}
	}
	return ops
}

func (s *IPSets) tempName() string {
	for {
		s.temp++
		n := fmt.Sprintf("cali%dt%d", s.Family, s.temp)
		if _, taken := s.kernel[n]; !taken {
			return n
		}
	}
}

// ApplyDeletions destroys owned sets that are no longer wanted. A set that
// iptables still refers to cannot be destroyed; it is retried next time.
func (s *IPSets) ApplyDeletions(ctx context.Context) error {
	defer s.publish()
	if s.kernel == nil || !s.sweep {
		return nil
	}
	var stale []string
	for name := range s.kernel {
		if _, want := s.desired[name]; !want {
			stale = append(stale, name)
		}
	}
	if len(stale) == 0 {
		s.sweep = false
		return nil
	}
	slices.Sort(stale)
	ops := make([]Op, len(stale))
	for i, name := range stale {
		ops[i] = Op{Kind: OpDestroy, Set: name}
	}
	if err := s.restore(ctx, ops); err == nil {
		for _, o := range ops {
			delete(s.kernel, o.Set)
		}
		s.sweep = false
		return nil
	}
	var firstErr error
	for _, o := range ops { // one at a time, to destroy what can be
		if err := s.restore(ctx, []Op{o}); err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		delete(s.kernel, o.Set)
	}
	s.sweep = firstErr != nil // what could not be destroyed is tried again
	return firstErr
}

// DeletionsPending reports whether ApplyDeletions has sets to look for.
func (s *IPSets) DeletionsPending() bool { return s.sweep }

// write applies update ops, over netlink when they are few member changes
// of hash:net sets, otherwise (or if netlink fails) with restore.
func (s *IPSets) write(ctx context.Context, ops []Op) error {
	if s.netlink != nil && len(ops) <= NetlinkMaxChanges && s.netlinkable(ops) {
		err := s.applyNetlink(ops)
		if err == nil {
			s.LinesWritten += len(ops)
			return nil
		}
		s.metrics.netlinkErrors.Inc()
		s.log.Debug("ipset over netlink failed; using ipset restore", "err", err)
	}
	return s.restore(ctx, ops)
}

// netlinkable reports whether every op is a member change of a hash:net
// set of this family.
func (s *IPSets) netlinkable(ops []Op) bool {
	for _, o := range ops {
		d := s.desired[o.Set]
		if !o.memberOfNet() || d == nil || d.typ != TypeNet || !s.ours(o.Member) {
			return false
		}
	}
	return true
}

func (s *IPSets) applyNetlink(ops []Op) error {
	s.metrics.netlinkChanges.Add(float64(len(ops)))
	return s.netlink.Write(changesOf(ops))
}

func (s *IPSets) restore(ctx context.Context, ops []Op) error {
	script := render(ops, s.familyName())
	s.metrics.calls.Inc()
	s.metrics.lines.Add(float64(len(ops)))
	s.LinesWritten += len(ops)
	s.BytesWritten += len(script)
	if err := s.runner.Restore(ctx, script); err != nil {
		s.metrics.errors.Inc()
		return err
	}
	return nil
}

// parseSave reads "ipset save" output, keeping sets whose names start with
// prefix.
func parseSave(out []byte, prefix string) map[string]*kernelSet {
	sets := map[string]*kernelSet{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<26)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 3 || !strings.HasPrefix(f[1], prefix) {
			continue
		}
		switch f[0] {
		case "create":
			k := &kernelSet{meta: meta{typ: f[2]}, members: map[member]struct{}{}}
			for i := 3; i+1 < len(f); i++ {
				if f[i] == "maxelem" {
					k.maxElem, _ = strconv.Atoi(f[i+1])
				}
			}
			sets[f[1]] = k
		case "add":
			if k := sets[f[1]]; k != nil {
				if m, ok := parseMember(k.typ, f[2]); ok {
					k.members[keyOf(m)] = struct{}{}
				} else {
					k.unparsed = true
				}
			}
		}
	}
	return sets
}
