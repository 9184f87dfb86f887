package fvtests

import (
	"testing"

	"ocelot/fv-tests/lab"
)

// Security groups of the guide (docs/calico.md).
const (
	sgWeb     = lab.SGWeb
	sgClients = lab.SGClients
	sgOther   = lab.SGOther
)

// TestGuideScenario is Calico's "Multiple Regions" guide with OpenStack's
// own region names: RegionTwo VMs in the clients group reach the RegionOne
// VM in the web group on TCP 80 and nothing else; other VMs do not; and
// removing namespaceSelector: all() stops the cross-region access.
func TestGuideScenario(t *testing.T) { guideScenario(t, newLab(t)) }

func guideScenario(t *testing.T, l *lab.Lab) {
	r1 := l.AddHost("r1-compute1", "RegionOne")
	r2 := l.AddHost("r2-compute1", "RegionTwo")
	web := r1.AddVM("web", 5)
	client := r2.AddVM("client", 5)
	other := r2.AddVM("other", 6)
	web.Serve(80, 81)
	client.Serve(80)

	l.PlugGuideVMs(web, client, other)
	ready(t, r1, r2)

	// Before the policy: nothing reaches the web VM (the control: the
	// same connection once the policy is in place, below).
	blocked(t, client, web, 80)

	l.Put(lab.GuidePolicyKey("RegionOne"), lab.GuidePolicyJSON("RegionOne", sgWeb, sgClients, true))
	eventuallyConnects(t, client, web, 80)
	blocked(t, client, web, 81) // other ports stay closed (the control: 80, just above)
	blocked(t, web, client, 80) // the policy opens nothing the other way (the same routes as client -> web)
	blocked(t, other, web, 80)  // VMs outside the group stay out...
	// ...and the control for that one, over the same path: other in the
	// group connects, and out of it again is blocked again.
	other.Plug(map[string]string{sgOther: "other", sgClients: "clients"})
	eventuallyConnects(t, other, web, 80)
	other.Plug(map[string]string{sgOther: "other"})
	eventuallyBlocked(t, other, web, 80)

	// Without namespaceSelector: all() the source selector stays in
	// RegionOne's namespace: the cross-region access stops.
	l.Put(lab.GuidePolicyKey("RegionOne"), lab.GuidePolicyJSON("RegionOne", sgWeb, sgClients, false))
	eventuallyBlocked(t, client, web, 80)
	// Control: put it back and it works again.
	l.Put(lab.GuidePolicyKey("RegionOne"), lab.GuidePolicyJSON("RegionOne", sgWeb, sgClients, true))
	eventuallyConnects(t, client, web, 80)
}
