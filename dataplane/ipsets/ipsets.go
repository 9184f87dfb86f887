// Package ipsets is the IP-set driver: it holds the desired sets of one IP
// family and brings the kernel in line through batched "ipset restore"
// runs, writing only the members that changed.
//
// Ownership: sets named cali4* (IPv4) or cali6* (IPv6), Felix's names, so a
// takeover from Felix keeps the sets it finds with the right content. Sets
// whose type or size changes are rebuilt in a temporary set and swapped in
// atomically. Sets no longer wanted are destroyed only in ApplyDeletions,
// which the dataplane runs after iptables stopped referring to them.
//
// Writes go through "ipset restore -exist", except small member changes
// to hash:net sets (a VM joining or leaving a group), which go straight to
// the kernel over netlink: no process to start, so a join is enforced in
// well under a millisecond. Anything the netlink path cannot do, or any
// error on it, falls back to the restore (every line is idempotent).
package ipsets

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"os/exec"
	"slices"
	"strings"

	"github.com/vishvananda/netlink"

	"ocelot/internal/cidr"
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
	members map[string]struct{}
	touched map[string]bool // members changed since the last apply -> present before
	full    bool            // compare every member at the next apply
}

// kernelSet is what the kernel has. members is known only right after a
// read; otherwise (nil) the set matches what was last written.
type kernelSet struct {
	meta
	members map[string]struct{}
}

// IPSets drives the sets of one family. It is not safe for concurrent use.
type IPSets struct {
	Family  int // 4 or 6
	MaxSize int // maxelem for new sets
	Binary  string
	// Netlink lets small member changes bypass the ipset binary.
	Netlink bool
	log     *slog.Logger

	desired map[string]*desiredSet // by kernel name
	kernel  map[string]*kernelSet  // nil: read before the next apply
	dirty   map[string]struct{}    // names to create or update
	temp    int

	// LinesWritten counts restore lines written (tests and benchmarks).
	LinesWritten int
	BytesWritten int
}

// New returns a driver for one family.
func New(family, maxSize int, log *slog.Logger) *IPSets {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &IPSets{Family: family, MaxSize: maxSize, Binary: "ipset", Netlink: true, log: log.With("ip_version", family),
		desired: map[string]*desiredSet{}, dirty: map[string]struct{}{}}
}

func (s *IPSets) prefix() string { return fmt.Sprintf("cali%d", s.Family) }

// Name is the kernel name of a set ID: cali<family>0<id>, cut to 31
// characters, as Felix names it.
func (s *IPSets) Name(id string) string {
	n := s.prefix() + "0" + id
	if len(n) > MaxNameLength {
		n = n[:MaxNameLength]
	}
	return n
}

// Replace sets a set's type and full membership.
func (s *IPSets) Replace(id, typ string, members []string) {
	name := s.Name(id)
	d := &desiredSet{meta: meta{typ, s.MaxSize}, members: make(map[string]struct{}, len(members)), full: true}
	for _, m := range members {
		d.members[m] = struct{}{}
	}
	s.desired[name] = d
	s.dirty[name] = struct{}{}
	if k := s.kernel[name]; k != nil && k.members == nil {
		s.kernel = nil // its content is unknown: read it before comparing
	}
}

// AddMembers and RemoveMembers change a set already given to Replace.
func (s *IPSets) AddMembers(id string, members []string) { s.change(id, members, true) }

func (s *IPSets) RemoveMembers(id string, members []string) { s.change(id, members, false) }

func (s *IPSets) change(id string, members []string, add bool) {
	name := s.Name(id)
	d := s.desired[name]
	if d == nil {
		s.log.Warn("member change for an unknown set ignored", "set", name)
		return
	}
	if d.touched == nil {
		d.touched = map[string]bool{}
	}
	for _, m := range members {
		if _, seen := d.touched[m]; !seen {
			_, was := d.members[m]
			d.touched[m] = was
		}
		if add {
			d.members[m] = struct{}{}
		} else {
			delete(d.members, m)
		}
	}
	s.dirty[name] = struct{}{}
}

// Remove forgets a set; ApplyDeletions destroys it.
func (s *IPSets) Remove(id string) {
	name := s.Name(id)
	delete(s.desired, name)
	delete(s.dirty, name)
}

// Has reports whether a set is desired.
func (s *IPSets) Has(id string) bool { _, ok := s.desired[s.Name(id)]; return ok }

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
	k, err := s.read(ctx)
	if err != nil {
		return err
	}
	s.kernel = k
	return nil
}

