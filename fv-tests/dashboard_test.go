package fvtests

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"ocelot/fv-tests/lab"
	"ocelot/internal/embedetcd"
	"ocelot/internal/netlab"
)

const (
	dashboardFile = "../packaging/grafana/ocelot-dashboard.json"
	alertsFile    = "../packaging/prometheus/ocelot-alerts.yml"
)

// promBinary finds one of Debian's prometheus package's binaries:
// installed, or unpacked into bin/prometheus by scripts/install-deps.sh.
func promBinary(name string) string {
	for _, p := range []string{"../bin/prometheus/usr/bin/" + name, "/usr/bin/" + name} {
		if abs, err := filepath.Abs(p); err == nil {
			if st, err := os.Stat(abs); err == nil && !st.IsDir() {
				return abs
			}
		}
	}
	return ""
}

// promtool validates the alerting rules.
func TestAlertRulesPromtool(t *testing.T) {
	tool := promBinary("promtool")
	if tool == "" {
		netlab.Unavailable(t, "promtool (Debian's prometheus package) is not installed and could not be fetched (scripts/install-deps.sh)")
	}
	out, err := exec.Command(tool, "check", "rules", alertsFile).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "SUCCESS") {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
	// Control: promtool refuses a rule that does not parse.
	bad := filepath.Join(t.TempDir(), "bad.yml")
	os.WriteFile(bad, []byte("groups:\n- name: x\n  rules:\n  - alert: Bad\n    expr: rate(felix_resyncs_started[5m]\n"), 0o600)
	if out, err := exec.Command(tool, "check", "rules", bad).CombinedOutput(); err == nil {
		t.Errorf("promtool accepted a broken rule:\n%s", out)
	}
}

// dashboardQueries are the expressions of every panel, with Grafana's
// variables given values Prometheus takes.
func dashboardQueries(t *testing.T) []string {
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	r := strings.NewReplacer("$__rate_interval", "1m", "$job", ".+", "$instance", ".+")
	var out []string
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			if tg.Expr != "" {
				out = append(out, r.Replace(tg.Expr))
			}
		}
	}
	if len(out) < 15 {
		t.Fatalf("only %d queries in the dashboard", len(out))
	}
	return out
}

// alertQueries are the alerting rules' expressions.
func alertQueries(t *testing.T) []string {
	b, err := os.ReadFile(alertsFile)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		if e, ok := strings.CutPrefix(strings.TrimSpace(line), "expr: "); ok {
			out = append(out, e)
		}
	}
	if len(out) < 10 {
		t.Fatalf("only %d alert expressions", len(out))
	}
	return out
}

