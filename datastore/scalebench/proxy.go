package scalebench

import (
	"context"
	"fmt"
	"math"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.etcd.io/etcd/server/v3/proxy/grpcproxy"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/stats"
)

// runProxy serves etcd's gRPC proxy (the grpcproxy package that
// `etcd grpc-proxy start` runs) with that command's default settings, for
// the KV, Watch, Lease, Cluster and Maintenance services a client uses. Its
// /metrics, on a port of its own, has etcd's proxy metrics and, prefixed
// with proxyPrefix, the counters the benchmark reads from members, so that
// both are read alike (grpc_server_started_total,
// grpc_server_msg_received_total, grpc_server_msg_sent_total,
// etcd_network_client_grpc_sent_bytes_total). The prefix keeps them apart
// from the member counters this binary also registers, unused.
func runProxy(spec childSpec) (func(), error) {
	lg, err := zap.Config{
		Level: zap.NewAtomicLevelAt(zap.WarnLevel), Encoding: "json", EncoderConfig: zap.NewProductionEncoderConfig(),
		OutputPaths: []string{spec.Dir + "/" + spec.Name + ".log"}, ErrorOutputPaths: []string{spec.Dir + "/" + spec.Name + ".log"},
	}.Build()
	if err != nil {
		return nil, err
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:            spec.Members,
		DialTimeout:          5 * time.Second,
		DialKeepAliveTimeout: embed.DefaultGRPCKeepAliveTimeout,
		MaxCallSendMsgSize:   1.5 * 1024 * 1024,
		MaxCallRecvMsgSize:   math.MaxInt32,
		Logger:               lg.Named("client"),
		DialOptions: []grpc.DialOption{
			grpc.WithUnaryInterceptor(grpcproxy.AuthUnaryClientInterceptor),
			grpc.WithStreamInterceptor(grpcproxy.AuthStreamClientInterceptor),
		},
	})
	if err != nil {
		return nil, fmt.Errorf("proxy client: %w", err)
	}
	kvp, _ := grpcproxy.NewKvProxy(cli)
	watchp, _ := grpcproxy.NewWatchProxy(cli.Ctx(), lg, cli)
	clusterp, _ := grpcproxy.NewClusterProxy(lg, cli, "http://"+spec.Listen, "")
	leasep, _ := grpcproxy.NewLeaseProxy(cli.Ctx(), cli)
	mainp := grpcproxy.NewMaintenanceProxy(cli)

	reg := prometheus.NewRegistry()
	sent := newSentCounter(reg)
	srv := grpc.NewServer(
		grpc.StatsHandler(sent),
		grpc.MaxConcurrentStreams(math.MaxUint32),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: embed.DefaultGRPCKeepAliveMinTime}),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: embed.DefaultGRPCKeepAliveInterval, Timeout: embed.DefaultGRPCKeepAliveTimeout}),
	)
	pb.RegisterKVServer(srv, kvp)
	pb.RegisterWatchServer(srv, watchp)
	pb.RegisterClusterServer(srv, clusterp)
	pb.RegisterLeaseServer(srv, leasep)
	pb.RegisterMaintenanceServer(srv, mainp)

	gl, err := net.Listen("tcp", spec.Listen)
	if err != nil {
		cli.Close()
		return nil, err
	}
	ml, err := net.Listen("tcp", spec.MetricsListen)
	if err != nil {
		gl.Close()
		cli.Close()
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(prometheus.Gatherers{prometheus.DefaultGatherer, reg}, promhttp.HandlerOpts{}))
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(gl)
	go hs.Serve(ml)

	// Ready once a request goes through to the cluster.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := cli.Get(ctx, "health-probe"); err != nil {
		srv.Stop()
		hs.Close()
		cli.Close()
		return nil, fmt.Errorf("proxy cannot reach the cluster: %w", err)
	}
	return func() {
		srv.Stop()
		hs.Close()
		cli.Close()
	}, nil
}

// proxyPrefix names the proxy's own counters of what members also count.
const proxyPrefix = "scalebench_proxy_"

// sentCounter counts, as etcd's members do, the RPCs the proxy's clients
// start, the messages they send it, and the messages and payload bytes it
// sends them (the marshalled message size).
type sentCounter struct {
	started, received, msgs *prometheus.CounterVec
	bytes                   prometheus.Counter
}

type methodKey struct{}

func newSentCounter(reg prometheus.Registerer) *sentCounter {
	c := &sentCounter{
		started: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: proxyPrefix + mStarted,
			Help: "RPCs started by the proxy's clients, by gRPC service and method.",
		}, []string{"grpc_service", "grpc_method"}),
		received: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: proxyPrefix + mMsgRecv,
			Help: "Messages received by the proxy from its clients, by gRPC service and method.",
		}, []string{"grpc_service", "grpc_method"}),
		msgs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: proxyPrefix + mMsgSent,
			Help: "Messages sent by the proxy to its clients, by gRPC service and method.",
		}, []string{"grpc_service", "grpc_method"}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: proxyPrefix + mSentBytes,
			Help: "Marshalled bytes of the messages the proxy sent to its clients.",
		}),
	}
	reg.MustRegister(c.started, c.received, c.msgs, c.bytes)
	return c
}

func (c *sentCounter) TagRPC(ctx context.Context, info *stats.RPCTagInfo) context.Context {
	return context.WithValue(ctx, methodKey{}, info.FullMethodName)
}

func (c *sentCounter) HandleRPC(ctx context.Context, s stats.RPCStats) {
	if s.IsClient() {
		return
	}
	full, _ := ctx.Value(methodKey{}).(string)
	service, method, _ := strings.Cut(strings.TrimPrefix(full, "/"), "/")
	switch s := s.(type) {
	case *stats.Begin:
		c.started.WithLabelValues(service, method).Inc()
	case *stats.InPayload:
		c.received.WithLabelValues(service, method).Inc()
	case *stats.OutPayload:
		c.msgs.WithLabelValues(service, method).Inc()
		c.bytes.Add(float64(s.Length))
	}
}

func (c *sentCounter) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context { return ctx }

func (c *sentCounter) HandleConn(context.Context, stats.ConnStats) {}
