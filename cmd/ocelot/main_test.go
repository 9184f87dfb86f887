package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func run(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = runMain(args, &out, &errb)
	return code, out.String(), errb.String()
}

func cfgFile(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "felix.cfg")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestVersion(t *testing.T) {
	code, out, _ := run(t, "version")
	if code != 0 || !strings.HasPrefix(out, "ocelot "+version+" (commit "+commit) {
		t.Fatalf("code %d out %q", code, out)
	}
}

func TestConfigCheck(t *testing.T) {
	good := cfgFile(t, "[global]\nOpenstackRegion = RegionTwo\nEtcdEndpoints = http://198.18.0.1:2379\n")
	code, out, errOut := run(t, "config", "check", "-c", good)
	if code != 0 || !strings.Contains(out, "configuration is valid") || errOut != "" {
		t.Fatalf("good file: code %d out %q err %q", code, out, errOut)
	}

	bad := cfgFile(t, "[global]\nOpenstackRegion = Region One\nMetadataPort = -1\nFrobnicate = 1\n")
	code, _, errOut = run(t, "config", "check", "-c", bad)
	if code != 1 {
		t.Fatalf("bad file: code %d, want 1", code)
	}
	for _, want := range []string{
		bad + `:2: OpenstackRegion = "Region One": must be letters, digits and '-'`,
		bad + `:3: MetadataPort = "-1": must be an integer from 0 to 65535`,
		bad + `:4: Frobnicate = "1": is an unknown parameter`,
		"configuration is invalid",
	} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}

	// A value the daemon would only warn about still fails the check.
	warnOnly := cfgFile(t, "[global]\nHealthPort = huge\n")
	if code, _, _ = run(t, "config", "check", "-c", warnOnly); code != 1 {
		t.Errorf("invalid non-fatal value: code %d, want 1", code)
	}
	// An unknown parameter alone is a warning, not a failure.
	unknown := cfgFile(t, "[global]\nSomeFuturePluginSetting = 1\n")
	if code, _, errOut = run(t, "config", "check", "-c", unknown); code != 0 || !strings.Contains(errOut, "warning:") {
		t.Errorf("unknown param: code %d err %q", code, errOut)
	}
}

func TestConfigShow(t *testing.T) {
	path := cfgFile(t, "[global]\nOpenstackRegion = RegionTwo\nEtcdPassword = secret\n")
	t.Setenv("FELIX_HEALTHPORT", "9199")
	code, out, _ := run(t, "config", "show", "--config-file", path)
	if code != 0 {
		t.Fatalf("code %d", code)
	}
	for _, want := range []string{"OpenstackRegion", "RegionTwo", path + ":2", "HealthPort", "9199",
		"environment variable FELIX_HEALTHPORT", "MetadataPort", "8775", "default"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if strings.Contains(out, "secret") {
		t.Error("config show prints the etcd password")
	}
}

// --help, -h and help list every subcommand on stdout and succeed; an
// unknown command lists them on stderr and fails.
func TestHelpListsSubcommands(t *testing.T) {
	subcommands := []string{"ocelot [run]", "ocelot config show", "ocelot config check", "ocelot version", "ocelot help"}
	for _, args := range [][]string{{"--help"}, {"-h"}, {"help"}, {"run", "--help"}, {"config", "check", "-h"}} {
		code, out, errOut := run(t, args...)
		if code != 0 || errOut != "" {
			t.Errorf("%v: code %d, stderr %q", args, code, errOut)
		}
		for _, want := range subcommands {
			if !strings.Contains(out, want) {
				t.Errorf("%v: output lacks %q:\n%s", args, want, out)
			}
		}
	}
	code, out, errOut := run(t, "frobnicate")
	if code != 2 || out != "" || !strings.Contains(errOut, `unknown command "frobnicate"`) || !strings.Contains(errOut, "ocelot config check") {
		t.Errorf("unknown command: code %d, stdout %q, stderr %q", code, out, errOut)
	}
}

func TestUsageErrors(t *testing.T) {
	if code, _, _ := run(t, "frobnicate"); code != 2 {
		t.Errorf("unknown command: code %d", code)
	}
	if code, _, _ := run(t, "config"); code != 2 {
		t.Errorf("config without subcommand: code %d", code)
	}
	if code, _, _ := run(t, "run", "-c"); code != 2 {
		t.Errorf("-c without file: code %d", code)
	}
	bad := cfgFile(t, "[global]\nOpenstackRegion = -x\n")
	if code, _, errOut := run(t, "-c", bad); code != 1 || !strings.Contains(errOut, "OpenstackRegion") {
		t.Errorf("run with fatal config: code %d err %q", code, errOut)
	}
}

func TestPackagedExampleIsValid(t *testing.T) {
	code, _, errOut := run(t, "config", "check", "-c", "../../packaging/felix.cfg.example")
	if code != 0 || errOut != "" {
		t.Fatalf("packaging/felix.cfg.example: code %d\n%s", code, errOut)
	}
}
