package scalebench

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"ocelot/datastore"
	"ocelot/datastore/resource"
)

// Cloud is the generated OpenStack cloud: endpoints spread over compute
// hosts in several regions, each in two security groups, and one policy per
// group per region (SSH from its own group, TCP 80 from the next group of
// any region), as the Neutron driver writes them.
type Cloud struct {
	Endpoints int      // workload endpoints, all regions together
	Regions   []string // OpenStack region names
	Groups    int      // security groups
	PerHost   int      // endpoints per compute host
}

// Hosts is the number of compute hosts.
func (c Cloud) Hosts() int { return (c.Endpoints + c.PerHost - 1) / c.PerHost }

// host is compute host h: its name and region. Hosts alternate regions.
func (c Cloud) host(h int) (name, region string) {
	region = c.Regions[h%len(c.Regions)]
	return fmt.Sprintf("%s-compute-%04d", strings.ToLower(region), h), region
}

func namespace(region string) string { return "openstack-region-" + region }

func sgID(g int) string { return fmt.Sprintf("%08x-5c5c-4000-8000-%012x", g, g) }

// endpoint is endpoint i of the cloud, in the given groups.
type endpoint struct {
	i                  int
	host, region, port string
	vm                 string
}

func (c Cloud) endpoint(i int) endpoint {
	h := i / c.PerHost
	host, region := c.host(h)
	return endpoint{i: i, host: host, region: region, vm: fmt.Sprintf("%08x-7a7a-4000-8000-%012x", i, i), port: fmt.Sprintf("%08x-e0e0-4000-8000-%012x", i, i)}
}

func escapeDashes(s string) string { return strings.ReplaceAll(s, "-", "--") }

func (e endpoint) name() string {
	return escapeDashes(e.host) + "-openstack-" + escapeDashes(e.vm) + "-" + escapeDashes(e.port)
}

func (e endpoint) key() string {
	return resource.Key{Kind: resource.KindWorkloadEndpoint, Namespace: namespace(e.region), Name: e.name()}.Path()
}

// statusID is the endpoint's identity in the status keys its host writes.
func (e endpoint) statusID() datastore.EndpointStatusID {
	return datastore.EndpointStatusID{Orchestrator: "openstack", WorkloadID: namespace(e.region) + "/" + e.vm, EndpointID: e.port}
}

// value is the WorkloadEndpoint JSON; version changes the port's address
// so that every churn write is a real change.
func (e endpoint) value(groups []int, version int) string {
	ns := namespace(e.region)
	labels := map[string]string{
		"projectcalico.org/namespace":              ns,
		"projectcalico.org/orchestrator":           "openstack",
		"projectcalico.org/openstack-project-id":   "2f8b6e0c4d9a4b1e8c3f5a7d9e1b3c5d",
		"projectcalico.org/openstack-network-name": "tenant-net",
	}
	for _, g := range groups {
		labels["sg.projectcalico.org/openstack-"+sgID(g)] = fmt.Sprintf("sg-%d", g)
	}
	n := e.i + version<<20
	ip := fmt.Sprintf("10.%d.%d.%d", n>>16&255, n>>8&255, n&255)
	return pyJSON(map[string]any{
		"kind": "WorkloadEndpoint", "apiVersion": "projectcalico.org/v3",
		"metadata": map[string]any{"name": e.name(), "namespace": ns, "uid": "uid-" + e.port,
			"creationTimestamp": "2026-08-22T10:00:00Z", "labels": labels,
			"annotations": map[string]string{"openstack.projectcalico.org/network-id": "8f2e4d6c-1a3b-4c5d-9e7f-0a1b2c3d4e5f"}},
		"spec": map[string]any{"orchestrator": "openstack", "workload": e.vm, "node": e.host, "endpoint": e.port,
			"interfaceName": "tap" + e.port[:11], "mac": "fa:16:3e:00:00:01", "ipv4Gateway": "10.0.0.1",
			"ipNetworks": []string{ip + "/32"}, "allowedIps": []string{}},
	})
}

func policyKey(region string, g int) string {
	return resource.Key{Kind: resource.KindNetworkPolicy, Namespace: namespace(region), Name: "ossg.default." + sgID(g)}.Path()
}

func (c Cloud) policyValue(region string, g int) string {
	rule := func(port int, sel string, all bool) map[string]any {
		src := map[string]any{"selector": "has(sg.projectcalico.org/openstack-" + sel + ")"}
		if all {
			src["namespaceSelector"] = "all()"
		}
		return map[string]any{"action": "Allow", "ipVersion": 4, "protocol": 6, "destination": map[string]any{"ports": []int{port}}, "source": src}
	}
	return pyJSON(map[string]any{
		"kind": "NetworkPolicy", "apiVersion": "projectcalico.org/v3",
		"metadata": map[string]any{"name": "ossg.default." + sgID(g), "namespace": namespace(region), "uid": "uid-" + sgID(g),
			"creationTimestamp": "2026-08-22T09:59:00Z"},
		"spec": map[string]any{
			"selector": "has(sg.projectcalico.org/openstack-" + sgID(g) + ")",
			"ingress":  []any{rule(22, sgID(g), false), rule(80, sgID((g+1)%c.Groups), true)},
			"egress":   []any{map[string]any{"action": "Allow", "ipVersion": 4}, map[string]any{"action": "Allow", "ipVersion": 6}},
		},
	})
}