var (
	promString = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)
	promBraces = regexp.MustCompile(`\{[^{}]*\}`)
	promGroup  = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
	promRange  = regexp.MustCompile(`\[[^\]]*\]`)
	promIdent  = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*(\s*\()?`)
	promWords  = map[string]bool{"and": true, "or": true, "unless": true, "bool": true, "offset": true, "by": true, "without": true,
		"on": true, "ignoring": true, "group_left": true, "group_right": true, "inf": true, "nan": true}
)

// metricNames lists the metric names a PromQL expression reads: the
// identifiers that are not functions, keywords, label names or values.
func metricNames(expr string) []string {
	e := promString.ReplaceAllString(expr, `""`)
	e = promGroup.ReplaceAllString(e, " ")
	e = promBraces.ReplaceAllString(e, " ")
	e = promRange.ReplaceAllString(e, " ")
	var out []string
	for _, m := range promIdent.FindAllStringSubmatch(e, -1) {
		id := strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(m[0]), "("))
		if m[1] != "" || promWords[strings.ToLower(id)] {
			continue
		}
		out = append(out, id)
	}
	return out
}

func TestMetricNames(t *testing.T) {
	for expr, want := range map[string][]string{
		`sum by (policy, direction) (rate(ocelot_policy_packets_total{job=~".+", action="deny"}[1m]))`: {"ocelot_policy_packets_total"},
		`increase(a_total[5m]) > 0 or increase(b_total{x="by (y)"}[5m]) > 100`:                         {"a_total", "b_total"},
		`up{job="ocelot"} == 0`: {"up"},
		`max by (quantile) (felix_int_dataplane_apply_time_seconds)`: {"felix_int_dataplane_apply_time_seconds"},
	} {
		if got := metricNames(expr); !slices.Equal(got, want) {
			t.Errorf("%s: %v, want %v", expr, got, want)
		}
	}
}

// exported lists the metric names an agent serves (a summary's _sum and
// _count included).
func exported(h *lab.Host) map[string]bool {
	_, body := h.HTTP(9091, "/metrics")
	names := map[string]bool{}
	for _, line := range strings.Split(body, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, _, _ := strings.Cut(line, "{")
		name, _, _ = strings.Cut(name, " ")
		names[name] = true
	}
	return names
}

// A real Prometheus scrapes both agents of the lab, loads the alerting
// rules, and evaluates every dashboard query and every alert: each must
// evaluate, name only metrics the agents export, and (a dashboard panel)
// show data.
func (o *obsLab) dashboardAndAlerts(t *testing.T) {
	bin := promBinary("prometheus")
	if bin == "" {
		netlab.Unavailable(t, "prometheus (Debian's prometheus package) is not installed and could not be fetched (scripts/install-deps.sh)")
	}
	port, err := embedetcd.FreePort("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	rules, _ := filepath.Abs(alertsFile)
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: [%q]
scrape_configs:
  - job_name: ocelot
    static_configs:
      - targets: ["%s:9091", "%s:9091"]
`, rules, o.r1.Addr, o.r2.Addr)
	os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o600)
	logf, _ := os.Create(filepath.Join(dir, "prometheus.log"))
	cmd := exec.Command(bin, "--config.file="+filepath.Join(dir, "prometheus.yml"), "--storage.tsdb.path="+filepath.Join(dir, "data"),
		fmt.Sprintf("--web.listen-address=127.0.0.1:%d", port), "--log.level=warn")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(dir, "prometheus.log"))
			t.Logf("prometheus log:\n%s", b)
		}
	})
	api := fmt.Sprintf("http://127.0.0.1:%d/api/v1/", port)
	query := func(expr string) (string, int, error) {
		resp, err := http.Get(api + "query?query=" + url.QueryEscape(expr))
		if err != nil {
			return "", 0, err
		}
		defer resp.Body.Close()
		var r struct {
			Status string `json:"status"`
			Error  string `json:"error"`
			Data   struct {
				Result []json.RawMessage `json:"result"`
			} `json:"data"`
		}
		b, _ := io.ReadAll(resp.Body)
		if err := json.Unmarshal(b, &r); err != nil {
			return "", 0, fmt.Errorf("%s: %s", err, b)
		}
		if r.Status != "success" {
			return r.Status, 0, fmt.Errorf("%s", r.Error)
		}
		return r.Status, len(r.Data.Result), nil
	}
	// Both agents scraped a few times, so that rates have two samples.
	netlab.Eventually(t, "prometheus scraped both agents 5 times", 60*time.Second, func() bool {
		_, n, err := query(`count_over_time(up{job="ocelot"}[1m]) >= 5 and up{job="ocelot"} == 1`)
		return err == nil && n == 2
	})
	names := exported(o.r1)
	for n := range exported(o.r2) {
		names[n] = true
	}
	names["up"] = true // Prometheus's own, per target
	check := func(kind, expr string, mustShow bool) {
		for _, n := range metricNames(expr) {
			if !names[n] {
				t.Errorf("%s %q names %s, which the agents do not export", kind, expr, n)
			}
		}
		_, n, err := query(expr)
		switch {
		case err != nil:
			t.Errorf("%s %q does not evaluate: %v", kind, expr, err)
		case mustShow && n == 0:
			t.Errorf("%s %q shows no data", kind, expr)
		}
	}
	for _, q := range dashboardQueries(t) {
		check("dashboard query", q, true)
	}
	for _, q := range alertQueries(t) {
		check("alert", q, false)
	}
	// Prometheus loaded every rule and evaluates them without error.
	netlab.Eventually(t, "every alerting rule evaluated", 30*time.Second, func() bool {
		resp, err := http.Get(api + "rules")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var r struct {
			Data struct {
				Groups []struct {
					Rules []struct {
						Name           string `json:"name"`
						Health         string `json:"health"`
						LastError      string `json:"lastError"`
						LastEvaluation string `json:"lastEvaluation"`
					} `json:"rules"`
				} `json:"groups"`
			} `json:"data"`
		}
		if json.NewDecoder(resp.Body).Decode(&r) != nil || len(r.Data.Groups) != 1 {
			return false
		}
		n := 0
		for _, rule := range r.Data.Groups[0].Rules {
			if rule.Health != "ok" {
				if rule.Health == "err" {
					t.Errorf("rule %s: %s", rule.Name, rule.LastError)
				}
				return false
			}
			n++
		}
		return n == len(alertQueries(t))
	})
	// The invalid resource the lab wrote shows, by kind: the panel reads a
	// real series, not an empty one.
	if _, n, err := query(`ocelot_datastore_invalid_resources_total{kind="NetworkPolicy"}`); err != nil || n == 0 {
		t.Errorf("the invalid policy is not counted: %d series, %v", n, err)
	}
}
