// Package embedetcd runs a real etcd server (go.etcd.io/etcd/server/v3/embed)
// inside the process, for Ocelot's tests, benchmarks and demo. It can listen
// on any address (such as a lab bridge inside a network namespace), use TLS,
// and be stopped and restarted on the same data and ports.
package embedetcd

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	"go.etcd.io/etcd/server/v3/embed"
)

// Options configure a server. The zero value serves plain HTTP on a free
// loopback port.
type Options struct {
	Host string // address to listen on; default 127.0.0.1
	Port int    // client port; 0 picks a free one

	// TLS, when CertFile is set, serves HTTPS; with ClientCAFile, clients
	// must present a certificate signed by it.
	CertFile, KeyFile, ClientCAFile string

	// LogFile receives etcd's own (error-level) log; default: discarded.
	LogFile string
}

// Server is a running embedded etcd.
type Server struct {
	Dir       string
	ClientURL string // the URL clients dial
	opts      Options
	peerPort  int
	etcd      *embed.Etcd
}

// Start runs an etcd server with its data in dir.
func Start(dir string, opts Options) (*Server, error) {
	if opts.Host == "" {
		opts.Host = "127.0.0.1"
	}
	if opts.Port == 0 {
		p, err := FreePort(opts.Host)
		if err != nil {
			return nil, err
		}
		opts.Port = p
	}
	peer, err := FreePort("127.0.0.1")
	if err != nil {
		return nil, err
	}
	s := &Server{Dir: dir, opts: opts, peerPort: peer}
	scheme := "http"
	if opts.CertFile != "" {
		scheme = "https"
	}
	s.ClientURL = fmt.Sprintf("%s://%s", scheme, net.JoinHostPort(opts.Host, fmt.Sprint(opts.Port)))
	return s, s.start()
}

func (s *Server) start() error {
	cfg := embed.NewConfig()
	cfg.Name = "ocelot-test"
	cfg.Dir = s.Dir
	cfg.Logger = "zap"
	cfg.LogLevel = "error"
	cfg.LogOutputs = []string{"/dev/null"}
	if s.opts.LogFile != "" {
		cfg.LogOutputs = []string{s.opts.LogFile}
	}
	cfg.UnsafeNoFsync = true
	cu, _ := url.Parse(s.ClientURL)
	pu, _ := url.Parse(fmt.Sprintf("http://127.0.0.1:%d", s.peerPort))
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{*cu}, []url.URL{*cu}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{*pu}, []url.URL{*pu}
	cfg.InitialCluster = cfg.Name + "=" + pu.String()
	if s.opts.CertFile != "" {
		cfg.ClientTLSInfo = transport.TLSInfo{CertFile: s.opts.CertFile, KeyFile: s.opts.KeyFile,
			TrustedCAFile: s.opts.ClientCAFile, ClientCertAuth: s.opts.ClientCAFile != ""}
	}
	if _, err := os.Stat(s.Dir + "/member"); err == nil {
		cfg.ClusterState = embed.ClusterStateFlagExisting
	}
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return fmt.Errorf("starting embedded etcd: %w", err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(30 * time.Second):
		e.Close()
		return fmt.Errorf("embedded etcd at %s did not become ready in 30s", s.ClientURL)
	}
	s.etcd = e
	return nil
}

// Stop shuts the server down; its data stays in Dir.
func (s *Server) Stop() {
	if s.etcd != nil {
		s.etcd.Close()
		s.etcd = nil
	}
}

// Restart starts a stopped server again on the same data and ports.
func (s *Server) Restart() error {
	s.Stop()
	return s.start()
}

// FreePort asks the kernel for an unused TCP port on host.
func FreePort(host string) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
