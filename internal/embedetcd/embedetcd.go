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

	// Cluster membership. The zero values make a cluster of this member
	// alone, with its peer port on the loopback.
	Name           string // member name; default "ocelot-test"
	PeerHost       string // address peers reach it on; default 127.0.0.1
	PeerPort       int    // 0 picks a free one
	InitialCluster string // "name=http://host:port,...", every member of a new cluster

	// ClientKeepAlive, when set, makes the server ping a client idle for
	// that long and drop it when the ping is not answered within as long
	// again (etcd's default: two hours and 20 s).
	ClientKeepAlive time.Duration
}

// Server is a running embedded etcd.
type Server struct {
	Dir       string
	ClientURL string // the URL clients dial
	PeerURL   string // the URL peers dial
	opts      Options
	etcd      *embed.Etcd
}

// Err delivers an error when the server stops on its own.
func (s *Server) Err() <-chan error { return s.etcd.Err() }

// Start runs an etcd server with its data in dir and waits until it
// serves (30 s at most).
func Start(dir string, opts Options) (*Server, error) {
	s, err := newServer(dir, opts)
	if err != nil {
		return nil, err
	}
	return s, s.start(true)
}

// StartMember starts one member of a cluster without waiting for it to
// serve: a member serves only once a majority of the cluster is up, which
// may be later. Err reports when it stops on its own.
func StartMember(dir string, opts Options) (*Server, error) {
	s, err := newServer(dir, opts)
	if err != nil {
		return nil, err
	}
	return s, s.start(false)
}

func newServer(dir string, opts Options) (*Server, error) {
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
	if opts.Name == "" {
		opts.Name = "ocelot-test"
	}
	if opts.PeerHost == "" {
		opts.PeerHost = "127.0.0.1"
	}
	if opts.PeerPort == 0 {
		p, err := FreePort(opts.PeerHost)
		if err != nil {
			return nil, err
		}
		opts.PeerPort = p
	}
	s := &Server{Dir: dir, opts: opts}
	scheme := "http"
	if opts.CertFile != "" {
		scheme = "https"
	}
	s.ClientURL = fmt.Sprintf("%s://%s", scheme, net.JoinHostPort(opts.Host, fmt.Sprint(opts.Port)))
	s.PeerURL = "http://" + net.JoinHostPort(opts.PeerHost, fmt.Sprint(opts.PeerPort))
	return s, nil
}

func (s *Server) start(wait bool) error {
	cfg := embed.NewConfig()
	cfg.Name = s.opts.Name
	cfg.Dir = s.Dir
	cfg.Logger = "zap"
	cfg.LogLevel = "error"
	cfg.LogOutputs = []string{"/dev/null"}
	if s.opts.LogFile != "" {
		cfg.LogOutputs = []string{s.opts.LogFile}
	}
	cfg.UnsafeNoFsync = true
	cu, _ := url.Parse(s.ClientURL)
	pu, _ := url.Parse(s.PeerURL)
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{*cu}, []url.URL{*cu}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{*pu}, []url.URL{*pu}
	cfg.InitialCluster = cfg.Name + "=" + pu.String()
	if s.opts.InitialCluster != "" {
		cfg.InitialCluster = s.opts.InitialCluster
		cfg.InitialClusterToken = "ocelot-lab"
	}
	if s.opts.ClientKeepAlive > 0 {
		cfg.GRPCKeepAliveInterval, cfg.GRPCKeepAliveTimeout = s.opts.ClientKeepAlive, s.opts.ClientKeepAlive
	}
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
	if !wait {
		s.etcd = e
		return nil
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
	return s.start(true)
}

// FreePort asks the kernel for an unused TCP port on host.
func FreePort(host string) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, err
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port, nil
}
