package dataplane

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"ocelot/calc"
	"ocelot/contract"
	"ocelot/dataplane/ifacemon"
	"ocelot/dataplane/internal/fakekernel"
	ipt "ocelot/dataplane/iptables"
	"ocelot/datastore/resource"
	"ocelot/internal/netlab"
)

// FuzzWholePath drives the whole path from stored values to the kernel:
// arbitrary writes (key and value, as etcd holds them) are decoded as the
// syncer decodes them, run through a real calculation graph, and applied
// by the dataplane to real iptables (legacy) and ipset in a network
// namespace of its own per input; routes, sysctls and conntrack stay on
// the fake kernel. Every iptables-restore script the dataplane writes
// must keep the restore format's structure (checkRestoreScript) and pass
// iptables-restore --test against the kernel it is meant for, and then
// apply; every ipset script must apply. Then every key is deleted, and
// the removal must apply as well.
//
// The seeds are the shapes of the hostile-input suite (fv-tests): names
// with spaces, quotes, newlines and control characters, escaped keys,
// annotations that try to leave their comment, spoofing prefixes, floating
// IPs, huge and deep selectors. Without -fuzz, go test runs the seeds (a
// few seconds); go test -run '^$' -fuzz FuzzWholePath ./dataplane/ runs
// it for as long as wanted.
func FuzzWholePath(f *testing.F) {
	netlab.Require(f)
	for _, s := range wholePathSeeds() {
		f.Add(encodeWrites(s))
	}
	var n atomic.Int64
	f.Fuzz(func(t *testing.T, data []byte) {
		writes := decodeWrites(data)
		if len(writes) == 0 {
			return
		}
		// Fuzz workers are processes of their own: the PID keeps their
		// namespaces apart.
		ns := netlab.NewNS(t, fmt.Sprintf("wp%d-%d", os.Getpid(), n.Add(1)))
		wholePath(t, ns, writes, nil)
	})
}

// write is one stored key and value.
type write struct{ key, value string }

// Inputs are writes separated by 0x1e, each a key and a value separated
// by 0x1f; a key without a leading '/' is under the resource prefix.
func encodeWrites(ws []write) []byte {
	var b bytes.Buffer
	for i, w := range ws {
		if i > 0 {
			b.WriteByte(0x1e)
		}
		b.WriteString(strings.TrimPrefix(w.key, resource.ResourcePrefix))
		b.WriteByte(0x1f)
		b.WriteString(w.value)
	}
	return b.Bytes()
}

func decodeWrites(data []byte) []write {
	const maxWrites = 64
	var out []write
	for _, rec := range bytes.Split(data, []byte{0x1e}) {
		k, v, ok := bytes.Cut(rec, []byte{0x1f})
		if !ok {
			continue
		}
		key := string(k)
		if !strings.HasPrefix(key, "/") {
			key = resource.ResourcePrefix + key
		}
		out = append(out, write{key, string(v)})
		if len(out) == maxWrites {
			break
		}
	}
	return out
}

const (
	wpHost = "fuzzhost"
	wpNS   = "openstack-region-RegionOne"
)

