package fvtests

import (
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"ocelot/fv-tests/lab"
	"ocelot/internal/embedetcd"
	"ocelot/internal/netlab"
)

// Host protection with host endpoints, on one lab: the host's uplink
// (eth0) is a host endpoint; traffic comes from the core (this process's
// namespace), which also runs etcd.

func gnpJSON(name string, spec map[string]any) string {
	b, _ := json.Marshal(map[string]any{"kind": "GlobalNetworkPolicy", "apiVersion": "projectcalico.org/v3",
		"metadata": map[string]any{"name": name, "uid": "lab-" + name, "creationTimestamp": "2026-08-22T12:00:00Z"}, "spec": spec})
	return string(b)
}

func gnpKey(name string) string { return lab.ResourceRoot + "globalnetworkpolicies/" + name }

// fromCore reports whether the core reaches addr over TCP (an echo round
// trip) within timeout.
func fromCore(addr string, timeout time.Duration) bool {
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return false
	}
	defer c.Close()
	return netlab.Echoes(c, timeout)
}

// dials reports whether a TCP connection from ns to addr is accepted.
func dials(ns *netlab.NS, addr string, timeout time.Duration) bool {
	c, err := netlab.Dial(ns, addr, timeout)
	if err == nil {
		c.Close()
	}
	return err == nil
}

