package main

import (
	"strings"
	"testing"
)

// Parameters Ocelot does not honour are reported by config check with
// their source and reason, and do not fail it; invalid values do.
func TestConfigCheckReportsWhatIsNotHonoured(t *testing.T) {
	path := cfgFile(t, "[global]\nBPFEnabled = true\nUsageReportingEnabled = false\nNFTablesMode = Enabled\n")
	t.Setenv("FELIX_WIREGUARDENABLED", "true")
	code, out, errOut := run(t, "config", "check", "-c", path)
	if code != 0 || !strings.Contains(out, "configuration is valid") {
		t.Fatalf("code %d out %q err %q", code, out, errOut)
	}
	for _, want := range []string{
		path + `:2: BPFEnabled = "true": Ocelot refuses this parameter (Ocelot has no eBPF dataplane`,
		`environment variable FELIX_WIREGUARDENABLED: WIREGUARDENABLED = "true": Ocelot refuses this parameter`,
		"2 parameter(s) set that Ocelot does not honour",
	} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}
	if strings.Contains(errOut, "UsageReportingEnabled") || strings.Contains(errOut, "NFTablesMode") {
		t.Errorf("values that ask for what Ocelot does are reported:\n%s", errOut)
	}
}

func TestConfigCheckSaysWhenTheAgentWouldNotStart(t *testing.T) {
	fatal := cfgFile(t, "[global]\nLogPrefix = ok\nChainInsertMode = sideways\n")
	code, _, errOut := run(t, "config", "check", "-c", fatal)
	if code != 1 || !strings.Contains(errOut, `ChainInsertMode = "sideways": must be one of insert, append (any case); start-up stops`) ||
		!strings.Contains(errOut, "configuration is invalid; the agent would not start") {
		t.Errorf("die-on-fail: code %d\n%s", code, errOut)
	}
	warn := cfgFile(t, "[global]\nLogPrefix = a\"b\n")
	code, _, errOut = run(t, "config", "check", "-c", warn)
	if code != 1 || !strings.Contains(errOut, "LogPrefix") || strings.Contains(errOut, "would not start") {
		t.Errorf("invalid LogPrefix: code %d\n%s", code, errOut)
	}
}

func TestConfigShowStatus(t *testing.T) {
	path := cfgFile(t, "[global]\nBPFLogLevel = debug\nNFTablesMode = Enabled\n")
	code, out, _ := run(t, "config", "show", "-c", path)
	if code != 0 {
		t.Fatalf("code %d", code)
	}
	lines := map[string]string{}
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) > 0 {
			lines[f[0]] = l
		}
	}
	if l := lines["BPFLogLevel"]; !strings.Contains(l, "debug") || !strings.Contains(l, path+":2") || !strings.HasSuffix(l, "refused") {
		t.Errorf("a set refused parameter: %q", l)
	}
	if l := lines["NFTablesMode"]; !strings.HasSuffix(l, "honoured differently") {
		t.Errorf("NFTablesMode: %q", l)
	}
	if l := lines["OpenstackRegion"]; !strings.HasSuffix(l, "honoured differently") {
		t.Errorf("OpenstackRegion: %q", l)
	}
	if _, ok := lines["WireguardEnabled"]; ok {
		t.Error("an unset refused parameter is listed")
	}
}
