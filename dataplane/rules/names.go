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

// MaxChainNameLength is iptables' limit that Felix uses for chain names.
const MaxChainNameLength = 28

// LimitedName returns prefix+suffix, or, when that is too long, prefix +
// "_" + the start of base64url(SHA-256(suffix)) — Felix's chain naming.
func LimitedName(prefix, suffix string) string {
	if n := len(prefix) + len(suffix); n < MaxChainNameLength || (n == MaxChainNameLength && !strings.HasPrefix(suffix, "_")) {
		return prefix + suffix
	}
	h := sha256.Sum256([]byte(suffix))
	return prefix + "_" + base64.RawURLEncoding.EncodeToString(h[:])[:MaxChainNameLength-1-len(prefix)]
}
