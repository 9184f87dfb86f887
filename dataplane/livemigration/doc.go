// Package livemigration follows each local endpoint through a live
// migration of its VM, as Felix does, and says how the endpoint's routes
// must be programmed meanwhile (docs/design/openstack.md):
//
//	state     routes                 entered on
//	Base      normal priority        start; source role; endpoint gone; timer
//	Target    none                   target role (the VM's memory is being copied here)
//	Live      elevated priority      the VM's first GARP or RARP on its tap
//	TimeWait  elevated priority      the role ends (migration over), from Target or Live
//
// The transitions are Felix's:
//
//	input      Base     Target    Live      TimeWait
//	target     Target
//	GARP                Live
//	no role             TimeWait  TimeWait
//	timer                                   Base
//	source              Base      Base      Base
//	deleted             Base      Base      Base
//
// TimeWait lasts the convergence time (LiveMigrationRouteConvergenceTime),
// so that every router has learnt the new path before the route's
// priority drops back to normal.
//
// A Monitor is driven from one goroutine (the dataplane's): role changes
// come with endpoint updates, GARPs and timer pops come back as Events on
// a channel the same goroutine reads and hands to Handle. Events carry a
// generation, so one that raced with a transition is ignored; nothing
// waits for a listener or a timer to stop. The kernel is behind seams: a
// Listen function opens a packet capture on an interface (AF_PACKET, in
// packet.go) and a Clock runs timers, so the state machine is tested
// without root and without waiting.
//
// Ownership: the Monitor owns each migrating endpoint's state, capture
// and timer; captures and timers own nothing (they report one event). It
// programs nothing itself: it tells the dataplane, through OnState, which
// route mode an interface's routes need, and only listens (never writes)
// on the taps the dataplane hands it.
package livemigration
