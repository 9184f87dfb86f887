package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	_ "net/http/pprof" // served only when OCELOT_DEBUG_PPROF is set
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	clientv3 "go.etcd.io/etcd/client/v3"

	"ocelot/calc"
	"ocelot/config"
	"ocelot/contract"
	"ocelot/dataplane"
	"ocelot/datastore"
	"ocelot/datastore/resource"
)

// Exit codes.
const (
	exitOK      = 0
	exitConfig  = 1   // invalid configuration or a fatal start-up error
	exitRestart = 129 // a configuration change that cannot be applied live (as Felix)
)

// cmdRun loads and validates the configuration, then runs the agent until
// SIGTERM or SIGINT.
func cmdRun(args []string, stderr io.Writer) int {
	path, ok := configFlag("run", args, stderr)
	if !ok {
		return 2
	}
	local := config.ReadLocal(path, os.Environ())
	cfg, problems := local.Resolve()
	for _, p := range problems {
		fmt.Fprintln(stderr, p)
	}
	if problems.Fatal() {
		return exitConfig
	}
	logs := newLogging(cfg, stderr)
	defer logs.close()
	a := &agent{path: path, local: local, cfg: cfg, logs: logs, log: logs.logger(), health: newHealth()}
	return a.run()
}

// agent wires config, datastore, calc and dataplane together.
type agent struct {
	path   string
	local  *config.Local
	cfg    *config.Config
	logs   *logging
	log    *slog.Logger
	health *health

	// Datastore configuration sources, kept to re-resolve on change.
	global, host, cluster []config.RawValue

	cli      *clientv3.Client
	syncer   datastoreStatus
	status   *datastore.StatusWriter
	dp       *dataplane.Dataplane
	graph    *calc.Graph
	registry *prometheus.Registry
	dsm      *datastore.Metrics
	metrics  *agentMetrics
	goRT     *goRuntime
}

