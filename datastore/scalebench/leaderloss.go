package scalebench

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"ocelot/datastore"
)

// LeaderLoss measures how long an agent takes to notice that the member
// serving its watch has lost the cluster's leader: one agent, talking to
// the members directly or through a grpc-proxy, two of the three members
// stopped. The agent notices when its watch fails and it starts a new
// listing (felix_resyncs_started). It returns that delay, or false when the
// agent had not noticed after wait.
func LeaderLoss(ctx context.Context, dir string, proxy bool, wait time.Duration, log *slog.Logger) (time.Duration, bool, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cl, err := startCluster(dir, proxy)
	if err != nil {
		return 0, false, err
	}
	defer cl.stop()
	admin, err := datastore.Connect(datastore.ClientConfig{Endpoints: cl.memberURLs}, log)
	if err != nil {
		return 0, false, err
	}
	defer admin.Close()
	cloud := Cloud{Endpoints: 60, Regions: []string{"RegionOne"}, Groups: 5, PerHost: 30}
	if _, _, err := cloud.load(ctx, admin); err != nil {
		return 0, false, err
	}
	reg := prometheus.NewRegistry()
	for _, c := range datastore.Collectors() {
		reg.MustRegister(c)
	}
	resyncs := func() float64 {
		var n float64
		mfs, _ := reg.Gather()
		for _, mf := range mfs {
			if mf.GetName() == "felix_resyncs_started" {
				for _, m := range mf.GetMetric() {
					n += m.GetCounter().GetValue()
				}
			}
		}
		return n
	}
	a := startAgent(cl.agentEndpoints(), cloud, 0, heartbeat{time.Second, 3 * time.Second}, log)
	defer a.stop()
	select {
	case <-a.inSync:
	case <-time.After(time.Minute):
		return 0, false, context.DeadlineExceeded
	}
	before := resyncs()
	cl.members[1].stop()
	cl.members[2].stop()
	lost := time.Now()
	for time.Since(lost) < wait {
		if resyncs() > before {
			return time.Since(lost), true, nil
		}
		if err := sleep(ctx, 50*time.Millisecond); err != nil {
			return 0, false, err
		}
	}
	return 0, false, nil
}
