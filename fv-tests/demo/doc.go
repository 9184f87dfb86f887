// Command demo shows Calico's "Multiple Regions" guide come true with
// Ocelot: two OpenStack regions named as OpenStack names them (RegionOne,
// RegionTwo) sharing one etcd, a web VM in RegionOne, clients in RegionTwo,
// and the guide's policy. It prints who can reach whom before and after,
// then removes what the guide calls critical (namespaceSelector: all()) to
// show the cross-region access stop, asks the agent why (ocelot explain),
// and tears everything down.
//
// Run as root: make demo (it builds bin/ocelot first). Everything lives in
// network namespaces that are removed at the end.
package main
