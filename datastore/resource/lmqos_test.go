package resource

import (
	"strings"
	"testing"
)

// The LiveMigration the Neutron driver writes for a port moving from
// r1-compute1 to r1-compute2 (Python separators, its field order).
const neutronLM = `{"apiVersion": "projectcalico.org/v3", "kind": "LiveMigration", "metadata": {"name": "r1--compute2-openstack-0b6a7c1e--3f2d--4e5a--9b8c--7d6e5f4a3b21-5c9d0e1f--2a3b--4c4d--8e5f--6a7b8c9d0e1f", "namespace": "openstack-region-RegionOne", "uid": "9e8d7c6b-5a4f-4e3d-8c2b-1a0f9e8d7c6b"}, "spec": {"source": {"workloadEndpoint": {"hostname": "r1-compute1", "orchestratorID": "openstack", "workloadID": "openstack-region-RegionOne/0b6a7c1e-3f2d-4e5a-9b8c-7d6e5f4a3b21", "endpointID": "5c9d0e1f-2a3b-4c4d-8e5f-6a7b8c9d0e1f"}}, "target": {"workloadEndpoint": {"hostname": "r1-compute2", "orchestratorID": "openstack", "workloadID": "openstack-region-RegionOne/0b6a7c1e-3f2d-4e5a-9b8c-7d6e5f4a3b21", "endpointID": "5c9d0e1f-2a3b-4c4d-8e5f-6a7b8c9d0e1f"}}}}`

const lmName = "r1--compute2-openstack-0b6a7c1e--3f2d--4e5a--9b8c--7d6e5f4a3b21-5c9d0e1f--2a3b--4c4d--8e5f--6a7b8c9d0e1f"

func TestDecodeLiveMigration(t *testing.T) {
	v, err := Decode(KindLiveMigration, "openstack-region-RegionOne", lmName, []byte(neutronLM), Options{Hostname: "r1-compute2"})
	if err != nil {
		t.Fatal(err)
	}
	lm := v.(*LiveMigration)
	if lm.UID != "9e8d7c6b-5a4f-4e3d-8c2b-1a0f9e8d7c6b" || lm.Source.Hostname != "r1-compute1" || lm.Target.Hostname != "r1-compute2" {
		t.Errorf("decoded %+v", lm)
	}
	// The identity maps back to the key the driver writes the endpoint at
	// (the source's here: wepName is r1-compute1's endpoint of the port).
	if k := lm.Source.EndpointKey(); k.Namespace != "openstack-region-RegionOne" || k.Name != wepName {
		t.Errorf("source key %v, want %s", k, wepName)
	}
	if k := lm.Target.EndpointKey(); k.Name != lmName {
		t.Errorf("target key %v, want the LiveMigration's own name %s", k, lmName)
	}
	k, ok := ParseKey(ResourcePrefix + "livemigrations/openstack-region-RegionOne/" + lmName)
	if !ok || k.Kind != KindLiveMigration || k.Namespace != "openstack-region-RegionOne" || k.Name != lmName {
		t.Errorf("ParseKey: %v %v", k, ok)
	}

	// A workload-level source (every endpoint of the VM).
	v, err = Decode(KindLiveMigration, "ns", "lm1", []byte(`{"spec":{"source":{"workload":{"hostname":"a","orchestratorID":"openstack","workloadID":"ns/vm"}},`+
		`"target":{"workloadEndpoint":{"hostname":"b","orchestratorID":"openstack","workloadID":"ns/vm","endpointID":"p"}}}}`), Options{})
	if err != nil || v.(*LiveMigration).Source.EndpointID != "" {
		t.Errorf("workload-level source: %+v %v", v, err)
	}
}

