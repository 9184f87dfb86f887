package main

import (
	"flag"
	"fmt"
	"io"
	"os"
)

// Stamped at build time with -ldflags "-X main.version=... -X main.commit=... -X main.buildDate=...".
var (
	version   = "dev"
	commit    = "unknown"
	buildDate = "unknown"
)

// DefaultConfigFile is where Felix and Ocelot look for their configuration.
const DefaultConfigFile = "/etc/calico/felix.cfg"

func main() {
	os.Exit(runMain(os.Args[1:], os.Stdout, os.Stderr))
}

// runMain dispatches a command line and returns the exit code.
func runMain(args []string, stdout, stderr io.Writer) int {
	for _, a := range args {
		if a == "-h" || a == "-help" || a == "--help" {
			usage(stdout)
			return 0
		}
	}
	cmd := "run"
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "run":
		return cmdRun(args, stderr)
	case "version":
		fmt.Fprintf(stdout, "ocelot %s (commit %s, built %s)\n", version, commit, buildDate)
		return 0
	case "config":
		return cmdConfig(args, stdout, stderr)
	case "explain":
		return cmdExplain(args, stdout, stderr)
	case "help":
		usage(stdout)
		return 0
	}
	fmt.Fprintf(stderr, "ocelot: unknown command %q\n", cmd)
	usage(stderr)
	return 2
}

func usage(w io.Writer) {
	fmt.Fprint(w, `Ocelot: a Calico policy agent for OpenStack compute hosts, in place of Felix.

Usage:
  ocelot [run] [-c FILE]         run the agent (Felix's form, ocelot -c FILE, works too)
  ocelot config show [-c FILE]   print every parameter's effective value and where it came from
  ocelot config check [-c FILE]  validate the configuration; exit 1 if any value is invalid
  ocelot explain ENDPOINT        ask the running agent what applies to a local endpoint
  ocelot explain SRC DST [P/N]   ask what this host does with a flow (e.g. tcp/80), naming the rule that decides
  ocelot version                 print the version, commit and build date
  ocelot help                    print this list (also -h, --help)

FILE defaults to /etc/calico/felix.cfg (-c or --config-file).
`)
}

// configFlag parses "-c FILE" / "--config-file FILE" for a subcommand.
func configFlag(name string, args []string, stderr io.Writer) (string, bool) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var path string
	fs.StringVar(&path, "c", DefaultConfigFile, "config file")
	fs.StringVar(&path, "config-file", DefaultConfigFile, "config file")
	if err := fs.Parse(args); err != nil {
		return "", false
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "ocelot %s: unexpected argument %q\n", name, fs.Arg(0))
		return "", false
	}
	return path, true
}
