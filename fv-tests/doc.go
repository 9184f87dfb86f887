// Package fvtests holds Ocelot's functional tests: the real ocelot binary,
// one process per compute host, in a lab of network namespaces with a real
// etcd (lab/), checked with real TCP and ICMP. Every "must be blocked"
// check is paired with a "must connect" control over the same path: the
// same VMs, the same routes there and back, so that a blocked connection
// means the rules and not a missing route.
//
// faults_test.go is the fault suite: a three-member etcd cluster of
// separate processes (the test binary doubles as an etcd member, see
// lab.RunEtcdMember) whose members are killed, paused and cut off for
// real; the agent paused, killed mid-burst, and its rules, sets and
// routes tampered with. Each scenario logs the time the agent took
// ("fault: ..." lines, shown by go test -v -run TestFault);
// docs/design/datastore.md quotes them.
//
// openstack_test.go plays what Nova and the Neutron driver do beyond
// security groups: a live migration between two hosts (the VM's namespace,
// and its sockets, move behind a new tap; the core follows the hosts'
// route metrics as BGP would), and QoS controls measured with bulk TCP,
// UDP bursts and connection counts from a client outside the cloud
// (lab/openstack.go). Their numbers are logged (go test -v -run
// 'TestLiveMigration|TestQoSControls').
//
// hostendpoints_test.go protects a host with a host endpoint on its
// uplink (etcd on its default port, so the default failsafe ports cover
// it): a blocked port with failsafe SSH and etcd still open, a
// doNotTrack policy that opens a host port without touching a VM, a
// preDNAT policy that sees a floating IP before DNAT, and an invalid host
// endpoint that keeps the host closed but for the failsafes.
//
// hostile_test.go and hostile_cases_test.go are the hostile-input suite:
// values in etcd written to hurt (bad names and keys, aliases, values that
// do not decode, huge and deep selectors, endpoints on host interfaces or
// holding the host's addresses, escaped JSON, injections through
// configuration), one case after another in one lab; after each, the
// hosts' own state (lab.OwnState), the agents' liveness, a fresh policy
// change and the flows that must stay closed are checked
// (docs/design/hostile-input.md).
//
// The tests need root; they run inside a network namespace of their own
// (netlab.Main) that becomes the lab's core router, and everything they
// create is removed when they end. Without root or namespaces they skip,
// or fail when OCELOT_REQUIRE_KERNEL=1 (CI).
package fvtests
