package calc

import (
	"maps"
	"slices"

	"ocelot/contract"
	"ocelot/datastore/resource"
)

// Live migration: which part each local endpoint plays in a migration of
// its VM, from the LiveMigration resources of the local region and the
// endpoints they name (docs/design/openstack.md).
//
//   - Target: a LiveMigration names the endpoint as its target and the
//     source endpoint it names still exists (anywhere in the cluster).
//     The dataplane holds the target's routes back until the VM
//     announces itself. When the source endpoint goes, the VM has nowhere
//     else to be: the target stops being one even if the LiveMigration
//     lingers.
//   - Source: a LiveMigration names the endpoint, or its whole workload,
//     as its source (and it is no target).
//   - Otherwise none.
//
// The UID is the greatest of the LiveMigrations that give the role, as in
// Felix, so that overlapping migrations give a stable answer.
type migrations struct {
	byKey map[resource.Key]*resource.LiveMigration
	// LiveMigrations by the identity they name: targets and
	// endpoint-level sources by endpoint, workload-level sources by
	// workload (EndpointID "").
	targets, sources map[resource.EndpointIdentity]map[resource.Key]struct{}
	// bySourceKey finds the LiveMigrations whose source is an endpoint
	// key, to re-evaluate their target when that endpoint comes or goes.
	bySourceKey map[resource.Key]map[resource.Key]struct{}
}

func newMigrations() *migrations {
	return &migrations{byKey: map[resource.Key]*resource.LiveMigration{},
		targets: map[resource.EndpointIdentity]map[resource.Key]struct{}{}, sources: map[resource.EndpointIdentity]map[resource.Key]struct{}{},
		bySourceKey: map[resource.Key]map[resource.Key]struct{}{}}
}

func addRef[K comparable](m map[K]map[resource.Key]struct{}, k K, lm resource.Key) {
	if m[k] == nil {
		m[k] = map[resource.Key]struct{}{}
	}
	m[k][lm] = struct{}{}
}

func dropRef[K comparable](m map[K]map[resource.Key]struct{}, k K, lm resource.Key) {
	delete(m[k], lm)
	if len(m[k]) == 0 {
		delete(m, k)
	}
}

// onLiveMigration records a LiveMigration (nil: deleted, or invalid) and
// marks the local endpoints it named before and names now.
func (g *Graph) onLiveMigration(key resource.Key, v any) {
	m := g.migrations
	if inv, ok := v.(*resource.Invalid); ok {
		g.report(Problem{key.Path(), "invalid LiveMigration ignored: the endpoints it names route as if no migration were under way: " + inv.Reason.Error()})
	}
	if old := m.byKey[key]; old != nil {
		dropRef(m.targets, old.Target, key)
		dropRef(m.sources, old.Source, key)
		if old.Source.EndpointID != "" {
			dropRef(m.bySourceKey, old.Source.EndpointKey(), key)
		}
		delete(m.byKey, key)
		g.dirtyMigrationEndpoints(old)
	}
	lm, _ := v.(*resource.LiveMigration)
	if lm == nil {
		return
	}
	m.byKey[key] = lm
	addRef(m.targets, lm.Target, key)
	addRef(m.sources, lm.Source, key)
	if lm.Source.EndpointID != "" {
		addRef(m.bySourceKey, lm.Source.EndpointKey(), key)
	}
	g.dirtyMigrationEndpoints(lm)
}

// dirtyMigrationEndpoints marks the local endpoints a LiveMigration names.
func (g *Graph) dirtyMigrationEndpoints(lm *resource.LiveMigration) {
	for _, id := range []resource.EndpointIdentity{lm.Target, lm.Source} {
		if id.EndpointID != "" {
			if k := id.EndpointKey(); g.locals[k] != nil {
				g.dirtyEndpoints[k] = struct{}{}
			}
			continue
		}
		for k, le := range g.locals { // a workload-level source: rare, and locals are few
			if workload(identityOf(le.ep)) == id {
				g.dirtyEndpoints[k] = struct{}{}
			}
		}
	}
}

// onEndpointPresence re-evaluates the targets of migrations whose source
// endpoint just came or went.
func (g *Graph) onEndpointPresence(key resource.Key) {
	for lmKey := range g.migrations.bySourceKey[key] {
		if k := g.migrations.byKey[lmKey].Target.EndpointKey(); g.locals[k] != nil {
			g.dirtyEndpoints[k] = struct{}{}
		}
	}
}

func identityOf(ep *resource.Endpoint) resource.EndpointIdentity {
	return resource.EndpointIdentity{Hostname: ep.Host, Orchestrator: ep.Orchestrator, WorkloadID: ep.WorkloadID(), EndpointID: ep.EndpointID}
}

// workload is the identity of the endpoint's whole workload.
func workload(id resource.EndpointIdentity) resource.EndpointIdentity {
	id.EndpointID = ""
	return id
}

// migrationRole is a local endpoint's role and the migration's UID.
func (g *Graph) migrationRole(ep *resource.Endpoint) (contract.LiveMigrationRole, string) {
	m := g.migrations
	if len(m.byKey) == 0 {
		return contract.NoMigration, ""
	}
	id := identityOf(ep)
	var live []resource.Key
	for lmKey := range m.targets[id] {
		src := m.byKey[lmKey].Source
		if src.EndpointID == "" || g.items[src.EndpointKey()] != nil {
			live = append(live, lmKey)
		}
	}
	if len(live) > 0 {
		return contract.MigrationTarget, g.greatestUID(live)
	}
	sources := slices.Collect(maps.Keys(m.sources[id]))
	sources = append(sources, slices.Collect(maps.Keys(m.sources[workload(id)]))...)
	if len(sources) > 0 {
		return contract.MigrationSource, g.greatestUID(sources)
	}
	return contract.NoMigration, ""
}

func (g *Graph) greatestUID(keys []resource.Key) string {
	best := ""
	for _, k := range keys {
		best = max(best, g.migrations.byKey[k].UID)
	}
	return best
}
