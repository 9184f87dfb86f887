package main

import (
	"fmt"
	"strings"
	"time"

	"ocelot/datastore"
)

// datastoreReporter is the health component of the connection to etcd.
// It only ever affects readiness: while etcd is away the dataplane keeps
// enforcing what it has, and restarting the agent would not bring etcd
// back.
const datastoreReporter = "Datastore"

// datastoreStatus is what the syncer tells about its connection.
type datastoreStatus interface{ Status() datastore.Status }

// reportDatastore copies the connection state into the health table.
func reportDatastore(h *health, s datastoreStatus) {
	st := s.Status()
	detail := ""
	if !st.Connected {
		detail = strings.Join(strings.Fields(fmt.Sprintf("etcd unreachable for %v: %v",
			time.Since(st.Since).Round(time.Second), st.Err)), " ")
	}
	h.report(datastoreReporter, true, st.Connected, detail)
}
