package lab

import (
	"context"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"ocelot/internal/netlab"
)

// Live migration and QoS controls, as Nova and the Neutron driver drive
// them (docs/design/openstack.md).

// AddClient creates a namespace outside the cloud, linked to the core,
// with one address: a client of the VMs (their traffic crosses the core
// and a host, as from the Internet).
func (l *Lab) AddClient(name, addr string) *netlab.NS { return l.attach(name, addr) }

// LiveMigrationKey is the key of the LiveMigration of a VM's port moving
// to vm's host: named after the destination endpoint, in its region.
func (vm *VM) LiveMigrationKey() string {
	return root + "livemigrations/" + Namespace(vm.Region) + "/" + escape(vm.Host.Name) + "-openstack-" + escape(vm.UUID) + "-" + escape(vm.Port)
}

// LiveMigrationJSON is the LiveMigration the Neutron driver writes for a
// port moving from source's host to target's.
func LiveMigrationJSON(source, target *VM) string {
	ns := Namespace(target.Region)
	id := func(vm *VM) map[string]string {
		return map[string]string{"hostname": vm.Host.Name, "orchestratorID": "openstack", "workloadID": ns + "/" + vm.UUID, "endpointID": vm.Port}
	}
	return pyJSON(map[string]any{"apiVersion": "projectcalico.org/v3", "kind": "LiveMigration",
		"metadata": map[string]any{"name": escape(target.Host.Name) + "-openstack-" + escape(target.UUID) + "-" + escape(target.Port),
			"namespace": ns, "uid": "lab-lm-" + target.Port},
		"spec": map[string]any{"source": map[string]any{"workloadEndpoint": id(source)}, "target": map[string]any{"workloadEndpoint": id(target)}}})
}

// migrationPeer is the name the destination's VM side has until cutover.
const migrationPeer = "migpeer0"

// PrepareMigration plugs the VM's port on dst as Nova does before it
// copies the VM: a tap of the same name, up and with carrier (the paused
// destination VM holds it), whose other end waits in dst's namespace. It
// returns the VM as it will be on dst: the same namespace (its sockets
// survive), port and groups. It writes nothing to etcd.
func (vm *VM) PrepareMigration(dst *Host) *VM {
	t := vm.Lab().T
	t.Helper()
	netlab.Run(t, "ip", "-n", dst.NS.Name, "link", "add", vm.HostSide, "type", "veth", "peer", "name", migrationPeer)
	dst.NS.MustExec(t, "sysctl", "-qw", "net.ipv6.conf."+vm.HostSide+".accept_dad=0")
	netlab.Run(t, "ip", "-n", dst.NS.Name, "link", "set", migrationPeer, "up")
	netlab.Run(t, "ip", "-n", dst.NS.Name, "link", "set", vm.HostSide, "up")
	moved := *vm
	moved.Host = dst
	return &moved
}

// Cutover moves the VM to target's host as a live migration's last step
// does: the source side goes (its tap with it), the VM resumes behind the
// destination's tap with the same MAC and address, and announces itself
// with a gratuitous ARP. Its namespace, and every socket in it, stays.
func (vm *VM) Cutover(target *VM) {
	t := vm.Lab().T
	t.Helper()
	vm.NS.MustExec(t, "ip", "link", "del", "eth0")
	netlab.Run(t, "ip", "-n", target.Host.NS.Name, "link", "set", migrationPeer, "netns", vm.NS.Name)
	vm.NS.MustExec(t, "ip", "link", "set", migrationPeer, "name", "eth0")
	vm.NS.MustExec(t, "ip", "link", "set", "eth0", "address", vm.MAC)
	vm.NS.MustExec(t, "ip", "addr", "add", vm.IP+"/32", "dev", "eth0")
	vm.NS.MustExec(t, "ip", "link", "set", "eth0", "up")
	vm.NS.MustExec(t, "ip", "route", "add", "169.254.1.1", "dev", "eth0", "scope", "link")
	vm.NS.MustExec(t, "ip", "route", "add", "default", "via", "169.254.1.1", "dev", "eth0")
	if err := netlab.SendGARP(vm.NS, "eth0", netip.MustParseAddr(vm.IP)); err != nil {
		t.Fatalf("GARP from %s: %v", vm.Name, err)
	}
}

// Route is a host's route to an address: the interface, protocol and
// metric, or ok false when it has none.
func (h *Host) Route(ip string) (dev string, metric int, ok bool) {
	out, err := h.Exec("ip", "-4", "route", "show", ip+"/32")
	if err != nil {
		return "", 0, false
	}
	f := strings.Fields(out)
	for i := 0; i+1 < len(f); i++ {
		switch f[i] {
		case "dev":
			dev = f[i+1]
		case "metric":
			metric, _ = strconv.Atoi(f[i+1])
		}
	}
	return dev, metric, dev != ""
}

// FollowRoutes stands in for BGP for one address: the core routes ip to
// the host whose own route to it has the lowest metric, as Calico's BIRD
// configuration does (it turns a route's metric into its preference), and
// to nobody (the /24s decide) when no host routes it. It polls the hosts
// every 100 ms, about as BIRD scans the kernel, until the test ends; it
// returns a function that reports the host the core last chose.
func (l *Lab) FollowRoutes(ip string, hosts ...*Host) func() *Host {
	ctx, cancel := context.WithCancel(context.Background())
	var mu sync.Mutex
	var chosen *Host
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			var best *Host
			bestMetric := 0
			for _, h := range hosts {
				if _, m, ok := h.Route(ip); ok && (best == nil || m < bestMetric) {
					best, bestMetric = h, m
				}
			}
			mu.Lock()
			if best != chosen {
				if best == nil {
					netlab.Try("ip", "route", "del", ip+"/32")
				} else {
					netlab.Try("ip", "route", "replace", ip+"/32", "via", best.Addr, "dev", fmt.Sprintf("core-h%d", best.Index))
				}
				chosen = best
			}
			mu.Unlock()
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	l.T.Cleanup(func() { cancel(); <-done; netlab.Try("ip", "route", "del", ip+"/32") })
	return func() *Host { mu.Lock(); defer mu.Unlock(); return chosen }
}

// StatusKey is the key the VM's host writes the VM port's status at.
func (vm *VM) StatusKey() string {
	region := "no-region"
	if vm.Region != "" {
		region = "region-" + vm.Region
	}
	return "/calico/felix/v2/" + region + "/host/" + vm.Host.Name + "/workload/openstack/" + Namespace(vm.Region) + "%2f" + vm.UUID + "/endpoint/" + vm.Port
}
