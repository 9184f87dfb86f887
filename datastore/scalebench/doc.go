// Package scalebench measures what Ocelot agents cost the etcd cluster
// they share: watch streams and watchers per member, member CPU and RSS,
// bytes and messages sent to clients (the event fan-out), leases, each
// agent's initial list time and the watch latency of a change — with
// agents talking to the members directly, and through etcd's grpc-proxy.
// docs/design/datastore-scale.md has the results and the deployment
// guidance they support; `make bench-etcd` runs it (TestBenchEtcdScale).
//
// The processes:
//
//   - three etcd members (go.etcd.io/etcd/server/v3/embed, v3.7), each a
//     process of its own so that /proc gives its CPU and RSS and /metrics
//     its counters;
//   - optionally one grpc-proxy process (etcd's grpcproxy package with the
//     defaults of `etcd grpc-proxy start`);
//   - the benchmark process, which runs every simulated agent and the
//     writer that plays Neutron.
//
// Members and proxy are the test binary re-executed (RunChildIfAsked in
// TestMain), so nothing is built or installed. Everything listens on
// loopback; nothing touches the host's network configuration.
//
// A simulated agent is the datastore half of a real one, made of the
// project's own parts and wired as cmd/ocelot wires them: datastore.Connect,
// ReadStartupState until datastoreReady, a Syncer streaming the whole
// datastore (its watch on a connection of its own), and a StatusWriter
// writing the heartbeat under a lease (Felix's default 30 s interval, 90 s
// TTL) and its local endpoints' status. Calc and the dataplane are left
// out: they cost the compute host, not etcd.
//
// A run loads a generated cloud (endpoints in two security groups each,
// spread over compute hosts in several regions, one policy per group per
// region), then for each level of agents: starts the agents the level adds
// all at once (the herd), measures an idle window and a churn window
// (endpoint updates at a fixed rate), and starts one more agent alone (the
// probe). The marginal cost of one agent is the least-squares slope over
// the levels. Outage measures, apart, how long an agent takes to report
// etcd unreachable when members are killed. Numbers are only reported,
// never asserted: TestSmoke checks that the harness measures what it
// claims, at toy size.
package scalebench
