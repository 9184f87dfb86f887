package iptables

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"

	goipt "github.com/coreos/go-iptables/iptables"
)

// Backends.
const (
	Legacy = "legacy"
	NFT    = "nft"
)

// binary finds "<base>-<mode>-<suffix>" (e.g. ip6tables-nft-save), falling
// back to "<base>-<suffix>" when the mode-specific one is absent.
func binary(family int, mode, suffix string) (string, error) {
	base := "iptables"
	if family == 6 {
		base = "ip6tables"
	}
	name := base + "-" + mode
	if suffix != "" {
		name += "-" + suffix
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	plain := base
	if suffix != "" {
		plain += "-" + suffix
	}
	if p, err := exec.LookPath(plain); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("%w: neither %s nor %s is installed", ErrNoBinary, name, plain)
}

// DetectBackend resolves IptablesBackend (auto, legacy or nft) as Felix
// does: an explicit choice wins; otherwise Kubernetes' hint chains decide,
// nft first; otherwise whichever backend already holds more rules, legacy
// on a tie (including a host with no rules at all).
func DetectBackend(mode string, log *slog.Logger) string {
	if mode == Legacy || mode == NFT {
		return mode
	}
	if hasHint(NFT) {
		return NFT
	}
	if legacyLoaded() && hasHint(Legacy) {
		return Legacy
	}
	nft, legacy := countRules(NFT), 0
	if legacyLoaded() {
		legacy = countRules(Legacy)
	}
	if log != nil {
		log.Info("iptables backend detected", "legacy_rules", legacy, "nft_rules", nft)
	}
	if nft > legacy {
		return NFT
	}
	return Legacy
}

// LegacyLoaded reports whether the legacy iptables modules are loaded
// (without loading them just to look).
func LegacyLoaded() bool { return legacyLoaded() }

// legacyLoaded avoids loading the legacy modules just to look.
func legacyLoaded() bool {
	for _, f := range []string{"/proc/net/ip_tables_names", "/proc/net/ip6_tables_names"} {
		if _, err := os.Stat(f); err == nil {
			return true
		}
	}
	return false
}

// hasHint looks for the chains kube-proxy and kubelet create in the
// backend they use.
func hasHint(mode string) bool {
	for _, family := range []int{6, 4} {
		path, err := binary(family, mode, "")
		if err != nil {
			continue
		}
		proto := goipt.ProtocolIPv4
		if family == 6 {
			proto = goipt.ProtocolIPv6
		}
		ipt, err := goipt.New(goipt.Path(path), goipt.IPFamily(proto))
		if err != nil {
			continue
		}
		for _, chain := range []string{"KUBE-IPTABLES-HINT", "KUBE-KUBELET-CANARY"} {
			if ok, err := ipt.ChainExists("mangle", chain); err == nil && ok {
				return true
			}
		}
	}
	return false
}

func countRules(mode string) int {
	n := 0
	for _, family := range []int{4, 6} {
		save, err := binary(family, mode, "save")
		if err != nil {
			continue
		}
		out, err := exec.Command(save).Output()
		if err != nil {
			continue
		}
		for _, line := range bytes.Split(out, []byte("\n")) {
			if strings.HasPrefix(string(line), "-") {
				n++
			}
		}
	}
	return n
}
