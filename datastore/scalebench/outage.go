package scalebench

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"ocelot/datastore"
)

// Outage measures how long an agent takes to report the datastore
// unreachable (Syncer.Status, which drives the agent's readiness) after
// stop of the three members are killed: two loses the quorum, three the
// whole cluster. The agent talks to the members directly or through a
// grpc-proxy. It returns the delay, or false when the agent still reported
// itself connected after wait.
func Outage(ctx context.Context, dir string, proxy bool, stop int, wait time.Duration, log *slog.Logger) (time.Duration, bool, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if stop < 1 || stop > 3 {
		return 0, false, fmt.Errorf("scalebench: cannot stop %d of 3 members", stop)
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
	cloud := Cloud{Endpoints: 60, Regions: []string{"RegionOne"}, Groups: 5, PerHost: 30}
	_, _, err = cloud.load(ctx, admin)
	admin.Close()
	if err != nil {
		return 0, false, err
	}
	a := startAgent(cl.agentEndpoints(), cloud, 0, heartbeat{time.Second, 3 * time.Second}, nil, log)
	defer a.stop()
	syncer := <-a.syncer
	select {
	case <-a.inSync:
	case <-a.done:
		return 0, false, fmt.Errorf("agent %s stopped before it was in sync", a.host)
	case <-time.After(time.Minute):
		return 0, false, fmt.Errorf("agent %s not in sync after a minute", a.host)
	}
	// Let a few probes pass, as in a running cloud.
	if err := sleep(ctx, 5*time.Second); err != nil {
		return 0, false, err
	}
	if !syncer.Status().Connected {
		return 0, false, fmt.Errorf("agent %s not connected before the outage: %v", a.host, syncer.Status().Err)
	}
	began := time.Now()
	for i := 3 - stop; i < 3; i++ {
		go cl.members[i].kill()
	}
	for time.Since(began) < wait {
		if !syncer.Status().Connected {
			return time.Since(began), true, nil
		}
		if err := sleep(ctx, 50*time.Millisecond); err != nil {
			return 0, false, err
		}
	}
	return 0, false, nil
}
