package datastore

import (
	"context"
	"fmt"
	"log/slog"

	clientv3 "go.etcd.io/etcd/client/v3"

	"ocelot/datastore/resource"
)

// StartupState is what the agent reads before it starts: whether the
// datastore is ready and the configuration it holds for this host.
type StartupState struct {
	Revision    int64
	ClusterInfo *resource.ClusterInformation // nil when absent
	Global      *resource.FelixConfiguration // felixconfigurations/default, nil when absent
	Host        *resource.FelixConfiguration // felixconfigurations/node.<hostname>, nil when absent

	hostname string
}

// Ready reports whether clusterinformations/default says datastoreReady: true.
func (s StartupState) Ready() bool {
	return s.ClusterInfo != nil && s.ClusterInfo.DatastoreReady != nil && *s.ClusterInfo.DatastoreReady
}

// ReadStartupState reads the three start-up keys at one revision. A value
// that does not decode is logged, counted on m (which may be nil) and
// treated as absent.
func ReadStartupState(ctx context.Context, cli *clientv3.Client, hostname string, log *slog.Logger, m *Metrics) (StartupState, error) {
	m = m.orNew()
	cluster, global, host := configKeys(hostname)
	keys := []resource.Key{cluster, global, host}
	ops := make([]clientv3.Op, len(keys))
	for i, k := range keys {
		ops[i] = clientv3.OpGet(k.Path())
	}
	// Requiring a leader makes a member cut off from its peers refuse at
	// once, so that the caller's next attempt goes to another member.
	resp, err := cli.Txn(clientv3.WithRequireLeader(ctx)).Then(ops...).Commit()
	if err != nil {
		return StartupState{}, fmt.Errorf("reading start-up configuration: %w", err)
	}
	st := StartupState{Revision: resp.Header.Revision, hostname: hostname}
	for i, r := range resp.Responses {
		kvs := r.GetResponseRange().Kvs
		if len(kvs) == 0 {
			continue
		}
		v, err := resource.Decode(keys[i].Kind, "", keys[i].Name, kvs[0].Value, resource.Options{Hostname: hostname})
		if err != nil {
			if log != nil {
				log.Warn("invalid resource in the datastore; ignored", "key", keys[i].Path(), "reason", err.Error())
			}
			m.invalidResources.WithLabelValues(string(keys[i].Kind)).Inc()
			continue
		}
		switch i {
		case 0:
			st.ClusterInfo = v.(*resource.ClusterInformation)
		case 1:
			st.Global = v.(*resource.FelixConfiguration)
		case 2:
			st.Host = v.(*resource.FelixConfiguration)
		}
	}
	return st, nil
}
