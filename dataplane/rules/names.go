package rules

import (
	"crypto/sha256"
	"encoding/base64"
	"strings"

	"ocelot/contract"
)

// Chain names.
const (
	ChainFromWorkloadDispatch = "cali-from-wl-dispatch"
	ChainToWorkloadDispatch   = "cali-to-wl-dispatch"
	ChainWorkloadToHost       = "cali-wl-to-host"
	ChainRPFSkip              = "cali-rpf-skip"
	ChainFIPDNAT              = "cali-fip-dnat"
	ChainFIPSNAT              = "cali-fip-snat"
)

// PolicyChainName names the inbound (cali-pi-) or outbound (cali-po-)
// chain of a policy.
func PolicyChainName(id contract.PolicyID, inbound bool) string {
	if inbound {
		return LimitedName("cali-pi-", id.String())
	}
	return LimitedName("cali-po-", id.String())
}

// ProfileChainName names the inbound (cali-pri-) or outbound (cali-pro-)
// chain of a profile.
func ProfileChainName(id string, inbound bool) string {
	if inbound {
		return LimitedName("cali-pri-", id)
	}
	return LimitedName("cali-pro-", id)
}

// ToWorkloadChainName and FromWorkloadChainName name an endpoint's chains.
func ToWorkloadChainName(iface string) string   { return LimitedName("cali-tw-", iface) }
func FromWorkloadChainName(iface string) string { return LimitedName("cali-fw-", iface) }

// WorkloadOnly reports whether only workload traffic reaches a chain:
// policy, profile and endpoint chains, the workload dispatch chains and
// the workload-to-host chain. A backend that cannot program such a chain
// may replace it by a drop: that fails closed for the workloads it
// touches and never cuts off the host's own traffic.
func WorkloadOnly(chain string) bool {
	for _, p := range []string{"cali-pi-", "cali-po-", "cali-pri-", "cali-pro-", "cali-tw-", "cali-fw-",
		ChainFromWorkloadDispatch, ChainToWorkloadDispatch, ChainWorkloadToHost} {
		if strings.HasPrefix(chain, p) {
			return true
		}
	}
	return false
}

// MaxChainNameLength is iptables' limit that Felix uses for chain names.
const MaxChainNameLength = 28

// LimitedName returns prefix+suffix, or, when that is too long, prefix +
// "_" + the start of base64url(SHA-256(suffix)) — Felix's chain naming.
// A suffix with any character outside [A-Za-z0-9._/*-] is hashed too,
// whatever its length: a name reaches a restore script, and no name may
// add a word, a quote or a line to it (Felix's names for valid inputs
// never have such characters, so they stay Felix's).
func LimitedName(prefix, suffix string) string {
	if n := len(prefix) + len(suffix); safeName(suffix) && (n < MaxChainNameLength || (n == MaxChainNameLength && !strings.HasPrefix(suffix, "_"))) {
		return prefix + suffix
	}
	h := sha256.Sum256([]byte(suffix))
	return prefix + "_" + base64.RawURLEncoding.EncodeToString(h[:])[:MaxChainNameLength-1-len(prefix)]
}

// safeName reports whether s holds only [A-Za-z0-9._/*-] ("*" names the
// all-interfaces host endpoint's chains, as in Felix).
func safeName(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '/' || c == '*' || c == '-') {
			return false
		}
	}
	return true
}
