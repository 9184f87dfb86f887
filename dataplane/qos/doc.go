// Package qos enforces endpoints' bandwidth limits with traffic control,
// over netlink, as Felix does (docs/design/openstack.md):
//
//   - to the VM (ingressBandwidth): a token bucket (tbf, handle 1:) as the
//     root qdisc of the VM's tap, which the host sends the VM's traffic
//     through;
//   - from the VM (egressBandwidth): the tap's ingress qdisc (ffff:) with a
//     u32 filter that redirects every frame (mirred) to an IFB device,
//     bwcali + a hash of the tap's name, whose root qdisc is the token
//     bucket; the IFB hands the frames back to the stack as if the tap had
//     received them.
//
// The bucket's parameters are Felix's: rate in bytes per second; the
// burst as the time to send it at the rate, in scheduler ticks; a queue
// of 25 ms at the rate plus the burst; with a peak rate, a minimum burst
// of at least the tap's MTU plus its Ethernet header.
//
// Only what this package makes is ever changed or deleted: a root tbf
// with handle 1: on a workload tap, u32 filters on its ingress qdisc that
// redirect to a bwcali device, the ingress qdisc once no filter is left on
// it, and bwcali IFB devices. Every change goes through the Netlink seam;
// unit tests give a fake.
package qos
