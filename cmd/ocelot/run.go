package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"ocelot/config"
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
		return 1
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	log.Info("ocelot starting", "version", version, "config", path, "hostname", cfg.FelixHostname,
		"region", cfg.OpenstackRegion, "namespace", cfg.Namespace())
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	s := <-sigs
	log.Info("ocelot stopping; dataplane left in place", "signal", s.String())
	return 0
}
