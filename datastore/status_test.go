package datastore

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"ocelot/internal/embedetcd"
)

func TestHeartbeat(t *testing.T) {
	srv := startEtcd(t, embedetcd.Options{})
	cli := connect(t, srv.ClientURL)
	cfg := StatusConfig{Hostname: "r1-compute1", RegionString: "region-RegionOne", Interval: 200 * time.Millisecond, TTL: 2 * time.Second}
	w := NewStatusWriter(cli, cfg, testLog(t), nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.Run(ctx); close(done) }()

	statusKey := "/calico/felix/v2/region-RegionOne/host/r1-compute1/status"
	lastKey := "/calico/felix/v2/region-RegionOne/host/r1-compute1/last_reported_status"
	var first heartbeat
	poll(t, "first heartbeat", 10*time.Second, func() bool {
		r, err := cli.Get(context.Background(), statusKey)
		if err != nil || len(r.Kvs) == 0 {
			return false
		}
		return json.Unmarshal(r.Kvs[0].Value, &first) == nil
	})
	if !first.FirstUpdate {
		t.Error("first heartbeat should say first_update: true")
	}
	if _, err := time.Parse(time.RFC3339, first.Time); err != nil || !strings.HasSuffix(first.Time, "Z") {
		t.Errorf("time %q is not UTC RFC3339", first.Time)
	}
	var later heartbeat
	poll(t, "a later heartbeat", 10*time.Second, func() bool {
		r, _ := cli.Get(context.Background(), statusKey)
		return len(r.Kvs) > 0 && json.Unmarshal(r.Kvs[0].Value, &later) == nil && !later.FirstUpdate && later.Uptime > first.Uptime
	})
	r, _ := cli.Get(context.Background(), statusKey)
	if r.Kvs[0].Lease == 0 {
		t.Fatal("status has no lease")
	}
	ttl, err := cli.TimeToLive(context.Background(), clientv3.LeaseID(r.Kvs[0].Lease))
	if err != nil || ttl.GrantedTTL != 2 {
		t.Errorf("lease granted TTL %d, want 2 (%v)", ttl.GrantedTTL, err)
	}
	last, _ := cli.Get(context.Background(), lastKey)
	if len(last.Kvs) == 0 || last.Kvs[0].Lease != 0 {
		t.Fatalf("last_reported_status missing or leased: %+v", last.Kvs)
	}
	leases, _ := cli.Leases(context.Background())
	if len(leases.Leases) > 2 {
		t.Errorf("%d leases alive; old heartbeat leases should be revoked", len(leases.Leases))
	}

	// The agent stops: status expires with its lease, last_reported_status stays.
	cancel()
	<-done
	poll(t, "status to expire with its lease", 15*time.Second, func() bool {
		r, err := cli.Get(context.Background(), statusKey)
		return err == nil && len(r.Kvs) == 0
	})
	if last, _ := cli.Get(context.Background(), lastKey); len(last.Kvs) != 1 {
		t.Error("last_reported_status vanished")
	}
}

