package main

import (
	"fmt"
	"io"
	"os"
	"text/tabwriter"

	"ocelot/config"
)

// cmdConfig implements "ocelot config show|check". Both read only the local
// sources (file and environment): they must work on a host whose agent is
// stopped and whose etcd may be unreachable.
func cmdConfig(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "ocelot config: expected show or check")
		return 2
	}
	sub, args := args[0], args[1:]
	path, ok := configFlag("config "+sub, args, stderr)
	if !ok {
		return 2
	}
	local := config.ReadLocal(path, os.Environ())
	cfg, problems := local.Resolve()
	switch sub {
	case "show":
		for _, p := range problems {
			fmt.Fprintln(stderr, p)
		}
		showConfig(stdout, cfg)
		if problems.Fatal() {
			return 1
		}
		return 0
	case "check":
		if !local.Exists {
			fmt.Fprintf(stderr, "warning: %s does not exist; checking defaults and environment only\n", path)
		}
		for _, p := range problems {
			fmt.Fprintln(stderr, p)
		}
		if problems.Fatal() || hasInvalidValue(problems) {
			fmt.Fprintf(stderr, "%s: configuration is invalid\n", path)
			return 1
		}
		fmt.Fprintf(stdout, "%s: configuration is valid\n", path)
		return 0
	}
	fmt.Fprintf(stderr, "ocelot config: unknown subcommand %q (expected show or check)\n", sub)
	return 2
}

// hasInvalidValue reports problems other than unknown names: "config check"
// fails on any invalid value, even one the daemon would only warn about.
func hasInvalidValue(problems config.Problems) bool {
	for _, p := range problems {
		if _, known := config.Lookup(p.Param); known || p.Param == "" {
			return true
		}
	}
	return false
}

func showConfig(w io.Writer, cfg *config.Config) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PARAMETER\tVALUE\tSOURCE")
	for _, p := range config.Params() {
		value := cfg.Format(p.Name)
		if p.Name == "EtcdPassword" && value != "" {
			value = "(set)"
		}
		o, _ := cfg.Origin(p.Name)
		src := o.Where // self-describing: "file:line", "environment variable X", "felixconfigurations/..."
		fmt.Fprintf(tw, "%s\t%s\t%s\n", p.Name, value, src)
	}
	tw.Flush()
}
