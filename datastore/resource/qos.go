package resource

import (
	"encoding/json"
	"fmt"
)

// QoSControls are a local endpoint's spec.qosControls, validated against
// the ranges of Calico's API, with its defaults applied. Zero means no
// limit. Ingress is traffic to the VM, egress traffic from it (the
// endpoint's view, as the Neutron driver maps Neutron's directions).
type QoSControls struct {
	Ingress, Egress QoSDirection
	// DSCP is set when the endpoint asks for DSCP marking, which Ocelot
	// does not do (calc reports it).
	DSCP bool
}

// QoSDirection holds one direction's limits.
type QoSDirection struct {
	Bandwidth int64 // bits per second
	Burst     int64 // bits
	Peakrate  int64 // bits per second
	Minburst  int64 // bytes
	// PacketRate is in packets per second, PacketBurst in packets.
	PacketRate, PacketBurst int64
	MaxConnections          int64
}

// Calico's ranges and defaults for QoS controls (the WorkloadEndpoint
// API's documentation; the Neutron driver caps its values to them).
const (
	minBandwidth, maxBandwidth     = 1000, 1_000_000_000_000_000
	minBurst, maxBurst             = 1000, 34_359_738_360 // 4 GiB - 1 byte, in bits
	defaultBurst                   = 4_294_967_296        // 4 Gi bits
	minPeakrate, maxPeakrate       = 1010, 1_010_000_000_000_000
	minMinburst, maxMinburst       = 1000, 100_000_000
	minPacketRate, maxPacketRate   = 1, 10_000
	minPacketBurst, maxPacketBurst = 1, 10_000
	defaultPacketBurst             = 5
	minConnections, maxConnections = 1, 4_294_967_295
)

type wireQoSControls struct {
	IngressBandwidth      int64           `json:"ingressBandwidth"`
	IngressBurst          int64           `json:"ingressBurst"`
	IngressPeakrate       int64           `json:"ingressPeakrate"`
	IngressMinburst       int64           `json:"ingressMinburst"`
	EgressBandwidth       int64           `json:"egressBandwidth"`
	EgressBurst           int64           `json:"egressBurst"`
	EgressPeakrate        int64           `json:"egressPeakrate"`
	EgressMinburst        int64           `json:"egressMinburst"`
	IngressPacketRate     int64           `json:"ingressPacketRate"`
	IngressPacketBurst    int64           `json:"ingressPacketBurst"`
	EgressPacketRate      int64           `json:"egressPacketRate"`
	EgressPacketBurst     int64           `json:"egressPacketBurst"`
	IngressMaxConnections int64           `json:"ingressMaxConnections"`
	EgressMaxConnections  int64           `json:"egressMaxConnections"`
	DSCP                  json.RawMessage `json:"dscp"`
}

// decodeQoS validates spec.qosControls; nil when it asks for nothing.
func decodeQoS(w *wireQoSControls) (*QoSControls, error) {
	if w == nil {
		return nil, nil
	}
	q := &QoSControls{DSCP: len(w.DSCP) > 0 && string(w.DSCP) != "null"}
	var err error
	if q.Ingress, err = decodeQoSDirection("spec.qosControls.ingress", w.IngressBandwidth, w.IngressBurst, w.IngressPeakrate, w.IngressMinburst,
		w.IngressPacketRate, w.IngressPacketBurst, w.IngressMaxConnections); err != nil {
		return nil, err
	}
	if q.Egress, err = decodeQoSDirection("spec.qosControls.egress", w.EgressBandwidth, w.EgressBurst, w.EgressPeakrate, w.EgressMinburst,
		w.EgressPacketRate, w.EgressPacketBurst, w.EgressMaxConnections); err != nil {
		return nil, err
	}
	if *q == (QoSControls{}) {
		return nil, nil
	}
	return q, nil
}

// decodeQoSDirection checks one direction's fields (named field+"Bandwidth"
// and so on) by Calico's rules: each limit is 0 (none) or in its range; a
// burst needs its rate; a peakrate must exceed the bandwidth; a minburst
// needs a peakrate. A burst left 0 gets Calico's default.
func decodeQoSDirection(field string, bw, burst, peak, minburst, rate, pburst, conns int64) (QoSDirection, error) {
	d := QoSDirection{Bandwidth: bw, Burst: burst, Peakrate: peak, Minburst: minburst, PacketRate: rate, PacketBurst: pburst, MaxConnections: conns}
	for _, c := range []struct {
		name     string
		v        int64
		min, max int64
	}{
		{"Bandwidth", bw, minBandwidth, maxBandwidth}, {"Burst", burst, minBurst, maxBurst},
		{"Peakrate", peak, minPeakrate, maxPeakrate}, {"Minburst", minburst, minMinburst, maxMinburst},
		{"PacketRate", rate, minPacketRate, maxPacketRate}, {"PacketBurst", pburst, minPacketBurst, maxPacketBurst},
		{"MaxConnections", conns, minConnections, maxConnections},
	} {
		if c.v != 0 && (c.v < c.min || c.v > c.max) {
			return d, errf(field+c.name, "%d must be 0 (no limit) or from %d to %d", c.v, c.min, c.max)
		}
	}
	switch {
	case burst != 0 && bw == 0:
		return d, errf(field+"Burst", "needs %sBandwidth", field)
	case peak != 0 && (bw == 0 || peak <= bw):
		return d, errf(field+"Peakrate", "%d must be greater than %sBandwidth (%d)", peak, field, bw)
	case minburst != 0 && peak == 0:
		return d, errf(field+"Minburst", "needs %sPeakrate", field)
	case pburst != 0 && rate == 0:
		return d, errf(field+"PacketBurst", "needs %sPacketRate", field)
	}
	if bw != 0 && burst == 0 {
		d.Burst = defaultBurst
	}
	if rate != 0 && pburst == 0 {
		d.PacketBurst = defaultPacketBurst
	}
	return d, nil
}

// String describes the limits, for logs and tests.
func (d QoSDirection) String() string {
	return fmt.Sprintf("bandwidth=%d burst=%d peakrate=%d minburst=%d packetRate=%d packetBurst=%d maxConnections=%d",
		d.Bandwidth, d.Burst, d.Peakrate, d.Minburst, d.PacketRate, d.PacketBurst, d.MaxConnections)
}
