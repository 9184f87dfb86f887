package lab

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"ocelot/internal/netlab"
)

// Resource keys and values as the Neutron driver and calicoctl write them.

const root = "/calico/resources/v3/projectcalico.org/"

// ResourceRoot is where the Calico v3 resources live.
const ResourceRoot = root

// Namespace is the region's namespace, as the Neutron driver names it.
func Namespace(region string) string {
	if region == "" {
		return "openstack"
	}
	return "openstack-region-" + region
}

func escape(s string) string { return strings.ReplaceAll(s, "-", "--") }

// EndpointKey is the key of a VM's port.
func (vm *VM) EndpointKey() string {
	return root + "workloadendpoints/" + Namespace(vm.Region) + "/" + escape(vm.Host.Name) + "-openstack-" + escape(vm.UUID) + "-" + escape(vm.Port)
}

// pyJSON renders JSON with Python's separators (", " and ": "), as the
// Neutron driver writes it.
func pyJSON(v any) string {
	b, _ := json.Marshal(v)
	var out strings.Builder
	inString := false
	for i := 0; i < len(b); i++ {
		c := b[i]
		out.WriteByte(c)
		switch {
		case c == '"' && (i == 0 || b[i-1] != '\\'):
			inString = !inString
		case !inString && (c == ',' || c == ':'):
			out.WriteByte(' ')
		}
	}
	return out.String()
}

// EndpointJSON is the WorkloadEndpoint the Neutron driver writes for the
// VM's port in its security groups (sg ID -> name).
func (vm *VM) EndpointJSON() string {
	ns := Namespace(vm.Region)
	labels := map[string]string{
		"projectcalico.org/namespace":              ns,
		"projectcalico.org/orchestrator":           "openstack",
		"projectcalico.org/openstack-project-id":   "2f8b6e0c4d9a4b1e8c3f5a7d9e1b3c5d",
		"projectcalico.org/openstack-network-name": "lab-net",
	}
	for id, name := range vm.SGs {
		labels["sg.projectcalico.org/openstack-"+id] = name
		if name != "" {
			labels["sg-name.projectcalico.org/openstack-"+name] = id
		}
	}
	name := escape(vm.Host.Name) + "-openstack-" + escape(vm.UUID) + "-" + escape(vm.Port)
	spec := map[string]any{"orchestrator": "openstack", "workload": vm.UUID, "node": vm.Host.Name, "endpoint": vm.Port,
		"interfaceName": vm.HostSide, "mac": vm.MAC, "ipv4Gateway": "169.254.1.1", "ipNetworks": []string{vm.IP + "/32"}, "allowedIps": []string{}}
	if vm.QoS != nil {
		spec["qosControls"] = vm.QoS
	}
	return pyJSON(map[string]any{
		"kind": "WorkloadEndpoint", "apiVersion": "projectcalico.org/v3",
		"metadata": map[string]any{"name": name, "namespace": ns, "uid": "lab-" + vm.Port, "creationTimestamp": "2026-08-22T10:00:00Z",
			"labels": labels, "annotations": map[string]string{"openstack.projectcalico.org/network-id": "8f2e4d6c-1a3b-4c5d-9e7f-0a1b2c3d4e5f"}},
		"spec": spec,
	})
}

// Plug writes the VM's endpoint in its security groups.
func (vm *VM) Plug(sgs map[string]string) {
	vm.SGs = sgs
	vm.Lab().Put(vm.EndpointKey(), vm.EndpointJSON())
}

// Unplug deletes the VM's endpoint.
func (vm *VM) Unplug() { vm.Lab().Delete(vm.EndpointKey()) }

// SGPolicyKey is the key of a security group's policy in a region.
func SGPolicyKey(region, sgID string) string {
	return root + "networkpolicies/" + Namespace(region) + "/ossg.default." + sgID
}

// SGRule is one Neutron security-group rule in its Calico form.
type SGRule map[string]any

// AllowTCPFromGroup is "ingress TCP port from remote group", as the driver
// translates it.
func AllowTCPFromGroup(port int, remoteSG string) SGRule {
	return SGRule{"action": "Allow", "ipVersion": 4, "protocol": 6, "destination": map[string]any{"ports": []int{port}},
		"source": map[string]any{"selector": "has(sg.projectcalico.org/openstack-" + remoteSG + ")"}}
}

// SGPolicyJSON is the NetworkPolicy the Neutron driver writes for a group:
// the given ingress rules, Neutron's default egress (allow all).
func SGPolicyJSON(region, sgID string, ingress ...SGRule) string {
	if ingress == nil {
		ingress = []SGRule{}
	}
	return pyJSON(map[string]any{
		"kind": "NetworkPolicy", "apiVersion": "projectcalico.org/v3",
		"metadata": map[string]any{"name": "ossg.default." + sgID, "namespace": Namespace(region), "uid": "lab-" + sgID,
			"creationTimestamp": "2026-08-22T09:59:00Z"},
		"spec": map[string]any{"ingress": ingress, "egress": []SGRule{{"action": "Allow", "ipVersion": 4}, {"action": "Allow", "ipVersion": 6}},
			"selector": "has(sg.projectcalico.org/openstack-" + sgID + ")"},
	})
}

// PutSG writes a security group's policy.
func (l *Lab) PutSG(region, sgID string, ingress ...SGRule) {
	l.Put(SGPolicyKey(region, sgID), SGPolicyJSON(region, sgID, ingress...))
}

