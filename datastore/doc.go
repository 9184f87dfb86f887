// Package datastore is the only package that talks to etcd. It streams the
// Calico v3 resources the agent needs as typed updates (Syncer), and writes
// the status keys the Neutron driver waits for (StatusWriter): the agent
// heartbeat and, per local VM port, "up" or "down" (and, per local host
// endpoint, "up", "down" or "error", where Felix writes them).
//
// Region rules (docs/calico.md, "Regions"): endpoints, network sets and all cluster-scoped
// kinds are watched in every namespace, so that remote regions' VMs feed
// IP-set membership; namespaced NetworkPolicies and LiveMigrations only in
// the local region's namespace. Endpoints of other hosts leave this package reduced to
// namespace, labels and addresses.
//
// The stream survives member failures, partitions, dropped connections
// and etcd restarts by resuming its watch after the last revision it
// emitted, on another member when the one it used fails it (the watch
// requires a leader, and a freshness check leaves a member that falls
// silent); only a compaction past that revision costs a re-list, which
// emits just the difference from what was already emitted. Syncer.Status
// tells readiness whether etcd is reachable. The watch is a gRPC stream the
// syncer drives itself (watch.go), so that an event crosses one goroutine
// from the connection to the batches channel, not four as through the etcd
// client's watcher; connections use fixed flow-control windows (client.go)
// so that events do not each cost a ping, and read their sockets with raw
// system calls (quietconn.go), so that an event does not wake the Go
// runtime's monitor thread. Values that do not decode or
// validate are reported once and emitted as *resource.Invalid so that calc
// can fail closed. docs/design/datastore.md describes each fault.
//
// The configuration resources that apply to a host (FelixConfiguration
// "default" and "node.<hostname>", ClusterInformation "default") are
// named in one place, hostconfig.go: the start-up read, the syncer's
// filter and StartupState.Apply (the agent's view of later changes) use
// it. The package's instruments are created once by NewMetrics on the
// agent's registry and shared by the start-up read, the syncer and the
// status writer; retries back off with internal/backoff.
//
// The package never touches the kernel and knows nothing of calc's
// indexes; selectors are parsed once, in resource, where they enter.
package datastore
