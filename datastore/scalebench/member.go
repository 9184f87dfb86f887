package scalebench

import (
	"fmt"
	"net/url"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
)

// runMember serves one member of a new cluster with etcd's defaults, except
// that fsync is off: the benchmark measures fan-out, not the disk, which on
// a shared machine is the noisiest part. It answers /metrics on its client
// URL, as etcd does.
func runMember(spec childSpec) (func(), error) {
	cfg := embed.NewConfig()
	cfg.Name = spec.Name
	cfg.Dir = spec.Dir + "/" + spec.Name + ".etcd"
	cfg.Logger = "zap"
	cfg.LogLevel = "warn"
	cfg.LogOutputs = []string{spec.Dir + "/" + spec.Name + ".log"}
	cfg.UnsafeNoFsync = true
	cu, err := url.Parse(spec.ClientURL)
	if err != nil {
		return nil, err
	}
	pu, err := url.Parse(spec.PeerURL)
	if err != nil {
		return nil, err
	}
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{*cu}, []url.URL{*cu}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{*pu}, []url.URL{*pu}
	cfg.InitialCluster = spec.InitialCluster
	cfg.InitialClusterToken = "ocelot-scalebench"
	cfg.ClusterState = embed.ClusterStateFlagNew
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, fmt.Errorf("starting member %s: %w", spec.Name, err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		e.Close()
		return nil, fmt.Errorf("member %s: %w", spec.Name, err)
	case <-time.After(60 * time.Second):
		e.Close()
		return nil, fmt.Errorf("member %s did not join a quorum in 60 s", spec.Name)
	}
	return e.Close, nil
}
