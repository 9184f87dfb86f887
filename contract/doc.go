// Package contract is the interface between the calculation graph and the
// dataplane: the messages calc emits and the dataplane applies. It is a
// leaf package (it imports nothing of Ocelot), so the dataplane depends on
// the contract and not on calc, and neither pulls in the datastore.
//
// A batch of messages arrives in an order that is always safe to apply:
// IP sets are created and grown before any policy refers to them, policies
// and profiles before the endpoints that use them, removals in reverse
// (endpoints, then policies and profiles, then sets), and InSync after the
// first complete state. Nothing may be written to the kernel before
// InSync: a restarting agent must not act on half a datastore.
//
// The set of message types is closed (Message has an unexported method);
// a consumer that meets a type it does not handle has a bug and must say so.
package contract