// ApplyUpdates creates sets and writes member changes.
func (s *IPSets) ApplyUpdates(ctx context.Context) error {
	if err := s.Read(ctx); err != nil {
		return err
	}
	script := s.planUpdates()
	if script == "" {
		return nil
	}
	if err := s.write(ctx, script); err != nil {
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

// planUpdates writes the restore input for the dirty sets: create what is
// missing, swap in a rebuilt set when type or size changed, otherwise add
// and delete the members that changed.
func (s *IPSets) planUpdates() string {
	var b strings.Builder
	family := "inet"
	if s.Family == 6 {
		family = "inet6"
	}
	names := slices.Sorted(keys(s.dirty))
	for _, name := range names {
		d := s.desired[name]
		k := s.kernel[name]
		switch {
		case k == nil:
			fmt.Fprintf(&b, "create %s %s family %s maxelem %d\n", name, d.typ, family, d.maxElem)
			for _, m := range slices.Sorted(keys(d.members)) {
				fmt.Fprintf(&b, "add %s %s\n", name, m)
			}
		case k.meta != d.meta:
			temp := s.tempName()
			fmt.Fprintf(&b, "create %s %s family %s maxelem %d\n", temp, d.typ, family, d.maxElem)
			for _, m := range slices.Sorted(keys(d.members)) {
				fmt.Fprintf(&b, "add %s %s\n", temp, m)
			}
			fmt.Fprintf(&b, "swap %s %s\ndestroy %s\n", name, temp, temp)
		case d.full || k.members != nil:
			// Compare everything with what was read.
			for _, m := range slices.Sorted(keys(d.members)) {
				if _, have := k.members[m]; !have {
					fmt.Fprintf(&b, "add %s %s\n", name, m)
				}
			}
			for _, m := range slices.Sorted(keys(k.members)) {
				if _, want := d.members[m]; !want {
					fmt.Fprintf(&b, "del %s %s\n", name, m)
				}
			}
		default:
			// Only what changed since the last write.
			for _, m := range slices.Sorted(keysB(d.touched)) {
				_, want := d.members[m]
				switch was := d.touched[m]; {
				case want && !was:
					fmt.Fprintf(&b, "add %s %s\n", name, m)
				case was && !want:
					fmt.Fprintf(&b, "del %s %s\n", name, m)
				}
			}
		}
	}
	return b.String()
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

func keysB(m map[string]bool) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func keys(m map[string]struct{}) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// ApplyDeletions destroys owned sets that are no longer wanted. A set that
// iptables still refers to cannot be destroyed; it is retried next time.
func (s *IPSets) ApplyDeletions(ctx context.Context) error {
	if s.kernel == nil {
		return nil
	}
	var stale []string
	for name := range s.kernel {
		if _, want := s.desired[name]; !want {
			stale = append(stale, name)
		}
	}
	if len(stale) == 0 {
		return nil
	}
	slices.Sort(stale)
	var b strings.Builder
	for _, name := range stale {
		fmt.Fprintf(&b, "destroy %s\n", name)
	}
	if err := s.restore(ctx, b.String()); err == nil {
		for _, name := range stale {
			delete(s.kernel, name)
		}
		return nil
	}
	var firstErr error
	for _, name := range stale { // one at a time, to destroy what can be
		if err := s.restore(ctx, "destroy "+name+"\n"); err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		delete(s.kernel, name)
	}
	return firstErr
}

// write applies update lines, over netlink when they are few member
// changes of hash:net sets, otherwise (or if netlink fails) with restore.
func (s *IPSets) write(ctx context.Context, script string) error {
	if s.Netlink && strings.Count(script, "\n") <= NetlinkMaxChanges {
		if ops, ok := s.netlinkOps(script); ok {
			err := applyNetlink(ops)
			if err == nil {
				s.LinesWritten += len(ops)
				s.BytesWritten += len(script)
				return nil
			}
			netlinkErrors.Inc()
			s.log.Debug("ipset over netlink failed; using ipset restore", "err", err)
		}
	}
	return s.restore(ctx, script)
}

// netlinkOp is one member change.
type netlinkOp struct {
	add   bool
	set   string
	entry netlink.IPSetEntry
}

// netlinkOps turns "add|del <set> <addr or CIDR>" lines into netlink
// operations; ok is false when any line is something else.
func (s *IPSets) netlinkOps(script string) (ops []netlinkOp, ok bool) {
	for line := range strings.Lines(script) {
		f := strings.Fields(line)
		if len(f) != 3 || (f[0] != "add" && f[0] != "del") {
			return nil, false
		}
		if d := s.desired[f[1]]; d == nil || d.typ != TypeNet {
			return nil, false
		}
		p, err := cidr.Parse(f[2])
		if err != nil {
			return nil, false
		}
		if (s.Family == 4) != p.Addr().Is4() {
			return nil, false
		}
		// Replace is -exist: adding a present member or deleting an
		// absent one is not an error, as in the restore.
		ops = append(ops, netlinkOp{add: f[0] == "add", set: f[1],
			entry: netlink.IPSetEntry{IP: net.IP(p.Addr().AsSlice()), CIDR: uint8(p.Bits()), Replace: true}})
	}
	return ops, len(ops) > 0
}

func applyNetlink(ops []netlinkOp) error {
	for _, op := range ops {
		var err error
		if op.add {
			err = netlink.IpsetAdd(op.set, &op.entry)
		} else {
			err = netlink.IpsetDel(op.set, &op.entry)
		}
		netlinkChanges.Inc()
		if err != nil {
			return fmt.Errorf("%s %s: %w", op.set, op.entry.IP, err)
		}
	}
	return nil
}

func (s *IPSets) restore(ctx context.Context, script string) error {
	ipsetCalls.Inc()
	lines := strings.Count(script, "\n")
	ipsetLines.Add(float64(lines))
	s.LinesWritten += lines
	s.BytesWritten += len(script)
	cmd := exec.CommandContext(ctx, s.Binary, "restore", "-exist")
	cmd.Stdin = strings.NewReader(script)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		ipsetErrors.Inc()
		return fmt.Errorf("ipset restore: %w: %s", err, strings.TrimSpace(out.String()))
	}
	return nil
}

// read lists the owned sets of this family with their members.
func (s *IPSets) read(ctx context.Context) (map[string]*kernelSet, error) {
	ipsetCalls.Inc()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, s.Binary, "save")
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		ipsetErrors.Inc()
		return nil, fmt.Errorf("ipset save: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	return parseSave(out, s.prefix()), nil
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
			k := &kernelSet{meta: meta{typ: f[2]}, members: map[string]struct{}{}}
			for i := 3; i+1 < len(f); i++ {
				if f[i] == "maxelem" {
					fmt.Sscan(f[i+1], &k.maxElem)
				}
			}
			sets[f[1]] = k
		case "add":
			if k := sets[f[1]]; k != nil {
				k.members[f[2]] = struct{}{}
			}
		}
	}
	return sets
}