// wholePath applies the writes, then their deletion, through calc and the
// dataplane on the namespace's iptables and ipsets; written (if not nil)
// looks at the kernel in between.
func wholePath(t *testing.T, ns *netlab.NS, writes []write, written func()) {
	k := fakekernel.New()
	kern := fakeKernel(k)
	checker := &scriptChecker{t: t, ns: ns}
	kern.iptables = func(v int) (ipt.Runner, error) { return checker.iptables(v), nil }
	kern.ipsets = checker.ipsets()
	kern.ipsetsNL = nil // every set write as an ipset script
	cfg := testConfig(t)
	d, err := newDataplane(cfg, nil, kern)
	if err != nil {
		t.Fatal(err)
	}
	d.routes.synced = true
	g := calc.New(calc.Config{Hostname: wpHost, Namespace: wpNS, InterfacePrefixes: []string{"tap"}, WorkloadSourceSpoofingAny: true}, nil)

	var updates []resource.Update
	keys := map[string]resource.Key{}
	for i, w := range writes {
		u, ok := decodeAsSyncer(w, int64(i+1))
		if !ok {
			continue
		}
		updates = append(updates, u)
		if u.Value != nil {
			keys[w.key] = u.Key
		} else {
			delete(keys, w.key)
		}
	}
	g.OnUpdates(updates)
	g.OnInSync()
	step := func(what string, msgs []contract.Message) {
		t.Helper()
		for _, m := range msgs {
			if e, ok := m.(contract.EndpointUpdate); ok && !plugged(k, e.Name) {
				idx := k.AddLink(e.Name, true, true)
				d.onIfaces(ifacemon.Event{States: []ifacemon.State{{Name: e.Name, Index: idx, Up: true, Running: true}}, Synced: true})
			}
		}
		d.onMessages(msgs)
		if _, err := d.apply(context.Background()); err != nil {
			t.Fatalf("%s: the dataplane's apply failed: %v", what, err)
		}
		checker.report(what)
	}
	step("writing", g.Flush())
	if written != nil {
		written()
	}

	var dels []resource.Update
	for _, key := range keys {
		dels = append(dels, resource.Update{Key: key, Revision: int64(len(writes) + 1)})
	}
	g.OnUpdates(dels)
	step("deleting", g.Flush())
}

// plugged reports whether the fake kernel has the link.
func plugged(k *fakekernel.Kernel, name string) bool {
	_, ok, _ := k.LinkIndex(name)
	return ok
}

// decodeAsSyncer turns a write into the update the syncer would emit
// (false: a key Ocelot does not read). It mirrors datastore.Syncer:
// NetworkPolicies only in the local namespace, an invalid value as
// *resource.Invalid, an absent value (an endpoint without addresses) as a
// deletion.
func decodeAsSyncer(w write, rev int64) (resource.Update, bool) {
	key, ok := resource.ParseKey(w.key)
	if !ok || key.Kind == resource.KindNetworkPolicy && key.Namespace != wpNS {
		return resource.Update{}, false
	}
	v, err := resource.Decode(key.Kind, key.Namespace, key.Name, []byte(w.value), resource.Options{Hostname: wpHost})
	if err != nil {
		inv, _ := v.(*resource.Invalid)
		if inv == nil {
			inv = &resource.Invalid{Kind: key.Kind}
		}
		inv.Reason = err
		return resource.Update{Key: key, Value: inv, Revision: rev}, true
	}
	if v == nil {
		return resource.Update{Key: key, Revision: rev}, true
	}
	return resource.Update{Key: key, Value: v, Revision: rev}, true
}

// scriptChecker runs the dataplane's scripts on the namespace's real
// tools, checking each first.
type scriptChecker struct {
	t  *testing.T
	ns *netlab.NS

	mu       sync.Mutex
	problems []string
}

func (c *scriptChecker) fail(format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.problems = append(c.problems, fmt.Sprintf(format, args...))
}

// report fails the test with every problem found so far.
func (c *scriptChecker) report(what string) {
	c.t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.problems) > 0 {
		c.t.Fatalf("%s: %d bad scripts:\n%s", what, len(c.problems), strings.Join(c.problems, "\n----\n"))
	}
}

