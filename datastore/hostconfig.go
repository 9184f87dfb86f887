package datastore

import "ocelot/datastore/resource"

// The resources that configure a host: FelixConfiguration "default" (the
// cluster's) and "node.<hostname>" (the host's own), and
// ClusterInformation "default". This file is the one place that knows
// which they are; the start-up read, the syncer's filter and the agent's
// reaction to changes all ask it.

const (
	globalConfigName  = "default"
	clusterConfigName = "default"
)

func hostConfigName(hostname string) string { return "node." + hostname }

// configKeys are the keys of a host's configuration resources.
func configKeys(hostname string) (cluster, global, host resource.Key) {
	return resource.Key{Kind: resource.KindClusterInformation, Name: clusterConfigName},
		resource.Key{Kind: resource.KindFelixConfiguration, Name: globalConfigName},
		resource.Key{Kind: resource.KindFelixConfiguration, Name: hostConfigName(hostname)}
}

// otherHostsConfig reports whether a key is a configuration resource of
// another host (or one Ocelot does not read): the syncer drops those.
func otherHostsConfig(k resource.Key, hostname string) bool {
	switch k.Kind {
	case resource.KindFelixConfiguration:
		return k.Name != globalConfigName && k.Name != hostConfigName(hostname)
	case resource.KindClusterInformation:
		return k.Name != clusterConfigName
	}
	return false
}

// Apply records an update of one of the host's configuration resources
// (a deletion too) and reports whether it changed the state. Any other
// update is ignored, and so is a value that does not decode (the syncer
// reports it; the configuration in force stays).
func (s *StartupState) Apply(u resource.Update) bool {
	cluster, global, host := configKeys(s.hostname)
	ci, isCI := u.Value.(*resource.ClusterInformation)
	fc, isFC := u.Value.(*resource.FelixConfiguration)
	deleted := u.Value == nil
	switch {
	case u.Key == cluster && (isCI || deleted):
		s.ClusterInfo = ci
	case u.Key == global && (isFC || deleted):
		s.Global = fc
	case u.Key == host && (isFC || deleted):
		s.Host = fc
	default:
		return false
	}
	if u.Revision > s.Revision {
		s.Revision = u.Revision
	}
	return true
}
