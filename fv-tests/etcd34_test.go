package fvtests

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"ocelot/fv-tests/lab"
	"ocelot/internal/embedetcd"
	"ocelot/internal/netlab"
)

// etcd34 finds Debian's etcd-server binary: installed, or unpacked into
// bin/etcd-3.4 by scripts/install-deps.sh.
func etcd34() string {
	for _, p := range []string{os.Getenv("OCELOT_ETCD34"), "../bin/etcd-3.4/usr/bin/etcd", "/usr/bin/etcd"} {
		if p == "" {
			continue
		}
		if abs, err := filepath.Abs(p); err == nil {
			if out, err := exec.Command(abs, "--version").Output(); err == nil && strings.Contains(string(out), "etcd Version: 3.4") {
				return abs
			}
		}
	}
	return ""
}

// TestGuideScenarioEtcd34 runs the guide's scenario against the etcd
// operators actually run: Debian's etcd-server package (3.4).
func TestGuideScenarioEtcd34(t *testing.T) {
	netlab.Require(t)
	bin := etcd34()
	if bin == "" {
		netlab.Unavailable(t, "Debian's etcd-server (3.4) is not installed and could not be fetched (scripts/install-deps.sh)")
	}
	netlab.Run(t, "ip", "link", "set", "lo", "up")
	if out, _ := netlab.Try("ip", "addr", "show", "dev", "lo"); !strings.Contains(out, lab.EtcdAddr+"/32") {
		netlab.Run(t, "ip", "addr", "add", lab.EtcdAddr+"/32", "dev", "lo")
	}
	port, err := embedetcd.FreePort(lab.EtcdAddr)
	if err != nil {
		t.Fatal(err)
	}
	url := fmt.Sprintf("http://%s:%d", lab.EtcdAddr, port)
	peer, _ := embedetcd.FreePort("127.0.0.1")
	cmd := exec.Command(bin, "--data-dir", t.TempDir(), "--listen-client-urls", url, "--advertise-client-urls", url,
		"--listen-peer-urls", fmt.Sprintf("http://127.0.0.1:%d", peer), "--log-level", "error")
	logPath := filepath.Join(t.TempDir(), "etcd34.log")
	logf, _ := os.Create(logPath)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait(); logf.Close() })
	guideScenario(t, newLabWithEtcd(t, url))
}