func (c *scriptChecker) run(stdin string, name string, args ...string) (string, error) {
	cmd := exec.Command("ip", append([]string{"netns", "exec", c.ns.Name, name}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

type nsIptables struct {
	c             *scriptChecker
	save, restore string
}

func (c *scriptChecker) iptables(family int) nsIptables {
	bin := "iptables-legacy"
	if family == 6 {
		bin = "ip6tables-legacy"
	}
	return nsIptables{c, bin + "-save", bin + "-restore"}
}

func (r nsIptables) Save(_ context.Context, table string) ([]byte, error) {
	args := []string{}
	if table != "" {
		args = []string{"-t", table}
	}
	cmd := exec.Command("ip", append([]string{"netns", "exec", r.c.ns.Name, r.save}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%s: %v: %s", r.save, err, stderr.String())
	}
	return out, nil
}

func (r nsIptables) Restore(_ context.Context, script string) error {
	if err := checkRestoreScript(script); err != nil {
		r.c.fail("%s: the script breaks the restore format: %v\n%s", r.restore, err, script)
		return err
	}
	if out, err := r.c.run(script, r.restore, "--test", "--noflush", "--wait", "10"); err != nil {
		r.c.fail("%s --test refuses the script: %v: %s\n%s", r.restore, err, out, script)
		return fmt.Errorf("%s --test: %v: %s", r.restore, err, out)
	}
	if out, err := r.c.run(script, r.restore, "--noflush", "--wait", "10"); err != nil {
		r.c.fail("%s refuses the script: %v: %s\n%s", r.restore, err, out, script)
		return fmt.Errorf("%s: %v: %s", r.restore, err, out)
	}
	return nil
}

type nsIpsets struct{ c *scriptChecker }

func (c *scriptChecker) ipsets() nsIpsets { return nsIpsets{c} }

func (r nsIpsets) Save(_ context.Context) ([]byte, error) {
	out, err := exec.Command("ip", "netns", "exec", r.c.ns.Name, "ipset", "save").Output()
	if err != nil {
		return nil, fmt.Errorf("ipset save: %v", err)
	}
	return out, nil
}

func (r nsIpsets) Restore(_ context.Context, script string) error {
	for i, line := range strings.Split(strings.TrimSuffix(script, "\n"), "\n") {
		if err := printable(line); err != nil {
			r.c.fail("ipset script line %d: %v: %q", i+1, err, line)
			return err
		}
	}
	if out, err := r.c.run(script, "ipset", "restore", "-exist"); err != nil {
		r.c.fail("ipset restore refuses the script: %v: %s\n%s", err, out, script)
		return fmt.Errorf("ipset restore: %v: %s", err, out)
	}
	return nil
}

// checkRestoreScript checks that every line of an iptables-restore script
// is one the dataplane means to write: a table, a chain declaration, a
// COMMIT, or a rule operation on a chain, with printable ASCII only,
// balanced quotes, and (for a rule added or inserted) the agent's hash
// comment. A value from the datastore that broke out of its quotes or
// its line shows up here even where iptables would accept the result.
func checkRestoreScript(script string) error {
	if !strings.HasSuffix(script, "\n") {
		return fmt.Errorf("no final newline")
	}
	for i, line := range strings.Split(strings.TrimSuffix(script, "\n"), "\n") {
		if err := printable(line); err != nil {
			return fmt.Errorf("line %d: %v: %q", i+1, err, line)
		}
		f := strings.Fields(line)
		if len(f) == 0 {
			return fmt.Errorf("line %d is empty", i+1)
		}
		switch {
		case line == "COMMIT":
		case strings.HasPrefix(line, "*") && len(f) == 1:
		case strings.HasPrefix(line, ":") && len(f) == 3:
		case f[0] == "-F" || f[0] == "-X":
			if len(f) != 2 {
				return fmt.Errorf("line %d: %q", i+1, line)
			}
		case f[0] == "-A" || f[0] == "-I" || f[0] == "-R" || f[0] == "-D":
			if strings.Count(line, `"`)%2 != 0 {
				return fmt.Errorf("line %d: unbalanced quotes: %q", i+1, line)
			}
			if f[0] != "-D" && !strings.Contains(line, `--comment "`+ipt.HashPrefix) && !strings.Contains(line, `--comment `+ipt.HashPrefix) {
				return fmt.Errorf("line %d: a rule without the agent's hash comment: %q", i+1, line)
			}
		default:
			return fmt.Errorf("line %d is not a table, chain, rule or COMMIT: %q", i+1, line)
		}
	}
	return nil
}

func printable(line string) error {
	for _, c := range []byte(line) {
		if c < 0x20 || c > 0x7e {
			return fmt.Errorf("byte %#x", c)
		}
	}
	return nil
}

// Seeds.

func wpJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func wpGNP(name string, spec map[string]any) write {
	return write{resource.ResourcePrefix + "globalnetworkpolicies/" + name, wpJSON(map[string]any{"kind": "GlobalNetworkPolicy",
		"apiVersion": "projectcalico.org/v3", "metadata": map[string]any{"name": name}, "spec": spec})}
}

func wpNP(name string, spec map[string]any) write {
	return write{resource.ResourcePrefix + "networkpolicies/" + wpNS + "/" + name, wpJSON(map[string]any{"kind": "NetworkPolicy",
		"apiVersion": "projectcalico.org/v3", "metadata": map[string]any{"name": name, "namespace": wpNS}, "spec": spec})}
}

// wpEndpoint is a WorkloadEndpoint of node (no '-' in any part), with the
// spec's fields changed by change.
func wpEndpoint(node, workload, port, iface, ip string, labels map[string]string, change func(spec map[string]any)) write {
	name := node + "-openstack-" + workload + "-" + port
	l := map[string]string{"projectcalico.org/namespace": wpNS, "projectcalico.org/orchestrator": "openstack"}
	for k, v := range labels {
		l[k] = v
	}
	spec := map[string]any{"orchestrator": "openstack", "workload": workload, "endpoint": port, "node": node,
		"interfaceName": iface, "mac": "fa:16:3e:00:00:01", "ipNetworks": []string{ip + "/32"}}
	if change != nil {
		change(spec)
	}
	return write{resource.ResourcePrefix + "workloadendpoints/" + wpNS + "/" + name, wpJSON(map[string]any{"kind": "WorkloadEndpoint",
		"apiVersion": "projectcalico.org/v3", "metadata": map[string]any{"name": name, "namespace": wpNS, "labels": l}, "spec": spec})}
}

const (
	wpWeb     = "sg.projectcalico.org/openstack-web"
	wpClients = "sg.projectcalico.org/openstack-clients"
)

func wpSel(label string) string { return "has(" + label + ")" }

// wpCloud is a small cloud using most of what a rule can say: two local
// VMs (one dual-stack with a floating IP, a spoofing exemption and a
// profile), a remote one, security-group policies with ports, ranges,
// ICMP, nets and selectors, a global Deny in a tier of its own with an
// annotation, Log and Pass, network sets, a profile, a host endpoint.
func wpCloud() []write {
	allowFrom := func(ports ...any) map[string]any {
		return map[string]any{"action": "Allow", "protocol": "TCP", "destination": map[string]any{"ports": ports},
			"source": map[string]any{"selector": wpSel(wpClients), "namespaceSelector": "all()"}}
	}
	return []write{
		{resource.ResourcePrefix + "tiers/default", `{"kind":"Tier","metadata":{"name":"default"},"spec":{"order":1000000,"defaultAction":"Deny"}}`},
		{resource.ResourcePrefix + "tiers/fuzztier", `{"kind":"Tier","metadata":{"name":"fuzztier"},"spec":{"order":100,"defaultAction":"Pass"}}`},
		wpEndpoint(wpHost, "vm1", "port1", "tapvm1", "198.18.20.1", map[string]string{wpWeb: "web"}, func(s map[string]any) {
			s["ipNetworks"] = []string{"198.18.20.1/32", "2001:db8:20::1/128"}
			s["ipNATs"] = []any{map[string]any{"internalIP": "198.18.20.1", "externalIP": "198.19.20.1"}}
			s["allowSpoofedSourcePrefixes"] = []string{"198.18.21.0/24"}
			s["profiles"] = []string{"fuzzprofile"}
		}),
		wpEndpoint(wpHost, "vm2", "port2", "tapvm2", "198.18.20.2", map[string]string{wpClients: "clients"}, nil),
		wpEndpoint("otherhost", "vm3", "port3", "tapvm3", "198.18.30.3", map[string]string{wpClients: "clients"}, nil),
		wpNP("ossg.default.web", map[string]any{"selector": wpSel(wpWeb),
			"ingress": []any{allowFrom(80, "8000:8080"),
				map[string]any{"action": "Allow", "protocol": "ICMP", "icmp": map[string]any{"type": 8, "code": 0}},
				map[string]any{"action": "Allow", "protocol": "UDP", "destination": map[string]any{"notPorts": []any{53}},
					"source": map[string]any{"nets": []string{"100.64.0.0/10"}, "notNets": []string{"100.64.1.0/24"}}},
				map[string]any{"action": "Allow", "ipVersion": 6, "protocol": "TCP", "source": map[string]any{"nets": []string{"2001:db8::/32"}}},
				map[string]any{"action": "Allow", "source": map[string]any{"selector": "role == 'partners'"}}},
			"egress": []any{map[string]any{"action": "Allow", "ipVersion": 4}, map[string]any{"action": "Allow", "ipVersion": 6}}}),
		wpGNP("fuzztier.deny", map[string]any{"tier": "fuzztier", "order": 10, "selector": "all()",
			"ingress": []any{map[string]any{"action": "Log", "protocol": "TCP", "destination": map[string]any{"ports": []any{23}}},
				map[string]any{"action": "Deny", "protocol": "TCP", "destination": map[string]any{"ports": []any{23}},
					"metadata": map[string]any{"annotations": map[string]string{"why": "telnet is closed"}}},
				map[string]any{"action": "Pass"}},
			"egress": []any{map[string]any{"action": "Deny", "destination": map[string]any{"notSelector": wpSel(wpWeb)}, "protocol": "UDP"},
				map[string]any{"action": "Allow", "destination": map[string]any{"selector": "role == 'partners'"}},
				map[string]any{"action": "Pass"}}}),
		{resource.ResourcePrefix + "profiles/fuzzprofile", `{"kind":"Profile","metadata":{"name":"fuzzprofile"},"spec":{"ingress":[{"action":"Deny"}],"egress":[{"action":"Allow"}],"labelsToApply":{"from-profile":"yes"}}}`},
		{resource.ResourcePrefix + "globalnetworksets/partners", `{"kind":"GlobalNetworkSet","metadata":{"name":"partners","labels":{"role":"partners"}},"spec":{"nets":["198.19.0.0/16","0.0.0.0/0","2001:db8:99::/48"]}}`},
		{resource.ResourcePrefix + "networksets/" + wpNS + "/office", `{"kind":"NetworkSet","metadata":{"name":"office","namespace":"` + wpNS + `","labels":{"role":"partners"}},"spec":{"nets":["100.64.8.0/24"]}}`},
		{resource.ResourcePrefix + "hostendpoints/fuzzhost-eth0", `{"kind":"HostEndpoint","metadata":{"name":"fuzzhost-eth0","labels":{"sg.projectcalico.org/openstack-clients":"clients"}},"spec":{"node":"fuzzhost","interfaceName":"eth0","expectedIPs":["198.18.0.11"]}}`},
	}
}

// wholePathSeeds are the cloud alone and with each hostile shape added.
func wholePathSeeds() [][]write {
	cloud := wpCloud()
	plus := func(ws ...write) []write { return append(append([]write(nil), cloud...), ws...) }
	allow81 := map[string]any{"selector": wpSel(wpWeb), "order": 1, "ingress": []any{map[string]any{"action": "Allow",
		"protocol": "TCP", "destination": map[string]any{"ports": []any{81}}}}}
	bad := func(name string) write { return wpGNP(name, allow81) }
	rule := func(r map[string]any) map[string]any {
		return map[string]any{"selector": wpSel(wpWeb), "ingress": []any{r}}
	}
	seeds := [][]write{cloud,
		plus(bad("allow web")), plus(bad(`allow"web`)), plus(bad("v\n-I FORWARD 1 -j ACCEPT\n#")), plus(bad("v\x1b[31m\x07\t\x00x")),
		plus(bad("аllow-web")), plus(bad("v\xff\xfe")), plus(bad(strings.Repeat("a", 250))), plus(bad("..")), plus(bad("deny%2dbad")),
		plus(bad(strings.Repeat("b", 63))), plus(bad("default.x"), bad("x")),
		plus(wpNP("ossg.default.x\ny", allow81)),
		plus(write{resource.ResourcePrefix + "globalnetworkpolicies/hostile", `{"kind":"GlobalNetworkPolicy","spec":{"selector":"`}),
		plus(write{resource.ResourcePrefix + "globalnetworkpolicies/hostile", "null"}),
		plus(wpGNP("annotated", rule(map[string]any{"action": "Allow", "metadata": map[string]any{"annotations": map[string]string{
			"note": `x" -j ACCEPT -m comment --comment "y`, "note2": "'; -j ACCEPT #", "nl": "a\n-A FORWARD -j ACCEPT"}}}))),
		plus(wpGNP("deny-sel", rule(map[string]any{"action": "Deny", "source": map[string]any{"selector": "has(("}}))),
		plus(wpGNP("deep", rule(map[string]any{"action": "Deny", "source": map[string]any{
			"selector": strings.Repeat("(", 20) + wpSel(wpClients) + strings.Repeat(")", 20)}}))),
		plus(wpGNP("too-deep", rule(map[string]any{"action": "Deny", "source": map[string]any{
			"selector": strings.Repeat("(", 100_000) + "has(a)" + strings.Repeat(")", 100_000)}}))),
		plus(wpGNP("ports", rule(map[string]any{"action": "Allow", "protocol": "TCP", "destination": map[string]any{"ports": []any{"81 -j ACCEPT", "90:81", 70000}}}))),
		plus(wpGNP("nets", rule(map[string]any{"action": "Allow", "source": map[string]any{"nets": []string{"10.0.0.0/8\n-j ACCEPT", "300.1.1.1/8"}}}))),
		plus(wpGNP("icmp", rule(map[string]any{"action": "Allow", "protocol": "ICMP", "icmp": map[string]any{"type": 300}}))),
		plus(wpGNP("literals", rule(map[string]any{"action": "Deny", "source": map[string]any{
			"selector": `a == "x'y" || b in {"1", "2"} || c starts with "-j" || d contains " " || !has(e)`}}))),
	}
	for _, iface := range []string{"eth0", "lo", "tap+", "tap*", "tap x\n-j ACCEPT", "", "tap0123456789abcdef", "tapvm2"} {
		seeds = append(seeds, plus(wpEndpoint(wpHost, "vm9", "port9", iface, "198.18.20.9", map[string]string{wpWeb: "web"}, nil)))
	}
	for _, change := range []func(s map[string]any){
		func(s map[string]any) { s["allowSpoofedSourcePrefixes"] = []string{"0.0.0.0/0", "::/0"} },
		func(s map[string]any) {
			s["ipNetworks"] = []string{"198.18.20.9/32", "198.18.0.1/32", "0.0.0.0/0", "::/0"}
		},
		func(s map[string]any) {
			s["ipNATs"] = []any{map[string]any{"internalIP": "198.18.20.9", "externalIP": "198.18.0.1"}}
		},
		func(s map[string]any) { s["mac"] = "ff:ff:ff:ff:ff:ff" },
		func(s map[string]any) { s["mac"] = "fa:16:3e:00:00:09\nlladdr 00:00:00:00:00:00" },
		func(s map[string]any) { s["workload"], s["endpoint"] = "../../x/y%2f", "e/../../z" },
		func(s map[string]any) { s["node"] = "otherhost" },
		func(s map[string]any) { s["profiles"] = []string{"bad name\"x"} },
	} {
		seeds = append(seeds, plus(wpEndpoint(wpHost, "vm9", "port9", "tapvm9", "198.18.20.9", map[string]string{wpWeb: "web"}, change)))
	}
	// The remote endpoint in unusual but equivalent JSON spellings.
	remote := wpEndpoint("otherhost", "vm3", "port3", "tapvm3", "198.18.30.3", map[string]string{wpClients: "clients"}, nil)
	for _, r := range []*strings.Replacer{
		strings.NewReplacer(`"spec":`, `"sp\u0065c":`, `"labels":`, `"l\u0061bels":`, `"ipNetworks":`, `"ipN\u0065tworks":`),
		strings.NewReplacer(`"spec":`, `"Spec":`, `"metadata":`, `"METADATA":`),
		strings.NewReplacer(`"ipNetworks":`, `"ipNetworks":["198.18.30.250/32"],"ipNetworks":`),
	} {
		seeds = append(seeds, plus(write{remote.key, r.Replace(remote.value)}))
	}
	return seeds
}

// TestWholePathProgramsTheCloud holds the fuzz harness to doing real
// work: the seed cloud's chains and set members reach the kernel, every
// script went through the checks, and the deletion leaves no endpoint
// chain behind.
func TestWholePathProgramsTheCloud(t *testing.T) {
	netlab.Require(t)
	ns := netlab.NewNS(t, "wpcloud")
	wholePath(t, ns, wpCloud(), func() {
		filter, _ := ns.Exec("iptables-legacy-save", "-t", "filter")
		for _, want := range []string{":cali-tw-tapvm1 ", ":cali-fw-tapvm2 ", "--dports 80,8000:8080", "--icmp-type 8/0",
			"why=telnet is closed", "-j cali-pri-fuzzprofile"} {
			if !strings.Contains(filter, want) {
				t.Errorf("IPv4 filter table lacks %q:\n%s", want, filter)
			}
		}
		filter6, _ := ns.Exec("ip6tables-legacy-save", "-t", "filter")
		if !strings.Contains(filter6, ":cali-tw-tapvm1 ") {
			t.Errorf("IPv6 filter table lacks the dual-stack VM's chain:\n%s", filter6)
		}
		sets, _ := ns.Exec("ipset", "save")
		for _, want := range []string{" 198.18.30.3", " 100.64.8.0/24", " 198.19.0.0/16", " 0.0.0.0/1", " 2001:db8:99::/48"} {
			if !strings.Contains(sets, want) {
				t.Errorf("the sets lack%s (the remote client, the network sets):\n%s", want, sets)
			}
		}
	})
	filter, _ := ns.Exec("iptables-legacy-save", "-t", "filter")
	if strings.Contains(filter, "tapvm") {
		t.Errorf("endpoint chains left after everything was deleted:\n%s", filter)
	}
}

// The structure check must be able to fail: each script below is what a
// value that broke out of its quotes or its line would make.
func TestCheckRestoreScript(t *testing.T) {
	good := "*filter\n:cali-pi-x - [0:0]\n-F cali-pi-x\n-A cali-pi-x -m comment --comment \"cali:0123456789abcdef\" -j ACCEPT\nCOMMIT\n"
	if err := checkRestoreScript(good); err != nil {
		t.Fatalf("a good script refused: %v", err)
	}
	for _, bad := range []string{
		"*filter\n-A cali-pi-x -m comment --comment \"cali:0123456789abcdef\" -j LOG --log-prefix \"x\"\n-I FORWARD 1 -j ACCEPT\n#: \"\nCOMMIT\n",
		"*filter\n-A cali-pi-x -m comment --comment \"cali:0123456789abcdef\" -m comment --comment \"a\"b\" -j ACCEPT\nCOMMIT\n",
		"*filter\n-A cali-pi-x -m comment --comment \"cali:0123456789abcdef\" -m comment --comment \"a\rb\" -j ACCEPT\nCOMMIT\n",
		"*filter\n:cali-pi-x y - [0:0]\nCOMMIT\n",
		"*filter\n-A FORWARD -j ACCEPT\nCOMMIT\n",
		"*filter\n# a comment line\nCOMMIT\n",
		"*filter\nCOMMIT",
		"*filter\n-A cali-pi-\xc3\xa9 -m comment --comment \"cali:0123456789abcdef\" -j ACCEPT\nCOMMIT\n",
	} {
		if checkRestoreScript(bad) == nil {
			t.Errorf("a broken script passed:\n%s", bad)
		}
	}
}
