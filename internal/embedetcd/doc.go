// Package embedetcd runs a real etcd server (go.etcd.io/etcd/server/v3/embed)
// inside the process, for Ocelot's tests, benchmarks and demo. It can listen
// on any address (such as a lab bridge inside a network namespace), use TLS,
// be stopped and restarted on the same data and ports, and be one member of
// a cluster (Options.Name, PeerHost, InitialCluster; see StartMember).
//
// For tests, benchmarks and the demo only: the agent itself never starts
// an etcd. A server owns the data directory and listeners it is given.
package embedetcd
