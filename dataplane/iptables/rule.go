package iptables

import (
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"regexp"
	"strings"
)

// Rule is one rule: match fragments, an action, and human comments.
type Rule struct {
	Match   Match
	Action  string
	Comment []string
}

// Chain is a named list of rules.
type Chain struct {
	Name  string
	Rules []Rule
}

// HashPrefix starts every hash comment (shared with Felix).
const HashPrefix = "cali:"

// hashLength is the length of a rule hash.
const hashLength = 16

var unsafeComment = regexp.MustCompile(`[^\w @%+=:,./-]`)

// maxCommentLength is iptables' limit on a comment.
const maxCommentLength = 256

func commentFragment(c string) string {
	c = unsafeComment.ReplaceAllString(c, "_")
	if len(c) > maxCommentLength {
		c = c[:maxCommentLength]
	}
	return `-m comment --comment "` + c + `"`
}

// render writes the rule as "-A <chain> <hash> <comments> <match> <action>".
// With hash "HASH" it produces the text rule hashes are computed over.
func (r Rule) render(verb, chain, hash string) string {
	parts := make([]string, 0, 6)
	parts = append(parts, verb, chain)
	switch hash {
	case "":
	case "HASH":
		parts = append(parts, hash)
	default:
		parts = append(parts, `-m comment --comment "`+HashPrefix+hash+`"`)
	}
	for _, c := range r.Comment {
		parts = append(parts, commentFragment(c))
	}
	if m := r.Match.String(); m != "" {
		parts = append(parts, m)
	}
	if r.Action != "" {
		parts = append(parts, r.Action)
	}
	return strings.Join(parts, " ")
}

// Hashes returns the hash of each rule of a chain. A rule's hash covers
// the chain's name, its own text and every rule before it.
func Hashes(chain string, rules []Rule) []string {
	out := make([]string, len(rules))
	h := sha256.Sum224([]byte(chain))
	sum := h[:]
	for i, r := range rules {
		d := sha256.New224()
		d.Write(sum)
		d.Write([]byte(r.render("-A", chain, "HASH")))
		sum = d.Sum(nil)
		out[i] = base64.RawURLEncoding.EncodeToString(sum)[:hashLength]
	}
	return out
}

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

// Match is a list of match fragments, rendered in order.
type Match []string

func (m Match) String() string { return strings.Join(m, " ") }

func (m Match) add(format string, args ...any) Match { return append(m, fmt.Sprintf(format, args...)) }

// The fragments below render as Felix renders them.

func (m Match) MarkClear(mark uint32) Match    { return m.add("-m mark --mark 0/%#x", mark) }
func (m Match) MarkNotClear(mark uint32) Match { return m.add("-m mark ! --mark 0/%#x", mark) }
func (m Match) MarkSet(mark uint32) Match      { return m.add("-m mark --mark %#x/%#x", mark, mark) }
func (m Match) InInterface(name string) Match  { return m.add("--in-interface %s", name) }
func (m Match) OutInterface(name string) Match { return m.add("--out-interface %s", name) }
func (m Match) RPFCheckFailed() Match          { return m.add("-m rpfilter --invert --validmark") }
func (m Match) ConntrackState(s string) Match  { return m.add("-m conntrack --ctstate %s", s) }
func (m Match) NotConntrackState(s string) Match {
	return m.add("-m conntrack ! --ctstate %s", s)
}
func (m Match) Protocol(p string) Match          { return m.add("-p %s", p) }
func (m Match) NotProtocol(p string) Match       { return m.add("! -p %s", p) }
func (m Match) SourceNet(n string) Match         { return m.add("--source %s", n) }
func (m Match) NotSourceNet(n string) Match      { return m.add("! --source %s", n) }
func (m Match) DestNet(n string) Match           { return m.add("--destination %s", n) }
func (m Match) NotDestNet(n string) Match        { return m.add("! --destination %s", n) }
func (m Match) SourceIPSet(name string) Match    { return m.add("-m set --match-set %s src", name) }
func (m Match) NotSourceIPSet(name string) Match { return m.add("-m set ! --match-set %s src", name) }
func (m Match) DestIPSet(name string) Match      { return m.add("-m set --match-set %s dst", name) }
func (m Match) NotDestIPSet(name string) Match   { return m.add("-m set ! --match-set %s dst", name) }
func (m Match) SourceIPPortSet(name string) Match {
	return m.add("-m set --match-set %s src,src", name)
}
func (m Match) NotSourceIPPortSet(n string) Match { return m.add("-m set ! --match-set %s src,src", n) }
func (m Match) DestIPPortSet(name string) Match   { return m.add("-m set --match-set %s dst,dst", name) }
func (m Match) NotDestIPPortSet(name string) Match {
	return m.add("-m set ! --match-set %s dst,dst", name)
}
func (m Match) SourcePorts(ports string) Match { return m.add("-m multiport --source-ports %s", ports) }
func (m Match) NotSourcePorts(ports string) Match {
	return m.add("-m multiport ! --source-ports %s", ports)
}
func (m Match) DestPorts(ports string) Match {
	return m.add("-m multiport --destination-ports %s", ports)
}
func (m Match) NotDestPorts(ports string) Match {
	return m.add("-m multiport ! --destination-ports %s", ports)
}
func (m Match) ICMPType(t string) Match      { return m.add("-m icmp --icmp-type %s", t) }
func (m Match) NotICMPType(t string) Match   { return m.add("-m icmp ! --icmp-type %s", t) }
func (m Match) ICMPv6Type(t string) Match    { return m.add("-m icmp6 --icmpv6-type %s", t) }
func (m Match) NotICMPv6Type(t string) Match { return m.add("-m icmp6 ! --icmpv6-type %s", t) }
func (m Match) Limit(rate string, burst int) Match {
	return m.add("-m limit --limit %s --limit-burst %d", rate, burst)
}

// Actions, as Felix renders them.

func Jump(chain string) string { return "--jump " + chain }
func Goto(chain string) string { return "--goto " + chain }

const (
	Accept = "--jump ACCEPT"
	Drop   = "--jump DROP"
	Reject = "--jump REJECT"
	Return = "--jump RETURN"
)

// SetMark sets the bits of mark (mark/mark).
func SetMark(mark uint32) string { return fmt.Sprintf("--jump MARK --set-mark %#x/%#x", mark, mark) }

// ClearMark clears the bits of mask.
func ClearMark(mask uint32) string { return fmt.Sprintf("--jump MARK --set-mark 0/%#x", mask) }

// DNAT rewrites the destination.
func DNAT(addr string, port uint16) string {
	if port == 0 {
		return "--jump DNAT --to-destination " + addr
	}
	return fmt.Sprintf("--jump DNAT --to-destination %s:%d", addr, port)
}

// SNAT rewrites the source.
func SNAT(addr string) string { return "--jump SNAT --to-source " + addr }

// Log logs the packet with a prefix.
func Log(prefix string) string {
	return fmt.Sprintf(`--jump LOG --log-prefix "%s: " --log-level 5`, prefix)
}

// SetMaskedMark sets the bits of mask to value.
func SetMaskedMark(value, mask uint32) string {
	return fmt.Sprintf("--jump MARK --set-mark %#x/%#x", value, mask)
}
