package resource

import (
	"encoding/json"
	"strings"
)

// LiveMigration is a validated LiveMigration: the Neutron driver writes one
// per migrating port, in the region's namespace, named after the
// destination endpoint, before it writes that endpoint. Source and Target
// identify the two WorkloadEndpoints of the port (they differ only in
// Hostname). Source may name a whole workload (EndpointID empty: every
// endpoint of it).
type LiveMigration struct {
	Namespace, Name string
	UID             string // metadata.uid, for logs; may be empty
	Source, Target  EndpointIdentity
}

// EndpointIdentity names a WorkloadEndpoint as Felix's v1 model does; it
// maps to the endpoint's key (EndpointKey).
type EndpointIdentity struct {
	Hostname     string
	Orchestrator string
	WorkloadID   string // "<namespace>/<workload>"
	EndpointID   string // "" in a workload-level source
}

// Namespace is the namespace part of WorkloadID.
func (id EndpointIdentity) Namespace() string {
	ns, _, _ := strings.Cut(id.WorkloadID, "/")
	return ns
}

// Workload is the workload part of WorkloadID.
func (id EndpointIdentity) Workload() string {
	_, w, _ := strings.Cut(id.WorkloadID, "/")
	return w
}

// EndpointKey is the key of the WorkloadEndpoint the identity names
// (meaningful only with an EndpointID).
func (id EndpointIdentity) EndpointKey() Key {
	name := EscapeEndpointNamePart(id.Hostname) + "-" + EscapeEndpointNamePart(id.Orchestrator) + "-" +
		EscapeEndpointNamePart(id.Workload()) + "-" + EscapeEndpointNamePart(id.EndpointID)
	return Key{Kind: KindWorkloadEndpoint, Namespace: id.Namespace(), Name: name}
}

type wireIdentity struct {
	Hostname       string `json:"hostname"`
	OrchestratorID string `json:"orchestratorID"`
	WorkloadID     string `json:"workloadID"`
	EndpointID     string `json:"endpointID"`
}

type wireLiveMigration struct {
	Kind     string `json:"kind"`
	Metadata struct {
		UID string `json:"uid"`
	} `json:"metadata"`
	Spec struct {
		Source *struct {
			Workload         *wireIdentity `json:"workload"`
			WorkloadEndpoint *wireIdentity `json:"workloadEndpoint"`
		} `json:"source"`
		Target *struct {
			Selector         *string       `json:"selector"`
			WorkloadEndpoint *wireIdentity `json:"workloadEndpoint"`
		} `json:"target"`
	} `json:"spec"`
}

func decodeLiveMigration(namespace, name string, data []byte) (*LiveMigration, error) {
	var w wireLiveMigration
	if err := json.Unmarshal(data, &w); err != nil {
		return nil, jsonError(err)
	}
	if w.Kind != "" && w.Kind != string(KindLiveMigration) {
		return nil, errf("kind", "is %+q but the key holds %s resources", clip(w.Kind), KindLiveMigration)
	}
	lm := &LiveMigration{Namespace: namespace, Name: name}
	if uid := w.Metadata.UID; uid != "" {
		if !isIdentityPart(uid) {
			return nil, errf("metadata.uid", "%+q must be 1-253 characters of [A-Za-z0-9._-]", clip(uid))
		}
		lm.UID = uid
	}
	src, tgt := w.Spec.Source, w.Spec.Target
	switch {
	case src == nil || (src.Workload == nil) == (src.WorkloadEndpoint == nil):
		return nil, errf("spec.source", "must have exactly one of workload and workloadEndpoint")
	case tgt == nil || (tgt.Selector == nil) == (tgt.WorkloadEndpoint == nil):
		return nil, errf("spec.target", "must have exactly one of selector and workloadEndpoint")
	case tgt.Selector != nil:
		// KubeVirt's form. Ocelot serves OpenStack, whose driver names
		// the target endpoint.
		return nil, errf("spec.target.selector", "is not supported: Ocelot follows migrations whose target names a workloadEndpoint (OpenStack)")
	}
	var err error
	if src.Workload != nil {
		if src.Workload.EndpointID != "" {
			return nil, errf("spec.source.workload.endpointID", "is not a field of a workload identity")
		}
		lm.Source, err = decodeIdentity("spec.source.workload", namespace, src.Workload, false)
	} else {
		lm.Source, err = decodeIdentity("spec.source.workloadEndpoint", namespace, src.WorkloadEndpoint, true)
	}
	if err != nil {
		return nil, err
	}
	if lm.Target, err = decodeIdentity("spec.target.workloadEndpoint", namespace, tgt.WorkloadEndpoint, true); err != nil {
		return nil, err
	}
	if lm.Source.Hostname == lm.Target.Hostname && lm.Source.WorkloadID == lm.Target.WorkloadID && lm.Source.EndpointID == lm.Target.EndpointID {
		return nil, errf("spec.target.workloadEndpoint", "names the source endpoint itself")
	}
	return lm, nil
}

// decodeIdentity validates an endpoint identity. Its workload must be in
// the LiveMigration's own namespace: a region's driver migrates only its
// own region's ports.
func decodeIdentity(field, namespace string, w *wireIdentity, needEndpoint bool) (EndpointIdentity, error) {
	id := EndpointIdentity{Hostname: w.Hostname, Orchestrator: w.OrchestratorID, WorkloadID: w.WorkloadID, EndpointID: w.EndpointID}
	for _, f := range []struct{ name, v string }{{"hostname", w.Hostname}, {"orchestratorID", w.OrchestratorID}} {
		if !isIdentityPart(f.v) {
			return id, errf(field+"."+f.name, "%+q must be 1-253 characters of [A-Za-z0-9._-]", clip(f.v))
		}
	}
	ns, workload, ok := strings.Cut(w.WorkloadID, "/")
	if !ok || ns != namespace || !isIdentityPart(workload) {
		return id, errf(field+".workloadID", "%+q must be %q, '/' and 1-253 characters of [A-Za-z0-9._-]", clip(w.WorkloadID), namespace)
	}
	if needEndpoint && !isIdentityPart(w.EndpointID) {
		return id, errf(field+".endpointID", "%+q must be 1-253 characters of [A-Za-z0-9._-]", clip(w.EndpointID))
	}
	return id, nil
}

// isIdentityPart reports whether s can be one part of an endpoint's name
// (a host, orchestrator, workload or endpoint): the characters of a
// WorkloadEndpoint name.
func isIdentityPart(s string) bool {
	if len(s) == 0 || len(s) > maxNameLength {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !isAlnum(c) && c != '-' && c != '.' && c != '_' {
			return false
		}
	}
	return true
}
