// Package lab builds a small OpenStack cloud out of network namespaces for
// Ocelot's functional tests and demo: an etcd shared by every region (one
// embedded server, or a cluster of member processes in namespaces of their
// own: cluster.go), N compute hosts each running its own ocelot process
// with its own felix.cfg (or another agent in its place, such as Calico's
// Felix for a side-by-side benchmark: AddHostRunning), VMs behind
// tap-named veths, and a core namespace routing between hosts (standing
// in for BGP). Resources are written as the Neutron driver and calicoctl
// write them. kernel.go reads and wipes what an agent programs, to
// compare two agents' work. openstack.go adds clients outside the
// cloud, live migrations and a stand-in for BGP.
//
// The caller's process must run in a network namespace of its own (see
// netlab.Main and netlab.InOwnNetns): it becomes the core router.
//
// Everything a lab creates — namespaces, veths, processes, files under
// the test's directory — is removed when the test ends, pass or fail. It
// never touches the root namespace; it programs the kernel only through
// the agents under test and the lab's own links and routes.
package lab
