package datastore

import (
	"testing"

	"ocelot/datastore/resource"
)

// The host's configuration resources are recognised in one place: the
// cluster's and this host's FelixConfiguration, the ClusterInformation;
// another host's, or a value that does not decode, change nothing.
func TestStartupStateApply(t *testing.T) {
	st := StartupState{hostname: "h1"}
	fc := func(name string) resource.Update {
		return resource.Update{Key: resource.Key{Kind: resource.KindFelixConfiguration, Name: name},
			Value: &resource.FelixConfiguration{Name: name}, Revision: 7}
	}
	if !st.Apply(fc("default")) || st.Global == nil || st.Revision != 7 {
		t.Fatalf("default not applied: %+v", st)
	}
	if !st.Apply(fc("node.h1")) || st.Host == nil {
		t.Fatal("this host's configuration not applied")
	}
	if st.Apply(fc("node.h2")) || st.Apply(fc("node.h1x")) {
		t.Error("another host's configuration applied")
	}
	invalid := resource.Update{Key: resource.Key{Kind: resource.KindFelixConfiguration, Name: "default"}, Value: &resource.Invalid{}}
	if st.Apply(invalid) || st.Global == nil {
		t.Error("an undecodable value replaced the configuration in force")
	}
	if !st.Apply(resource.Update{Key: resource.Key{Kind: resource.KindFelixConfiguration, Name: "node.h1"}}) || st.Host != nil {
		t.Error("deleting this host's configuration was not applied")
	}
	ci := resource.Update{Key: resource.Key{Kind: resource.KindClusterInformation, Name: "default"}, Value: &resource.ClusterInformation{}}
	if !st.Apply(ci) || st.ClusterInfo == nil {
		t.Error("cluster information not applied")
	}
	if st.Apply(resource.Update{Key: resource.Key{Kind: resource.KindProfile, Name: "default"}}) {
		t.Error("a profile applied as configuration")
	}
	for _, k := range []resource.Key{{Kind: resource.KindFelixConfiguration, Name: "node.h2"}, {Kind: resource.KindClusterInformation, Name: "other"}} {
		if !otherHostsConfig(k, "h1") {
			t.Errorf("%v should be filtered", k)
		}
	}
	if otherHostsConfig(resource.Key{Kind: resource.KindFelixConfiguration, Name: "node.h1"}, "h1") {
		t.Error("this host's configuration filtered")
	}
}
