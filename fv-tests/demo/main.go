package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"ocelot/fv-tests/lab"
	"ocelot/internal/netlab"
)

const (
	sgWeb     = lab.SGWeb
	sgClients = lab.SGClients
	sgOther   = lab.SGOther
)

func main() { os.Exit(netlab.InOwnNetns(run)) }

// demoT gives the lab what it needs of a test: failures abort the demo,
// cleanups run at the end.
type demoT struct {
	cleanups []func()
	failed   bool
}

type abort struct{}

func (d *demoT) Helper()          {}
func (d *demoT) Failed() bool     { return d.failed }
func (d *demoT) Cleanup(f func()) { d.cleanups = append(d.cleanups, f) }
func (d *demoT) Logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
}
func (d *demoT) Fatalf(format string, args ...any) {
	d.failed = true
	fmt.Fprintf(os.Stderr, "demo failed: "+format+"\n", args...)
	panic(abort{})
}

func (d *demoT) close() {
	for i := len(d.cleanups) - 1; i >= 0; i-- {
		d.cleanups[i]()
	}
}

func run() (code int) {
	t := &demoT{}
	defer func() {
		if r := recover(); r != nil {
			if _, ok := r.(abort); !ok {
				panic(r)
			}
			code = 1
		}
		fmt.Println("\nTearing down the lab (namespaces, processes, etcd)...")
		t.close()
	}()
	bin, _ := filepath.Abs("bin/ocelot")
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("%s not found: run 'make demo' (it builds it)", bin)
	}
	dir, _ := os.MkdirTemp("", "ocelot-demo")
	t.Cleanup(func() { os.RemoveAll(dir) })

	title("Ocelot demo: Calico's Multiple Regions guide with OpenStack region names")
	fmt.Println("Starting an etcd shared by both regions, and two compute hosts, each running its own ocelot:")
	l := lab.New(t, dir, bin, "")
	l.Bootstrap()
	r1 := l.AddHost("r1-compute1", "RegionOne")
	r2 := l.AddHost("r2-compute1", "RegionTwo")
	fmt.Printf("  r1-compute1  OpenstackRegion = RegionOne   namespace %s\n", lab.Namespace("RegionOne"))
	fmt.Printf("  r2-compute1  OpenstackRegion = RegionTwo   namespace %s\n", lab.Namespace("RegionTwo"))

	web := r1.AddVM("web (RegionOne, group web)", 5)
	client := r2.AddVM("client (RegionTwo, group clients)", 5)
	other := r2.AddVM("other (RegionTwo, group other)", 6)
	web.Serve(80, 22)
	l.PlugGuideVMs(web, client, other)
	fmt.Printf("\nVMs, written to etcd as the Neutron driver writes them:\n")
	for _, vm := range []*lab.VM{web, client, other} {
		fmt.Printf("  %-36s %s on %s (%s)\n", vm.Name, vm.IP, vm.Host.Name, vm.HostSide)
	}
	for _, h := range []*lab.Host{r1, r2} {
		netlab.Eventually(t, h.Name+" ready", 30*time.Second, h.Ready)
	}

	title("Before the policy: the security groups allow no ingress")
	matrix(web, client, other)

	title("Applying the guide's policy (as calicoctl would store it)")
	fmt.Print(indent(lab.GuidePolicyYAML("RegionOne", sgWeb, sgClients)))
	fmt.Printf("\nstored at %s as:\n%s\n", lab.GuidePolicyKey("RegionOne"), indent(lab.GuidePolicyJSON("RegionOne", sgWeb, sgClients, true)))
	start := time.Now()
	l.Put(lab.GuidePolicyKey("RegionOne"), lab.GuidePolicyJSON("RegionOne", sgWeb, sgClients, true))
	for !client.Connects(web.IP, 80, 50*time.Millisecond) { // a dropped SYN costs the timeout: the next probe starts at once
		if time.Since(start) > 30*time.Second {
			t.Fatalf("the policy did not take effect in 30 s")
		}
	}
	fmt.Printf("\nTCP 80 connected %v after the etcd write (an upper bound: each blocked probe waits 50 ms;\nmake bench-e2e measures the rule itself)\n", time.Since(start).Round(time.Millisecond))

	title("After: RegionTwo's clients reach the web VM on TCP 80, and nothing else does")
	matrix(web, client, other)

	title("Removing namespaceSelector: all() (the guide calls it critical)")
	l.Put(lab.GuidePolicyKey("RegionOne"), lab.GuidePolicyJSON("RegionOne", sgWeb, sgClients, false))
	netlab.Eventually(t, "cross-region access to stop", 30*time.Second, func() bool { return !client.Connects(web.IP, 80, 300*time.Millisecond) })
	fmt.Println("Without it the rule's selector stays in RegionOne's namespace, so RegionTwo's clients are out:")
	matrix(web, client, other)

	title("Status keys the Neutron driver reads (heartbeat with a lease, port status)")
	for _, k := range []string{
		"/calico/felix/v2/region-RegionOne/host/r1-compute1/status",
		"/calico/felix/v2/region-RegionOne/host/r1-compute1/workload/openstack/openstack-region-RegionOne%2f" + web.UUID + "/endpoint/" + web.Port,
	} {
		netlab.Eventually(t, k, 20*time.Second, func() bool { v, _ := l.Get(k); return v != "" })
		v, lease := l.Get(k)
		fmt.Printf("  %s\n    = %s (lease %v)\n", k, v, lease != 0)
	}

	title("Prometheus metrics of r1-compute1 (excerpt, Felix's names)")
	_, body := r1.HTTP(9091, "/metrics")
	for _, line := range strings.Split(body, "\n") {
		for _, name := range []string{"felix_active_local_endpoints", "felix_active_local_policies", "felix_active_local_selectors",
			"felix_cluster_num_hosts", "felix_cluster_num_workload_endpoints", "felix_iptables_restore_calls", "felix_ipset_calls",
			"felix_int_dataplane_initial_resync_time_seconds", "felix_int_dataplane_apply_time_seconds{quantile=\"0.5\"}", "felix_resync_state"} {
			if strings.HasPrefix(line, name+" ") {
				fmt.Println("  " + line)
			}
		}
	}

	title("Why? ocelot explain, asking r1-compute1's agent")
	fmt.Println("What applies to the web VM (its labels, region, policies in order, IP sets, chains):")
	explain(r1, web.HostSide)
	fmt.Println("Why RegionTwo's client is blocked now (the rule's selector stays in RegionOne's namespace):")
	explain(r1, client.IP, web.IP, "tcp/80")
	fmt.Println("With namespaceSelector: all() back, the same flow:")
	l.Put(lab.GuidePolicyKey("RegionOne"), lab.GuidePolicyJSON("RegionOne", sgWeb, sgClients, true))
	netlab.Eventually(t, "cross-region access again", 30*time.Second, func() bool { return client.Connects(web.IP, 80, 300*time.Millisecond) })
	explain(r1, client.IP, web.IP, "tcp/80")
	return 0
}

// explain runs "ocelot explain" against a host's agent and prints the
// command and its answer.
func explain(h *lab.Host, args ...string) {
	out, err := h.Explain(args...)
	fmt.Printf("\n  $ ocelot explain %s\n%s", strings.Join(args, " "), indent(out))
	if err != nil {
		fmt.Printf("  (%v)\n", err)
	}
	fmt.Println()
}

// matrix prints who reaches the web VM on TCP 80 and 22.
func matrix(web *lab.VM, from ...*lab.VM) {
	fmt.Printf("\n  %-36s %-14s %-14s\n", "from \\ to web VM", "TCP 80", "TCP 22")
	for _, vm := range from {
		cell := func(port int) string {
			if vm.Connects(web.IP, port, 500*time.Millisecond) {
				return "connects"
			}
			return "blocked"
		}
		fmt.Printf("  %-36s %-14s %-14s\n", vm.Name, cell(80), cell(22))
	}
	fmt.Println()
}

func title(s string) { fmt.Printf("\n== %s\n\n", s) }

func indent(s string) string {
	return "    " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n    ") + "\n"
}