func TestLiveMigrationValidation(t *testing.T) {
	id := func(host, wl, ep string) string {
		return `{"hostname":"` + host + `","orchestratorID":"openstack","workloadID":"` + wl + `","endpointID":"` + ep + `"}`
	}
	good := id("b", "ns/vm", "p")
	for _, c := range []struct{ spec, want string }{
		{`{}`, `spec.source: must have exactly one of workload and workloadEndpoint`},
		{`{"source":{"workloadEndpoint":` + id("a", "ns/vm", "p") + `}}`, `spec.target: must have exactly one of selector and workloadEndpoint`},
		{`{"source":{"workloadEndpoint":` + id("a", "ns/vm", "p") + `},"target":{"selector":"vm == 'x'"}}`,
			`spec.target.selector: is not supported: Ocelot follows migrations whose target names a workloadEndpoint (OpenStack)`},
		{`{"source":{"workloadEndpoint":` + id("a b", "ns/vm", "p") + `},"target":{"workloadEndpoint":` + good + `}}`,
			`spec.source.workloadEndpoint.hostname: "a b" must be 1-253 characters of [A-Za-z0-9._-]`},
		// Another region's namespace: not this driver's to migrate.
		{`{"source":{"workloadEndpoint":` + id("a", "other/vm", "p") + `},"target":{"workloadEndpoint":` + good + `}}`,
			`spec.source.workloadEndpoint.workloadID: "other/vm" must be "ns", '/' and 1-253 characters of [A-Za-z0-9._-]`},
		{`{"source":{"workloadEndpoint":` + id("a", "ns/vm", "") + `},"target":{"workloadEndpoint":` + good + `}}`,
			`spec.source.workloadEndpoint.endpointID: "" must be 1-253 characters of [A-Za-z0-9._-]`},
		{`{"source":{"workloadEndpoint":` + good + `},"target":{"workloadEndpoint":` + good + `}}`,
			`spec.target.workloadEndpoint: names the source endpoint itself`},
		{`{"source":{"workloadEndpoint":` + id("a", `ns/vm\n`, "p") + `},"target":{"workloadEndpoint":` + good + `}}`,
			`spec.source.workloadEndpoint.workloadID: "ns/vm\n" must be "ns", '/' and 1-253 characters of [A-Za-z0-9._-]`},
	} {
		_, err := Decode(KindLiveMigration, "ns", "lm1", []byte(`{"spec":`+c.spec+`}`), Options{})
		if err == nil || err.Error() != c.want {
			t.Errorf("%s:\n got %v\nwant %s", c.spec, err, c.want)
		}
	}
	if _, err := Decode(KindLiveMigration, "", "lm1", []byte(`{}`), Options{}); err == nil || !strings.Contains(err.Error(), "must be in a namespace") {
		t.Errorf("no namespace: %v", err)
	}
}

func qosEndpoint(qos string) []byte {
	return []byte(`{"spec":{"ipNetworks":["10.0.0.1"],"interfaceName":"tap1","qosControls":` + qos + `}}`)
}