const clusterInfo = `{"kind": "ClusterInformation", "apiVersion": "projectcalico.org/v3", "metadata": {"name": "default"}, "spec": {"clusterGUID": "5e0b8f2a9c7d4e1fa3b6c8d0e2f4a6b8", "clusterType": "openstack", "datastoreReady": true}}`

// groupsOf picks an endpoint's two groups, the same on every run.
func (c Cloud) groupsOf(i, version int) []int {
	r := rand.New(rand.NewPCG(uint64(i), uint64(version)))
	return []int{r.IntN(c.Groups), r.IntN(c.Groups)}
}

// load writes the whole cloud, 100 keys a transaction, and returns the
// number of keys and the bytes of their values.
func (c Cloud) load(ctx context.Context, cli *clientv3.Client) (keys, bytes int, err error) {
	var kvs [][2]string
	kvs = append(kvs, [2]string{resource.Key{Kind: resource.KindClusterInformation, Name: "default"}.Path(), clusterInfo})
	for _, r := range c.Regions {
		for g := 0; g < c.Groups; g++ {
			kvs = append(kvs, [2]string{policyKey(r, g), c.policyValue(r, g)})
		}
	}
	for i := 0; i < c.Endpoints; i++ {
		e := c.endpoint(i)
		kvs = append(kvs, [2]string{e.key(), e.value(c.groupsOf(i, 0), 0)})
	}
	for _, kv := range kvs {
		bytes += len(kv[1])
	}
	work := make(chan []clientv3.Op)
	errs := make(chan error, 4)
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ops := range work {
				if _, err := cli.Txn(ctx).Then(ops...).Commit(); err != nil {
					select {
					case errs <- err:
					default:
					}
				}
			}
		}()
	}
	for i := 0; i < len(kvs); i += 100 {
		ops := make([]clientv3.Op, 0, 100)
		for _, kv := range kvs[i:min(i+100, len(kvs))] {
			ops = append(ops, clientv3.OpPut(kv[0], kv[1]))
		}
		work <- ops
	}
	close(work)
	wg.Wait()
	select {
	case err = <-errs:
		return 0, 0, fmt.Errorf("loading the cloud: %w", err)
	default:
	}
	return len(kvs), bytes, nil
}

// write is one churn write: the revision etcd gave it and when the Put
// started.
type write struct {
	rev int64
	at  time.Time
	put time.Duration // the Put's round trip
}

// churn updates random endpoints (a VM's security groups change) at rate
// writes per second until ctx ends, as Neutron does on a busy cloud, and
// returns the writes that succeeded and how many failed or were dropped.
// Eight writers share the pace, so one slow Put does not lower the rate.
func (c Cloud) churn(ctx context.Context, cli *clientv3.Client, rate int, seed uint64) ([]write, int) {
	rng := rand.New(rand.NewPCG(seed, 7))
	jobs := make(chan [2]string, 4*rate)
	var mu sync.Mutex
	var writes []write
	failed := 0
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for kv := range jobs {
				began := time.Now()
				pctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				resp, err := cli.Put(pctx, kv[0], kv[1])
				cancel()
				mu.Lock()
				if err != nil {
					failed++
				} else {
					writes = append(writes, write{rev: resp.Header.Revision, at: began, put: time.Since(began)})
				}
				mu.Unlock()
			}
		}()
	}
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	version := int(seed) << 12
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-tick.C:
			version++
			i := rng.IntN(c.Endpoints)
			e := c.endpoint(i)
			select {
			case jobs <- [2]string{e.key(), e.value(c.groupsOf(i, version), version)}:
			default:
				failed++ // the writers are this far behind: count it, keep the pace
			}
		}
	}
	close(jobs)
	wg.Wait()
	return writes, failed
}

// pyJSON renders JSON with Python's separators (", " and ": "), the form
// the Neutron driver writes.
func pyJSON(v any) string {
	b, _ := json.Marshal(v)
	var out strings.Builder
	out.Grow(len(b) + len(b)/8)
	inString, escaped := false, false
	for _, c := range b {
		out.WriteByte(c)
		switch {
		case inString && escaped:
			escaped = false
		case inString && c == '\\':
			escaped = true
		case c == '"':
			inString = !inString
		case !inString && (c == ',' || c == ':'):
			out.WriteByte(' ')
		}
	}
	return out.String()
}
