// Package dataplane owns the kernel. It receives the calc messages and
// makes this host enforce them: IP sets, iptables chains in four tables
// for IPv4 and IPv6, per-endpoint routes and neighbour entries, per-tap
// sysctls and bandwidth limits, routes held back and elevated while a VM
// migrates, and conntrack cleanup when something that allowed a flow
// goes.
//
// Managers turn messages into desired kernel state, cheaply and without
// I/O; each is the only owner of its maps:
//
//   - endpointManager: local endpoints, which endpoint owns which
//     interface, the per-endpoint, dispatch, floating-IP and
//     anti-spoofing chains, endpoint statuses.
//   - hostEndpointManager: host endpoints, host interfaces and their
//     addresses, which endpoint governs which interface, the host chains
//     of filter, mangle and raw, their dispatch and failsafe chains, host
//     endpoint statuses.
//   - policyManager: policies and profiles, their chains in each table,
//     which endpoints jump to each chain there (a chain lives while one
//     does), which sets each chain uses.
//   - ipsetManager: which sets exist; a set a chain uses is not removed.
//   - routeManager: workload interfaces' state, their routes, neighbours
//     and sysctls; the addresses the host uses (hostGuard, fed by
//     dataplane/hostaddrs), which no endpoint is routed.
//   - conntrackManager: endpoint addresses and the flows to forget,
//     handed in batches to dataplane/conntrack's Forgetter (one pass over
//     the kernel's table per 500 ms window, off the apply path).
//   - qos.Table: each interface's bandwidth limits (token buckets on the
//     tap and an IFB device, over netlink).
//   - livemigration.Monitor: each migrating endpoint's state (Felix's
//     state machine); it sets its interface's route mode (held back,
//     elevated, normal) in the routeManager.
//
// Drivers bring the kernel in line with the desired state. The rules and
// sets have two backends, chosen by NFTablesMode (families.go): ipsets
// and iptables (per family, behind a Runner seam each; iptables isolates
// what the kernel refuses and applies the rest), or one native nftables
// table per family (dataplane/nftables, behind its Runner seam), which
// takes the same chains of the same rule model. After the first complete
// apply, what the other backend left (ours from a run in the other mode,
// or Felix's) is removed (takeover.go). Routing (behind a netlink
// seam), conntrack (a Table seam; one pass per window); sysctls, the host
// address watcher and the endpoint status files sit behind small
// interfaces or in a directory of their own (kernel.go, statusfiles.go),
// as do the migrations' packet captures and clock. Every netlink request
// has the deadline NetlinkTimeoutSecs. Unit tests swap the whole kernel
// for dataplane/internal/fakekernel and run without root; the kernel
// tests run the real tools in network namespaces.
//
// One goroutine (Run) owns all of it: it collects messages and interface
// events and applies in the safe order — the managers' deferred work; per
// family (IPv4 and IPv6 concurrently) sets first, then every table in one
// restore, set deletions last; then sysctls, routes and bandwidth
// limits; then conntrack cleanup (handed to the forgetter) and statuses.
// Whatever arrives during an apply
// goes into the next one. It re-reads the kernel periodically to repair
// drift and writes nothing before calc has sent InSync and the workload
// and host interfaces have been listed (reading ahead meanwhile).
//
// Never flush on start or exit: the first apply takes over what it
// recognises (Felix's chains and sets included) and sweeps only that.
//
// Never touch what is not ours: only workload interfaces (workloadIfaces:
// InterfacePrefix, not InterfaceExclude, a well-formed name) get chains,
// routes, neighbours, sysctls or traffic control, whatever an endpoint
// names; and no endpoint gets a route for an address the host itself
// uses.
//
// Observability (docs/design/observability.md): Explain answers
// "ocelot explain" on the same goroutine, between applies, from the
// managers' state, with package explain's evaluator; an observer tells
// the drop-log reader (dataplane/droplog, an NFLOG socket) which decision
// each logged prefix names, and the counter collector (counters.go, on
// Prometheus scrapes) what each counted rule counts.
package dataplane