func TestDecodeQoSControls(t *testing.T) {
	// What the Neutron driver writes for a 10 Mbit/s limit each way, 100
	// pps in, and its connection limit.
	v, err := Decode(KindWorkloadEndpoint, "ns", "host-openstack-vm-port", qosEndpoint(`{"ingressBandwidth": 10000000, "ingressBurst": 4294967296, `+
		`"egressBandwidth": 10000000, "egressPeakrate": 20000000, "egressBurst": 80000, "ingressPacketRate": 100, "ingressPacketBurst": 5, "egressMaxConnections": 10}`), Options{Hostname: "host"})
	if err != nil {
		t.Fatal(err)
	}
	q := v.(*Endpoint).QoS
	want := QoSControls{
		Ingress: QoSDirection{Bandwidth: 10_000_000, Burst: 4294967296, PacketRate: 100, PacketBurst: 5},
		Egress:  QoSDirection{Bandwidth: 10_000_000, Burst: 80_000, Peakrate: 20_000_000, MaxConnections: 10},
	}
	if q == nil || *q != want {
		t.Errorf("qos\n got %+v\nwant %+v", q, want)
	}
	// Defaults: a rate without a burst gets Calico's.
	v, err = Decode(KindWorkloadEndpoint, "ns", "host-openstack-vm-port", qosEndpoint(`{"egressBandwidth":1000000,"egressPacketRate":7}`), Options{Hostname: "host"})
	if q := v.(*Endpoint).QoS; err != nil || q.Egress.Burst != defaultBurst || q.Egress.PacketBurst != defaultPacketBurst {
		t.Errorf("defaults: %+v %v", q, err)
	}
	// Nothing asked for: no controls.
	v, err = Decode(KindWorkloadEndpoint, "ns", "host-openstack-vm-port", qosEndpoint(`{}`), Options{Hostname: "host"})
	if err != nil || v.(*Endpoint).QoS != nil {
		t.Errorf("empty controls: %+v %v", v.(*Endpoint).QoS, err)
	}
	v, _ = Decode(KindWorkloadEndpoint, "ns", "host-openstack-vm-port", qosEndpoint(`{"dscp":"AF11"}`), Options{Hostname: "host"})
	if q := v.(*Endpoint).QoS; q == nil || !q.DSCP {
		t.Errorf("dscp not noticed: %+v", q)
	}
}

func TestQoSControlsValidation(t *testing.T) {
	for _, c := range []struct{ qos, want string }{
		{`{"ingressBandwidth":999}`, `spec.qosControls.ingressBandwidth: 999 must be 0 (no limit) or from 1000 to 1000000000000000`},
		{`{"egressBandwidth":1000000000000001}`, `spec.qosControls.egressBandwidth: 1000000000000001 must be 0 (no limit) or from 1000 to 1000000000000000`},
		{`{"ingressBandwidth":-5}`, `spec.qosControls.ingressBandwidth: -5 must be 0 (no limit) or from 1000 to 1000000000000000`},
		{`{"ingressBandwidth":1000000,"ingressBurst":34359738361}`, `spec.qosControls.ingressBurst: 34359738361 must be 0 (no limit) or from 1000 to 34359738360`},
		{`{"ingressBurst":5000}`, `spec.qosControls.ingressBurst: needs spec.qosControls.ingressBandwidth`},
		{`{"ingressBandwidth":1000000,"ingressPeakrate":1000000}`, `spec.qosControls.ingressPeakrate: 1000000 must be greater than spec.qosControls.ingressBandwidth (1000000)`},
		{`{"egressPeakrate":2000}`, `spec.qosControls.egressPeakrate: 2000 must be greater than spec.qosControls.egressBandwidth (0)`},
		{`{"ingressBandwidth":1000000,"ingressMinburst":1500}`, `spec.qosControls.ingressMinburst: needs spec.qosControls.ingressPeakrate`},
		{`{"egressMinburst":100000001}`, `spec.qosControls.egressMinburst: 100000001 must be 0 (no limit) or from 1000 to 100000000`},
		{`{"ingressPacketRate":10001}`, `spec.qosControls.ingressPacketRate: 10001 must be 0 (no limit) or from 1 to 10000`},
		{`{"egressPacketBurst":3}`, `spec.qosControls.egressPacketBurst: needs spec.qosControls.egressPacketRate`},
		{`{"ingressMaxConnections":4294967296}`, `spec.qosControls.ingressMaxConnections: 4294967296 must be 0 (no limit) or from 1 to 4294967295`},
		{`{"ingressBandwidth":1e30}`, `spec.qosControls.ingressBandwidth: must be a JSON number, not number 1e30`},
		{`{"ingressBandwidth":"10M"}`, `spec.qosControls.ingressBandwidth: must be a JSON number, not string`},
	} {
		_, err := Decode(KindWorkloadEndpoint, "ns", "host-openstack-vm-port", qosEndpoint(c.qos), Options{Hostname: "host"})
		if err == nil || err.Error() != c.want {
			t.Errorf("%s:\n got %v\nwant %s", c.qos, err, c.want)
		}
	}
}