func (a *agent) run() int {
	a.goRT = newGoRuntime(a.log, os.Getenv)
	a.goRT.configure(a.cfg)
	a.log.Info("ocelot starting", "version", version, "commit", commit, "config", a.path, "hostname", a.cfg.FelixHostname,
		"region", a.cfg.OpenstackRegion, "namespace", a.cfg.Namespace())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// During start-up a signal stops the agent (SIGHUP is ignored); from
	// the main loop on, the loop handles them.
	startSigs := make(chan os.Signal, 4)
	signal.Notify(startSigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	started := make(chan struct{})
	go func() {
		for {
			select {
			case s := <-startSigs:
				if s != syscall.SIGHUP {
					a.log.Info("stopping during start-up", "signal", s.String())
					cancel()
					return
				}
			case <-started:
				return
			}
		}
	}()

	// Every component registers its instruments here; the registry is
	// served once the configuration (from the datastore too) is known.
	a.registry = prometheus.NewRegistry()
	a.dsm = datastore.NewMetrics(a.registry)
	a.metrics = newAgentMetrics(a.registry)

	a.health.register("FelixStartup", 0)
	a.health.report("FelixStartup", true, false, "connecting to the datastore")
	if addr := os.Getenv("OCELOT_DEBUG_PPROF"); addr != "" {
		a.serve("pprof (debug)", addr, http.DefaultServeMux) // net/http/pprof registers there
	}
	if a.cfg.HealthEnabled {
		a.serve("health", net.JoinHostPort(a.cfg.HealthHost, strconv.Itoa(a.cfg.HealthPort)), a.health.handler())
	}

	cc := datastore.ClientConfig{Endpoints: a.cfg.EtcdURLs(), CAFile: a.cfg.EtcdCaFile,
		CertFile: a.cfg.EtcdCertFile, KeyFile: a.cfg.EtcdKeyFile, Username: a.cfg.EtcdUsername, Password: a.cfg.EtcdPassword}
	cli, err := datastore.Connect(cc, a.log)
	if err != nil {
		a.log.Error("cannot create the etcd client", "err", err)
		return exitConfig
	}
	defer func() { _ = cli.Close() }()
	a.cli = cli

	st, err := a.waitForDatastore(ctx)
	if err != nil {
		return exitOK // stopped by a signal while waiting
	}
	a.setDatastoreConfig(st.Global, st.Host, st.ClusterInfo)
	cfg, problems := a.local.Resolve(a.global, a.host, a.cluster)
	for _, p := range problems {
		a.log.Warn("configuration", "problem", p.String())
	}
	if problems.Fatal() {
		a.log.Error("configuration from the datastore is invalid; stopping")
		return exitConfig
	}
	a.cfg = cfg
	a.logs.setLevels(cfg)
	a.goRT.configure(cfg)

	registerAgentInfo(a.registry, cfg)
	if cfg.PrometheusMetricsEnabled {
		a.serve("metrics", net.JoinHostPort(cfg.PrometheusMetricsHost, strconv.Itoa(cfg.PrometheusMetricsPort)),
			promhttp.HandlerFor(a.registry, promhttp.HandlerOpts{Registry: a.registry}))
	}

	// Listing starts now; the dataplane's backend detection and kernel
	// reads overlap with it (the batches wait in the channel).
	batches := make(chan datastore.Batch, 16)
	syncer := datastore.NewSyncer(cli, datastore.SyncerConfig{Hostname: cfg.FelixHostname, Namespace: cfg.Namespace(), Log: a.log,
		Client: cc, Metrics: a.dsm})
	go func() { _ = syncer.Run(ctx, batches) }() // returns only when ctx ends
	a.syncer = syncer
	a.health.register(datastoreReporter, 0)

	dpCfg, err := dataplane.FromConfig(cfg)
	if err != nil {
		a.log.Error("invalid dataplane configuration", "err", err)
		return exitConfig
	}
	a.status = datastore.NewStatusWriter(cli, statusConfig(cfg), a.log, a.dsm)
	inSync := make(chan struct{})
	dpCfg.OnStatus = func(id contract.EndpointID, s string) {
		a.status.SetEndpointStatus(datastore.EndpointStatusID{Orchestrator: id.Orchestrator, WorkloadID: id.WorkloadID, EndpointID: id.EndpointID}, s)
	}
	dpCfg.OnHostEndpointStatus = a.status.SetHostEndpointStatus
	dpCfg.OnInSync = func() { close(inSync) }
	dpCfg.Log = a.log
	if a.dp, err = dataplane.New(dpCfg, a.registry); err != nil {
		a.log.Error("cannot start the dataplane", "err", err)
		return exitConfig
	}
	a.graph = calc.New(calc.Config{Hostname: cfg.FelixHostname, Namespace: cfg.Namespace(), InterfacePrefixes: cfg.InterfacePrefix,
		WorkloadSourceSpoofingAny: cfg.WorkloadSourceSpoofing == "Any"}, func(p calc.Problem) {
		a.metrics.calcProblems.Inc()
		a.log.Warn("fail-closed", "key", p.Key, "reason", p.Reason)
	})

	a.health.register("CalculationGraph", 30*time.Second)
	a.health.register("InternalDataplaneMainLoop", max(cfg.DataplaneWatchdogTimeout, 20*time.Second))
	a.health.report("FelixStartup", true, true, "")
	a.health.report("InternalDataplaneMainLoop", true, false, "waiting for the first apply")

	go func() { _ = a.dp.Run(ctx) }() // returns only when ctx ends
	go a.status.Run(ctx)
	if path := cfg.ExplainSocketPath; path != "" {
		if srv, err := listenExplain(path, a.dp, a.log); err != nil {
			a.log.Error("not serving ocelot explain", "err", err)
		} else {
			go srv.serve(ctx)
			a.log.Info("serving ocelot explain", "socket", path)
		}
	}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer signal.Stop(sigs)
	signal.Stop(startSigs)
	close(started)
	if ctx.Err() != nil {
		return exitOK
	}
	return a.loop(ctx, batches, sigs, inSync, st)
}

// waitForDatastore reads the start-up keys until the datastore says it is
// ready (clusterinformations/default datastoreReady: true), as Felix does.
func (a *agent) waitForDatastore(ctx context.Context) (datastore.StartupState, error) {
	for i := 0; ; i++ {
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		st, err := datastore.ReadStartupState(rctx, a.cli, a.cfg.FelixHostname, a.log, a.dsm)
		cancel()
		switch {
		case err == nil && st.Ready():
			return st, nil
		case err != nil && i%10 == 0:
			a.log.Warn("cannot read the datastore yet; retrying", "err", err, "endpoints", a.cfg.EtcdURLs())
		case err == nil && i%10 == 0:
			a.log.Warn("datastore not ready: waiting for clusterinformations/default with datastoreReady: true")
		}
		select {
		case <-ctx.Done():
			return st, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// setDatastoreConfig turns the datastore's configuration resources into
// config sources.
func (a *agent) setDatastoreConfig(global, host *resource.FelixConfiguration, ci *resource.ClusterInformation) {
	report := func(ps []config.Problem) {
		for _, p := range ps {
			a.log.Warn("configuration", "problem", p.String())
		}
	}
	a.global, a.host, a.cluster = nil, nil, nil
	if global != nil {
		vals, ps := config.FromDatastore(config.SourceDatastoreGlobal, "felixconfigurations/default", global.Spec, global.Annotations)
		report(ps)
		a.global = vals
	}
	if host != nil {
		vals, ps := config.FromDatastore(config.SourceDatastoreHost, "felixconfigurations/"+host.Name, host.Spec, host.Annotations)
		report(ps)
		a.host = vals
	}
	if ci != nil {
		a.cluster = config.FromClusterInformation(ci.ClusterGUID, ci.ClusterType, ci.CalicoVersion, ci.Variant)
	}
}

// loop runs the calculation graph on datastore batches and handles
// signals, config edits and health, until the agent stops.
func (a *agent) loop(ctx context.Context, batches <-chan datastore.Batch, sigs <-chan os.Signal, inSync <-chan struct{}, st datastore.StartupState) int {
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	var watchdog <-chan time.Time
	if iv := watchdogInterval(); iv > 0 {
		t := time.NewTicker(iv)
		defer t.Stop()
		watchdog = t.C
	}
	fileStamp := stampOf(a.path)
	for {
		select {
		case s := <-sigs:
			if s == syscall.SIGHUP {
				if code, stop := a.reload("SIGHUP"); stop {
					return code
				}
				continue
			}
			a.log.Info("ocelot stopping; the dataplane stays in place", "signal", s.String())
			sdNotify("STOPPING=1")
			return exitOK
		case b := <-batches:
			start := time.Now()
			configChanged := false
			for _, u := range b.Updates {
				a.metrics.calcUpdates.WithLabelValues(string(u.Key.Kind)).Inc()
				if st.Apply(u) {
					configChanged = true
				}
			}
			a.graph.OnUpdates(b.Updates)
			if b.InSync {
				a.graph.OnInSync()
				a.log.Debug("calculation graph in sync", "took_last_batch", time.Since(start))
			}
			msgs := a.graph.Flush()
			a.metrics.calcOutput.Add(float64(len(msgs)))
			a.dp.Send(msgs)
			a.metrics.calcUpdateTime.Observe(time.Since(start).Seconds())
			a.metrics.publishStats(a.graph.Stats())
			if configChanged {
				a.setDatastoreConfig(st.Global, st.Host, st.ClusterInfo)
				if code, stop := a.reconfigure("datastore"); stop {
					return code
				}
			}
		case <-inSync:
			inSync = nil
			debug.FreeOSMemory() // hand the snapshot's garbage back now, not gradually
			a.goRT.synced()
			a.reportHealth()
			a.status.SetInSync()
			sdNotify("READY=1")
			a.log.Info("dataplane in sync with the datastore")
		case <-tick.C:
			a.goRT.tick()
			a.reportHealth()
			if st := stampOf(a.path); st != fileStamp {
				fileStamp = st
				if code, stop := a.reload("edit of " + a.path); stop {
					return code
				}
			}
		case <-watchdog:
			if live, _, _ := a.health.status(); live {
				sdNotify("WATCHDOG=1")
			}
		}
	}
}

func (a *agent) reportHealth() {
	a.health.report("CalculationGraph", true, true, "")
	reportDatastore(a.health, a.syncer)
	h := a.dp.Health()
	live := time.Since(h.LoopAlive) < max(a.cfg.DataplaneWatchdogTimeout, 20*time.Second)
	detail := h.Degraded // what the kernel refused, while the rest converges
	if h.Err != nil && detail != "" {
		detail = h.Err.Error() + "; " + detail
	} else if h.Err != nil {
		detail = h.Err.Error()
	}
	// Ready once in sync, and while applies succeed (or failed only lately).
	ready := h.InSync && (h.Healthy || time.Since(h.LastApply) < 30*time.Second)
	a.health.report("InternalDataplaneMainLoop", live, ready, detail)
}

// reload re-reads the local config after SIGHUP or an edit. An invalid
// edit is rejected and the running configuration kept.
func (a *agent) reload(why string) (code int, stop bool) {
	local := config.ReadLocal(a.path, os.Environ())
	cfg, problems := local.Resolve(a.global, a.host, a.cluster)
	for _, p := range problems {
		a.log.Warn("configuration reload", "problem", p.String())
	}
	if problems.RejectsReload() {
		a.metrics.configRejected.Inc()
		a.log.Error("configuration edit rejected; keeping the running configuration", "trigger", why)
		return 0, false
	}
	a.local = local
	return a.apply(cfg, why)
}

// reconfigure re-resolves after a datastore configuration change.
func (a *agent) reconfigure(why string) (code int, stop bool) {
	cfg, problems := a.local.Resolve(a.global, a.host, a.cluster)
	if problems.Fatal() {
		for _, p := range problems {
			a.log.Error("configuration from the datastore rejected; keeping the running configuration", "problem", p.String())
		}
		a.metrics.configRejected.Inc()
		return 0, false
	}
	return a.apply(cfg, why)
}

// apply takes a new configuration: live parameters at once; anything else
// exits with 129 so the supervisor restarts the agent (the dataplane stays
// in place meanwhile). Never a half-applied configuration.
func (a *agent) apply(cfg *config.Config, why string) (code int, stop bool) {
	changed, live := a.cfg.Changed(cfg)
	if len(changed) == 0 {
		return 0, false
	}
	if !live {
		a.log.Warn("configuration changed in a way that needs a restart; exiting with 129 to be restarted", "trigger", why, "changed", changed)
		return exitRestart, true
	}
	a.cfg = cfg
	a.logs.setLevels(cfg)
	a.goRT.configure(cfg)
	a.status.SetConfig(statusConfig(cfg))
	a.log.Info("configuration applied live", "trigger", why, "changed", changed)
	return 0, false
}

type fileStamp struct {
	mod  time.Time
	size int64
}

func stampOf(path string) fileStamp {
	st, err := os.Stat(path)
	if err != nil {
		return fileStamp{}
	}
	return fileStamp{st.ModTime(), st.Size()}
}

func (a *agent) serve(what, addr string, h http.Handler) {
	srv := &http.Server{Addr: addr, Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.log.Error("cannot serve "+what, "addr", addr, "err", err)
		}
	}()
	a.log.Info("serving "+what, "addr", addr)
}

func statusConfig(cfg *config.Config) datastore.StatusConfig {
	return datastore.StatusConfig{Hostname: cfg.FelixHostname, RegionString: cfg.RegionString(),
		Interval: cfg.ReportingIntervalSecs, TTL: cfg.ReportingTTLSecs,
		EndpointReporting: cfg.EndpointReportingEnabled, EndpointDelay: cfg.EndpointReportingDelaySecs}
}

// sdNotify tells systemd a state (READY=1, WATCHDOG=1, STOPPING=1); it
// does nothing when not run by systemd with a notify socket.
func sdNotify(state string) { _, _ = daemon.SdNotify(false, state) }

// watchdogInterval is half of systemd's WatchdogSec, or 0 when the
// watchdog is off or meant for another process.
func watchdogInterval() time.Duration {
	d, err := daemon.SdWatchdogEnabled(false)
	if err != nil || d <= 0 {
		return 0
	}
	return d / 2
}