func TestHostEndpoints(t *testing.T) {
	// etcd on its default client port, which the default failsafe ports
	// cover (the lab's usual etcd picks a free port).
	netlab.Require(t)
	netlab.Run(t, "ip", "link", "set", "lo", "up")
	if out, _ := netlab.Try("ip", "addr", "show", "dev", "lo"); !strings.Contains(out, lab.EtcdAddr+"/32") {
		netlab.Run(t, "ip", "addr", "add", lab.EtcdAddr+"/32", "dev", "lo")
	}
	srv, err := embedetcd.Start(t.TempDir(), embedetcd.Options{Host: lab.EtcdAddr, Port: 2379})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	l := newLabWithEtcd(t, srv.ClientURL)
	h := l.AddHost("hep-compute1", "RegionOne")
	web := h.AddVM("web", 5)
	web.Serve(80, 8080)
	const sg = "5d1c6a2e-8f3b-4c7d-9e0a-1b2c3d4e5f60"
	l.PutSG("RegionOne", sg, lab.SGRule{"action": "Allow", "protocol": "TCP", "destination": map[string]any{"ports": []int{80}},
		"source": map[string]any{"nets": []string{"198.18.0.0/15"}}})
	web.Plug(map[string]string{sg: "web"})
	// Another VM on the host: its traffic to web never crosses eth0.
	const sgClient = "6e2d7b3f-9a4c-4d8e-8f1b-2c3d4e5f6a71"
	client := h.AddVM("client", 6)
	l.PutSG("RegionOne", sgClient)
	client.Plug(map[string]string{sgClient: "client"})
	for _, p := range []int{22, 7000, 7001, 8080} {
		netlab.Serve(t, h.NS, fmt.Sprintf("%s:%d", h.Addr, p))
	}
	// A server in the core, for the host's outbound traffic.
	core, err := net.Listen("tcp", lab.EtcdAddr+":7003")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { core.Close() })
	go func() {
		for {
			c, err := core.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	host := func(port int) string { return fmt.Sprintf("%s:%d", h.Addr, port) }
	connects := func(what, addr string) {
		t.Helper()
		netlab.Eventually(t, what+" connects", wait, func() bool { return fromCore(addr, time.Second) })
	}
	isBlocked := func(what, addr string) {
		t.Helper()
		netlab.Eventually(t, what+" blocked", wait, func() bool { return !fromCore(addr, 500*time.Millisecond) })
	}
	ready(t, h)
	// Before any host endpoint, everything on the host is open: the
	// controls for the blocks below, over the same paths.
	connects("host:7000 before", host(7000))
	connects("web:80", web.IP+":80")
	eventuallyConnects(t, client, web, 80)
	blocked(t, client, web, 8080)
	if !dials(h.NS, lab.EtcdAddr+":7003", time.Second) {
		t.Fatal("the host cannot reach the core's 7003 before any host endpoint")
	}

	// 1. eth0 becomes a host endpoint (by its address); its policy allows
	// 7001 and the lab's health and metrics ports in, and nothing out.
	hepKey := lab.ResourceRoot + "hostendpoints/hep-compute1-eth0"
	hepJSON := func(spec string) string {
		return `{"kind":"HostEndpoint","apiVersion":"projectcalico.org/v3","metadata":{"name":"hep-compute1-eth0","labels":{"role":"compute"}},"spec":` + spec + `}`
	}
	l.Put(hepKey, hepJSON(`{"node":"hep-compute1","expectedIPs":["`+h.Addr+`"]}`))
	l.Put(gnpKey("host-in"), gnpJSON("host-in", map[string]any{"selector": "role == 'compute'", "types": []string{"Ingress", "Egress"},
		"ingress": []any{map[string]any{"action": "Allow", "protocol": "TCP", "destination": map[string]any{"ports": []int{7001, 9091, 9099}}}}}))
	isBlocked("host:7000 (host endpoint policy)", host(7000))
	connects("host:7001 (allowed)", host(7001))
	connects("host:22 (failsafe SSH)", host(22))
	netlab.Eventually(t, "host -> core:7003 blocked (no egress policy)", wait, func() bool { return !dials(h.NS, lab.EtcdAddr+":7003", 500*time.Millisecond) })
	if !dials(h.NS, lab.EtcdAddr+":2379", time.Second) {
		t.Error("the host cannot reach etcd (failsafe out)")
	}
	statusKey := "/calico/felix/v1/host/hep-compute1/endpoint/hep-compute1-eth0"
	netlab.Eventually(t, "host endpoint status up", wait, func() bool { v, _ := l.Get(statusKey); return v == `{"status":"up"}` })
	// The agent still follows etcd through the failsafe: a change made
	// now takes effect.
	l.Put(gnpKey("host-in"), gnpJSON("host-in", map[string]any{"selector": "role == 'compute'", "types": []string{"Ingress", "Egress"},
		"ingress": []any{map[string]any{"action": "Allow", "protocol": "TCP", "destination": map[string]any{"ports": []int{7000, 7001, 9091, 9099}}}}}))
	connects("host:7000 after the policy allows it", host(7000))
	// VM traffic forwarded through the host endpoint still follows the
	// VM's policy only (no applyOnForward policy).
	connects("web:80 through the host endpoint", web.IP+":80")
	if fromCore(web.IP+":8080", 700*time.Millisecond) {
		t.Error("web:8080 connected; the VM's security group allows only 80")
	}

	// 2. A doNotTrack policy allows 8080 on every endpoint it selects
	// (all(): the host endpoint and, by their labels, the VMs). The host's
	// 8080 opens; web's stays closed to client, whose flow does not cross
	// the host endpoint and would be allowed were the policy applied to
	// web as a normal one: doNotTrack never governs a VM.
	isBlocked("host:8080 before the doNotTrack policy", host(8080))
	l.Put(gnpKey("untracked-8080"), gnpJSON("untracked-8080", map[string]any{"selector": "all()", "doNotTrack": true, "applyOnForward": true,
		"types":   []string{"Ingress", "Egress"},
		"ingress": []any{map[string]any{"action": "Allow", "protocol": "TCP", "destination": map[string]any{"ports": []int{8080}}}},
		"egress":  []any{map[string]any{"action": "Allow", "protocol": "TCP", "source": map[string]any{"ports": []int{8080}}}}}))
	connects("host:8080 (doNotTrack allow)", host(8080))
	blocked(t, client, web, 8080)
	eventuallyConnects(t, client, web, 80) // the control, over the same path
	if fromCore(web.IP+":8080", 700*time.Millisecond) {
		t.Error("core -> web:8080 connected: the doNotTrack policy governed the VM")
	}
	l.Delete(gnpKey("untracked-8080"))
	isBlocked("host:8080 after the doNotTrack policy went", host(8080))

	// 3. A floating IP for web; a preDNAT policy denies TCP 80 to the
	// floating IP. It sees the destination before DNAT: the floating IP is
	// blocked, the VM's own address on the same port is not.
	fip := h.VMAddr(200)
	var ep map[string]any
	if err := json.Unmarshal([]byte(web.EndpointJSON()), &ep); err != nil {
		t.Fatal(err)
	}
	ep["spec"].(map[string]any)["ipNATs"] = []any{map[string]any{"internalIP": web.IP, "externalIP": fip}}
	b, _ := json.Marshal(ep)
	l.Put(web.EndpointKey(), string(b))
	connects("web's floating IP :80", fip+":80")
	l.Put(gnpKey("prednat-fip"), gnpJSON("prednat-fip", map[string]any{"selector": "role == 'compute'", "preDNAT": true, "applyOnForward": true,
		"types":   []string{"Ingress"},
		"ingress": []any{map[string]any{"action": "Deny", "protocol": "TCP", "destination": map[string]any{"nets": []string{fip + "/32"}, "ports": []int{80}}}}}))
	isBlocked("floating IP :80 (preDNAT deny)", fip+":80")
	connects("web's own address :80 (same VM, same port)", web.IP+":80")

	// 4. The host endpoint turns invalid: the host stays closed but for
	// the failsafes (an open interface would be the wrong way to fail).
	l.Put(hepKey, hepJSON(`{"node":"hep-compute1","interfaceName":"eth0 ","expectedIPs":["`+h.Addr+`"]}`))
	isBlocked("host:7001 with the host endpoint invalid", host(7001))
	connects("host:22 (failsafe) with the host endpoint invalid", host(22))
	// Deleted: the interface is not policed any more.
	l.Delete(hepKey)
	connects("host:8080 without a host endpoint", host(8080))
	netlab.Eventually(t, "host endpoint status deleted", wait, func() bool { v, _ := l.Get(statusKey); return v == "" })
}
