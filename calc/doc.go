// Package calc is the calculation graph: it turns the datastore's stream of
// typed updates into the desired state of this host's dataplane, as the
// messages of the calc -> dataplane contract (messages.go).
//
// It is pure: no I/O, no goroutines, no clocks. The same updates give the
// same messages in the same order, which is what makes it table-testable.
//
// What it computes (graph.go, flush.go):
//   - Local endpoints: endpoints of this host in the local region's
//     namespace, on an interface that starts with one of
//     Config.InterfacePrefixes. Any other endpoint claiming this host is
//     reported once and not programmed (its interface stays fail-closed),
//     so no endpoint of another host or region can take over a local
//     interface. allowSpoofedSourcePrefixes are passed on only with
//     Config.WorkloadSourceSpoofingAny (Felix's WorkloadSourceSpoofing).
//   - Local host endpoints (hostendpoints.go): HostEndpoints whose node
//     is this host, unless they name a workload interface (reported, not
//     programmed). They get the global policies that select them, split
//     as Felix splits them: doNotTrack (untracked), preDNAT (pre-DNAT,
//     ingress only), the others (normal) and of those the applyOnForward
//     ones (forward). doNotTrack and preDNAT policies never govern a
//     workload endpoint, and are active only while they select a host
//     endpoint.
//   - Policy identity (contract.PolicyID) is the datastore key: kind,
//     namespace and the key's name, as Felix keys policies, so two
//     resources never share an ID or a chain.
//   - For each local endpoint, the policies whose selector matches it
//     (labels plus labels inherited from its profiles), by tier in tier
//     order, by policy order within a tier, split into ingress and egress
//     by the policies' types; then its profiles. Label index #1 (local
//     endpoints x policy selectors) does the matching incrementally.
//   - Active policies (selecting at least one local endpoint) with their
//     rules resolved (rules.go): rule selectors are scoped by namespace and
//     become IP-set IDs, shared by every rule that uses the same selector.
//   - IP-set members (ipsets.go): label index #2 matches the active sets'
//     selectors against every endpoint of every region, network sets and
//     host endpoints; members are reference counted per contributor.
//   - Live migration (livemigration.go): each local endpoint's role from
//     the local region's LiveMigrations: target while one names it and
//     its source endpoint still exists, source while one names it (or its
//     workload) as the source. QoS controls pass through as validated.
//
// Fail closed: an invalid policy is enforced as deny-all where its selector
// reaches; an invalid or misplaced local endpoint is not programmed; a
// programmed host endpoint that turns invalid is kept, deny-all, on its
// last valid interface; a
// missing or invalid profile denies; a rule with a match iptables cannot
// enforce allows nothing (Allow) or denies more (Deny, Pass). Problems go to
// the report hook.
//
// Work is proportional to the change: each update marks what it touches
// dirty, and Flush emits only that, coalesced.
package calc