func TestEndpointStatus(t *testing.T) {
	srv := startEtcd(t, embedetcd.Options{})
	cli := connect(t, srv.ClientURL)
	cfg := StatusConfig{Hostname: "r1-compute1", RegionString: "region-RegionOne", EndpointReporting: true, EndpointDelay: 50 * time.Millisecond}
	w := NewStatusWriter(cli, cfg, testLog(t), nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go w.Run(ctx)

	id := EndpointStatusID{Orchestrator: "openstack", WorkloadID: nsOne + "/0b6a7c1e-3f2d-4e5a-9b8c-7d6e5f4a3b21", EndpointID: "5c9d0e1f-2a3b-4c4d-8e5f-6a7b8c9d0e1f"}
	// The exact key the Neutron driver parses (docs/calico.md, "Keys").
	key := "/calico/felix/v2/region-RegionOne/host/r1-compute1/workload/openstack/openstack-region-RegionOne%2f0b6a7c1e-3f2d-4e5a-9b8c-7d6e5f4a3b21/endpoint/5c9d0e1f-2a3b-4c4d-8e5f-6a7b8c9d0e1f"
	if got := cfg.EndpointKey(id); got != key {
		t.Fatalf("key\n got %s\nwant %s", got, key)
	}
	value := func() string {
		r, err := cli.Get(context.Background(), key)
		if err != nil || len(r.Kvs) == 0 {
			return ""
		}
		return string(r.Kvs[0].Value)
	}
	w.SetEndpointStatus(id, StatusUp)
	poll(t, "status up", 10*time.Second, func() bool { return value() == `{"status":"up"}` })
	w.SetEndpointStatus(id, StatusDown)
	poll(t, "status down", 10*time.Second, func() bool { return value() == `{"status":"down"}` })
	w.SetEndpointStatus(id, "")
	poll(t, "status deleted", 10*time.Second, func() bool { return value() == "" })

	// Many endpoints at once go out in a few transactions.
	for i := 0; i < 250; i++ {
		w.SetEndpointStatus(EndpointStatusID{"openstack", nsOne + "/vm", "port" + string(rune('a'+i%26)) + strings.Repeat("x", i/26)}, StatusUp)
	}
	poll(t, "250 endpoint statuses", 10*time.Second, func() bool {
		r, err := cli.Get(context.Background(), cfg.HostPrefix()+"workload/", clientv3.WithPrefix(), clientv3.WithCountOnly())
		return err == nil && r.Count == 250
	})

	// The sweep removes a stale key (an endpoint that left while the agent was down)
	// and repairs a tampered one.
	stale := cfg.EndpointKey(EndpointStatusID{"openstack", nsOne + "/gone", "gone"})
	put(t, cli, stale, `{"status":"up"}`)
	tampered := cfg.EndpointKey(EndpointStatusID{"openstack", nsOne + "/vm", "porta"})
	put(t, cli, tampered, `{"status":"down"}`)
	if err := w.Sweep(context.Background()); err != nil {
		t.Fatal(err)
	}
	r, _ := cli.Get(context.Background(), stale)
	if len(r.Kvs) != 1 {
		t.Fatal("sweep acted before the dataplane was in sync")
	}
	w.SetInSync()
	if err := w.Sweep(context.Background()); err != nil {
		t.Fatal(err)
	}
	poll(t, "stale key removed and tampered key repaired", 10*time.Second, func() bool {
		r1, _ := cli.Get(context.Background(), stale)
		r2, _ := cli.Get(context.Background(), tampered)
		return len(r1.Kvs) == 0 && len(r2.Kvs) == 1 && string(r2.Kvs[0].Value) == `{"status":"up"}`
	})
}

// TestTLS runs the syncer against an etcd that requires client
// certificates, with certificates the test makes.
func TestTLS(t *testing.T) {
	dir := t.TempDir()
	ca, caKey := makeCert(t, dir, "ca", nil, nil)
	makeCert(t, dir, "server", ca, caKey)
	makeCert(t, dir, "client", ca, caKey)
	srv := startEtcd(t, embedetcd.Options{CertFile: filepath.Join(dir, "server.pem"), KeyFile: filepath.Join(dir, "server-key.pem"),
		ClientCAFile: filepath.Join(dir, "ca.pem")})
	if !strings.HasPrefix(srv.ClientURL, "https://") {
		t.Fatalf("server URL %s", srv.ClientURL)
	}
	cli, err := Connect(ClientConfig{Endpoints: []string{srv.ClientURL}, CAFile: filepath.Join(dir, "ca.pem"),
		CertFile: filepath.Join(dir, "client.pem"), KeyFile: filepath.Join(dir, "client-key.pem")}, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	put(t, cli, clusterInfoKey(), readyJSON)
	put(t, cli, policyKey(nsOne, "p"), sgPolicyJSON(nsOne, "sg"))
	c := runSyncer(t, cli, SyncerConfig{Hostname: "h", Namespace: nsOne})
	c.waitInSync(t)
	if c.countFor(policyKey(nsOne, "p")) != 1 {
		t.Error("policy not received over TLS")
	}

	// Without a client certificate the server refuses.
	anon, err := Connect(ClientConfig{Endpoints: []string{srv.ClientURL}, CAFile: filepath.Join(dir, "ca.pem")}, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	defer anon.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if _, err := anon.Get(ctx, "x"); err == nil {
		t.Error("etcd accepted a client without a certificate")
	}
	// A bad CA file is reported, naming the file.
	if _, err := Connect(ClientConfig{Endpoints: []string{srv.ClientURL}, CAFile: filepath.Join(dir, "server-key.pem")}, nil); err == nil ||
		!strings.Contains(err.Error(), "server-key.pem") {
		t.Errorf("bad CA file: %v", err)
	}
}

// makeCert writes <name>.pem and <name>-key.pem, self-signed when parent is nil.
func makeCert(t *testing.T, dir, name string, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "ocelot-test-" + name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:     []string{"localhost"},
	}
	signer, signerKey := tmpl, key
	if parent == nil {
		tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
	} else {
		signer, signerKey = parent, parentKey
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signerKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	keyDER, _ := x509.MarshalECPrivateKey(key)
	os.WriteFile(filepath.Join(dir, name+".pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(filepath.Join(dir, name+"-key.pem"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600)
	return cert, key
}

// Host endpoint statuses go where Felix writes them, without a region,
// and the sweep covers them too.
func TestHostEndpointStatus(t *testing.T) {
	srv := startEtcd(t, embedetcd.Options{})
	cli := connect(t, srv.ClientURL)
	cfg := StatusConfig{Hostname: "r1-compute1", RegionString: "region-RegionOne", EndpointReporting: true, EndpointDelay: 50 * time.Millisecond}
	w := NewStatusWriter(cli, cfg, testLog(t), nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go w.Run(ctx)
	key := "/calico/felix/v1/host/r1-compute1/endpoint/eth0%2fmgmt"
	if got := cfg.HostEndpointKey("eth0/mgmt"); got != key {
		t.Fatalf("key\n got %s\nwant %s", got, key)
	}
	value := func(k string) string {
		r, err := cli.Get(context.Background(), k)
		if err != nil || len(r.Kvs) == 0 {
			return ""
		}
		return string(r.Kvs[0].Value)
	}
	for _, st := range []string{"error", "up", "down"} {
		w.SetHostEndpointStatus("eth0/mgmt", st)
		poll(t, "status "+st, 10*time.Second, func() bool { return value(key) == `{"status":"`+st+`"}` })
	}
	stale := cfg.HostEndpointKey("gone")
	put(t, cli, stale, `{"status":"up"}`)
	w.SetInSync()
	if err := w.Sweep(context.Background()); err != nil {
		t.Fatal(err)
	}
	poll(t, "stale host endpoint key removed", 10*time.Second, func() bool { return value(stale) == "" && value(key) != "" })
	w.SetHostEndpointStatus("eth0/mgmt", "")
	poll(t, "status deleted", 10*time.Second, func() bool { return value(key) == "" })
}