// The security groups of the guide's scenario.
const (
	SGWeb     = "a7734e61-b545-452d-a3cd-0189cbd9747a" // the web VMs, in RegionOne
	SGClients = "85cc3048-abc3-43cc-89b3-377341426ac5" // the clients, in RegionTwo
	SGOther   = "0f9e8d7c-6b5a-4948-8372-615049382716" // a control group, in RegionTwo
)

// PlugGuideVMs writes the guide's security groups (no ingress yet) and
// plugs its three VMs into them: web (RegionOne), client and other
// (RegionTwo).
func (l *Lab) PlugGuideVMs(web, client, other *VM) {
	l.PutSG("RegionOne", SGWeb)
	l.PutSG("RegionTwo", SGClients)
	l.PutSG("RegionTwo", SGOther)
	web.Plug(map[string]string{SGWeb: "web"})
	client.Plug(map[string]string{SGClients: "clients"})
	other.Plug(map[string]string{SGOther: "other"})
}

// GuidePolicyYAML is the policy of Calico's "Multiple Regions" guide:
// allow TCP 80 to the web group from the clients group of any region.
func GuidePolicyYAML(region, webSG, clientsSG string) string {
	return fmt.Sprintf(`apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata:
  name: allow-tcp-80
  namespace: %s
spec:
  selector: has(sg.projectcalico.org/openstack-%s)
  types:
  - Ingress
  ingress:
  - action: Allow
    protocol: TCP
    source:
      selector: has(sg.projectcalico.org/openstack-%s)
      namespaceSelector: all()
    destination:
      ports:
      - 80
`, Namespace(region), webSG, clientsSG)
}

// GuidePolicyKey is where calicoctl stores the guide's policy.
func GuidePolicyKey(region string) string {
	return root + "networkpolicies/" + Namespace(region) + "/allow-tcp-80"
}

// GuidePolicyJSON is the guide's policy as calicoctl stores it; with
// crossRegion false, without the namespaceSelector (the guide calls it
// critical).
func GuidePolicyJSON(region, webSG, clientsSG string, crossRegion bool) string {
	source := map[string]any{"selector": "has(sg.projectcalico.org/openstack-" + clientsSG + ")"}
	if crossRegion {
		source["namespaceSelector"] = "all()"
	}
	b, _ := json.Marshal(map[string]any{
		"kind": "NetworkPolicy", "apiVersion": "projectcalico.org/v3",
		"metadata": map[string]any{"name": "allow-tcp-80", "namespace": Namespace(region), "uid": "lab-allow-tcp-80",
			"creationTimestamp": "2026-08-22T11:00:00Z", "labels": map[string]string{"projectcalico.org/tier": "default"},
			"annotations": map[string]string{"projectcalico.org/metadata": `{"name":"allow-tcp-80"}`}},
		"spec": map[string]any{"tier": "default", "selector": "has(sg.projectcalico.org/openstack-" + webSG + ")", "types": []string{"Ingress"},
			"ingress": []any{map[string]any{"action": "Allow", "protocol": "TCP", "source": source, "destination": map[string]any{"ports": []int{80}}}}},
	})
	return string(b)
}

// Bootstrap writes what the Neutron driver and calicoctl write once: the
// cluster information (datastore ready), the default FelixConfiguration
// (endpoint reporting on, tap prefix), and the default tiers.
func (l *Lab) Bootstrap() {
	l.Put(root+"clusterinformations/default", `{"kind":"ClusterInformation","apiVersion":"projectcalico.org/v3","metadata":{"name":"default"},"spec":{"clusterGUID":"5e0b8f2a9c7d4e1fa3b6c8d0e2f4a6b8","clusterType":"openstack","datastoreReady":true}}`)
	l.Put(root+"felixconfigurations/default", `{"kind": "FelixConfiguration", "apiVersion": "projectcalico.org/v3", "metadata": {"name": "default"}, "spec": {"endpointReportingEnabled": true, "interfacePrefix": "tap"}}`)
	for name, spec := range map[string]string{"default": `{"order":1000000,"defaultAction":"Deny"}`,
		"kube-admin": `{"order":1000,"defaultAction":"Pass"}`, "kube-baseline": `{"order":10000000,"defaultAction":"Pass"}`} {
		l.Put(root+"tiers/"+name, `{"kind":"Tier","apiVersion":"projectcalico.org/v3","metadata":{"name":"`+name+`"},"spec":`+spec+`}`)
	}
}

// SortedKeys lists a map's keys in order (for stable output).
func SortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// RemoteEndpoint is the key and value the Neutron driver writes for the
// n-th port of a VM on another host (no VM behind it: it feeds IP sets).
func RemoteEndpoint(region, host string, n int, ip string, sgs map[string]string) (key, value string) {
	vm := &VM{VM: &netlab.VM{IP: ip, MAC: fmt.Sprintf("fa:16:3e:99:%02x:%02x", n>>8, n&255), HostSide: fmt.Sprintf("tap%08x-99", n)},
		Host: &Host{Name: host}, UUID: fmt.Sprintf("%08x-9999-4999-8999-%012x", n, n), Port: fmt.Sprintf("%08x-9999-4999-9999-%012x", n, n),
		SGs: sgs, Region: region}
	return vm.EndpointKey(), vm.EndpointJSON()
}
