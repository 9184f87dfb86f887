// Package routing programs the per-endpoint routes and neighbour entries
// that make a VM reachable on its tap: a host route (/32 or /128) per
// address, scope link, with Felix's protocol and metric, and for IPv4 a
// permanent neighbour entry from the endpoint's MAC. Routes exist only
// while the interface is operationally up. While a VM migrates, an
// interface's routes can be held back or programmed at the elevated
// priority (Mode); a change of priority adds the new route before it
// deletes the old one.
//
// Ownership: the table acts only on interfaces its Owns predicate accepts
// (the workload interfaces), whatever it is asked: an endpoint that names
// a host interface cannot make it list, add or delete a route or a
// neighbour there. On those interfaces, routes with our protocol are
// ours; with RemoveExternalRoutes, any other non-kernel route is removed
// too (after a grace period for a new interface, as Felix). It talks
// netlink, through the Netlink seam, and nothing else.
package routing
