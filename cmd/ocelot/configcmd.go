package main

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"text/tabwriter"
	"unicode"
	"unicode/utf8"

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
		if n := countClass(problems, config.NotHonoured); n > 0 {
			fmt.Fprintf(stderr, "%d parameter(s) set that Ocelot does not honour; docs/parameters.md says what it does with each\n", n)
		}
		// Any invalid value fails the check, even one the agent would only
		// warn about; unknown names and unhonoured parameters do not.
		if problems.Invalid() {
			if problems.Fatal() {
				fmt.Fprintf(stderr, "%s: configuration is invalid; the agent would not start\n", path)
			} else {
				fmt.Fprintf(stderr, "%s: configuration is invalid\n", path)
			}
			return 1
		}
		fmt.Fprintf(stdout, "%s: configuration is valid\n", path)
		return 0
	}
	fmt.Fprintf(stderr, "ocelot config: unknown subcommand %q (expected show or check)\n", sub)
	return 2
}

func countClass(problems config.Problems, class config.Class) int {
	n := 0
	for _, p := range problems {
		if p.Class == class {
			n++
		}
	}
	return n
}

// showConfig prints every parameter Ocelot has a value for, and the refused
// ones only when a source sets them.
func showConfig(w io.Writer, cfg *config.Config) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PARAMETER\tVALUE\tSOURCE\tSTATUS")
	for _, p := range config.Params() {
		o, _ := cfg.Origin(p.Name)
		if !p.HasField() && o.Source == config.SourceDefault {
			continue
		}
		value := cfg.Format(p.Name)
		if p.Name == "EtcdPassword" && value != "" {
			value = "(set)"
		}
		// Where is self-describing: "file:line", "environment variable X",
		// "felixconfigurations/...".
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", p.Name, shown(value), shown(o.Where), p.Status)
	}
	_ = tw.Flush() // a terminal's write error: nothing to do
}

// shown quotes text that is not plain printable text (a refused parameter's
// raw value is not validated), so that it cannot disturb the table.
func shown(s string) string {
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return strconv.Quote(s)
		}
	}
	if !utf8.ValidString(s) {
		return strconv.Quote(s)
	}
	return s
}
