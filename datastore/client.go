package datastore

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"google.golang.org/grpc"
	grpcbackoff "google.golang.org/grpc/backoff"
)

// Connection timing. etcd refuses client pings more often than every 5 s
// (--grpc-keepalive-min-time), so the keepalive interval stays above it.
const (
	dialTimeout      = 3 * time.Second
	keepAliveTime    = 6 * time.Second
	keepAliveTimeout = 3 * time.Second
)

// Flow-control windows of every etcd connection, fixed. gRPC's default
// sizes its windows by measurement: it sends a ping with nearly every data
// frame that arrives while none is outstanding, so under a steady trickle
// of watch events each event cost a write and a read of a ping ack more,
// on two more goroutines. Fixed windows send no such pings. A stream's
// window holds a listing's page (2,000 endpoints, about a megabyte), so
// that a page does not wait for a window update; it is also what a paused
// agent's connection can have buffered when it resumes.
const (
	streamWindow = 2 << 20
	connWindow   = 4 << 20
)

// ClientConfig is what Connect needs; config.Config provides it.
type ClientConfig struct {
	Endpoints                 []string
	CAFile, CertFile, KeyFile string
	Username, Password        string
}

// Connect creates an etcd client. It does not wait for etcd: the client
// connects in the background and retries, so callers see errors per call.
// With several endpoints it keeps a connection to each and spreads
// requests over those that answer (gRPC round robin); a request refused by
// a member without a leader is retried on the next one.
func Connect(cc ClientConfig, log *slog.Logger) (*clientv3.Client, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg := clientv3.Config{
		Endpoints:   cc.Endpoints,
		DialTimeout: dialTimeout,
		// A member that stops answering (paused, or cut off by a network
		// that drops instead of refusing) is left after keepAliveTime +
		// keepAliveTimeout; the syncer's freshness check is the backstop.
		DialKeepAliveTime:    keepAliveTime,
		DialKeepAliveTimeout: keepAliveTimeout,
		Username:             cc.Username,
		Password:             cc.Password,
		Logger:               zap.New(&slogCore{log: log.With("component", "etcd-client")}),
		// Reconnect quickly after an etcd restart (gRPC's default backoff
		// grows to two minutes).
		DialOptions: []grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           grpcbackoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 3 * time.Second},
			MinConnectTimeout: dialTimeout,
		}),
			grpc.WithStaticStreamWindowSize(streamWindow), grpc.WithStaticConnWindowSize(connWindow),
			grpc.WithContextDialer(dialQuiet)},
	}
	secure := false
	for _, e := range cc.Endpoints {
		if strings.HasPrefix(e, "https://") {
			secure = true
		}
	}
	if secure || cc.CAFile != "" || cc.CertFile != "" {
		t, err := tlsConfig(cc)
		if err != nil {
			return nil, err
		}
		cfg.TLS = t
	}
	return clientv3.New(cfg)
}

func tlsConfig(cc ClientConfig) (*tls.Config, error) {
	t := &tls.Config{MinVersion: tls.VersionTLS12}
	if cc.CAFile != "" {
		pem, err := os.ReadFile(cc.CAFile)
		if err != nil {
			return nil, fmt.Errorf("reading EtcdCaFile %s: %w", cc.CAFile, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("EtcdCaFile %s: no PEM certificates found", cc.CAFile)
		}
		t.RootCAs = pool
	}
	if cc.CertFile != "" || cc.KeyFile != "" {
		cert, err := tls.LoadX509KeyPair(cc.CertFile, cc.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("loading EtcdCertFile %s / EtcdKeyFile %s: %w", cc.CertFile, cc.KeyFile, err)
		}
		t.Certificates = []tls.Certificate{cert}
	}
	return t, nil
}

// slogCore forwards the etcd client's zap logging, warnings and above only,
// into the agent's structured log. The client warns on every retried
// request, which while etcd is away is several a second, so its warnings
// become debug lines; the syncer reports the connection itself.
type slogCore struct {
	log    *slog.Logger
	fields []zapcore.Field
}

func (c *slogCore) Enabled(l zapcore.Level) bool { return l >= zapcore.WarnLevel }

func (c *slogCore) With(fields []zapcore.Field) zapcore.Core {
	return &slogCore{log: c.log, fields: append(append([]zapcore.Field{}, c.fields...), fields...)}
}

func (c *slogCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return ce
}

func (c *slogCore) Write(e zapcore.Entry, fields []zapcore.Field) error {
	enc := zapcore.NewMapObjectEncoder()
	for _, f := range append(append([]zapcore.Field{}, c.fields...), fields...) {
		f.AddTo(enc)
	}
	attrs := make([]any, 0, 2*len(enc.Fields))
	for k, v := range enc.Fields {
		attrs = append(attrs, k, v)
	}
	level := slog.LevelDebug
	if e.Level >= zapcore.ErrorLevel {
		level = slog.LevelError
	}
	c.log.Log(context.Background(), level, e.Message, attrs...)
	return nil
}

func (c *slogCore) Sync() error { return nil }
