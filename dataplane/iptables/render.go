package iptables

import (
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"regexp"
	"strings"

	"ocelot/dataplane/ruleset"
)

// HashPrefix starts every hash comment (shared with Felix).
const HashPrefix = "cali:"

// hashLength is the length of a rule hash.
const hashLength = 16

// Renderer writes the neutral rule model as iptables-restore text, as
// Felix writes the same rules, so that the hashes of the text match
// Felix's. SetName gives the kernel name of a set in the family rendered
// (nil: the ID itself).
type Renderer struct {
	SetName func(id string) string
}

// Rule renders a rule's comments, match and action, the part of a
// restore line after "-A <chain>" and the hash comment.
func (r Renderer) Rule(x ruleset.Rule) string {
	parts := make([]string, 0, len(x.Comment)+2)
	for _, c := range x.Comment {
		parts = append(parts, commentFragment(c))
	}
	if m := r.Match(x.Match); m != "" {
		parts = append(parts, m)
	}
	if x.Action != nil {
		parts = append(parts, Action(x.Action))
	}
	return strings.Join(parts, " ")
}

// Match renders a conjunction of criteria, in order.
func (r Renderer) Match(m ruleset.Match) string {
	parts := make([]string, len(m))
	for i, c := range m {
		parts[i] = r.criterion(c)
	}
	return strings.Join(parts, " ")
}

func not(negate bool) string {
	if negate {
		return "! "
	}
	return ""
}

// hexOrZero writes a mark as Felix does: 0 plainly, anything else in hex.
func hexOrZero(v uint32) string {
	if v == 0 {
		return "0"
	}
	return fmt.Sprintf("%#x", v)
}

func (r Renderer) set(id string) string {
	if r.SetName == nil {
		return word(id)
	}
	return word(r.SetName(id))
}

func (r Renderer) criterion(c ruleset.Criterion) string {
	src := func(d ruleset.Dir, s, dst string) string {
		if d == ruleset.Src {
			return s
		}
		return dst
	}
	switch x := c.(type) {
	case ruleset.Mark:
		return fmt.Sprintf("-m mark %s--mark %s/%#x", not(x.Negate), hexOrZero(x.Value), x.Mask)
	case ruleset.InInterface:
		return "--in-interface " + word(x.Name)
	case ruleset.OutInterface:
		return "--out-interface " + word(x.Name)
	case ruleset.RPFCheckFailed:
		return "-m rpfilter --invert --validmark"
	case ruleset.ConntrackState:
		states := make([]string, len(x.States))
		for i, s := range x.States {
			states[i] = string(s)
		}
		return "-m conntrack " + not(x.Negate) + "--ctstate " + strings.Join(states, ",")
	case ruleset.Protocol:
		return not(x.Negate) + "-p " + x.Proto.String()
	case ruleset.Net:
		return not(x.Negate) + src(x.Dir, "--source ", "--destination ") + x.Net.String()
	case ruleset.Addr:
		return not(x.Negate) + src(x.Dir, "--source ", "--destination ") + x.Addr.String()
	case ruleset.IPSet:
		return "-m set " + not(x.Negate) + "--match-set " + r.set(x.ID) + src(x.Dir, " src", " dst")
	case ruleset.IPPortSet:
		return "-m set " + not(x.Negate) + "--match-set " + r.set(x.ID) + src(x.Dir, " src,src", " dst,dst")
	case ruleset.Ports:
		ports := make([]string, len(x.Ports))
		for i, p := range x.Ports {
			ports[i] = p.String()
		}
		return "-m multiport " + not(x.Negate) + src(x.Dir, "--source-ports ", "--destination-ports ") + strings.Join(ports, ",")
	case ruleset.Limit:
		if x.Burst == 0 {
			return fmt.Sprintf("-m limit --limit %d/%s", x.Count, x.Per)
		}
		return fmt.Sprintf("-m limit --limit %d/%s --limit-burst %d", x.Count, x.Per, x.Burst)
	case ruleset.ICMP:
		if x.V6 {
			return "-m icmp6 " + not(x.Negate) + "--icmpv6-type " + x.Type.String()
		}
		return "-m icmp " + not(x.Negate) + "--icmp-type " + x.Type.String()
	case ruleset.TCPFlags:
		return "-m tcp --tcp-flags " + tcpFlags(x.Mask) + " " + tcpFlags(x.Set)
	case ruleset.PacketRate:
		return fmt.Sprintf("-m limit --limit %d/sec --limit-burst %d", x.Rate, x.Burst)
	case ruleset.ConnLimit:
		// Mask 0: every connection in one count, whatever its addresses.
		return fmt.Sprintf("-m connlimit --connlimit-above %d --connlimit-mask 0", x.Above)
	}
	panic(fmt.Sprintf("iptables: no rendering for match criterion %T", c))
}

// Action renders an action.
func Action(a ruleset.Action) string {
	switch x := a.(type) {
	case ruleset.Accept:
		return "--jump ACCEPT"
	case ruleset.Drop:
		return "--jump DROP"
	case ruleset.Reject:
		if x.With == ruleset.RejectTCPReset {
			return "-j REJECT --reject-with tcp-reset" // as Felix writes it, for its hash
		}
		return "--jump REJECT"
	case ruleset.Return:
		return "--jump RETURN"
	case ruleset.Jump:
		return "--jump " + word(x.Chain)
	case ruleset.Goto:
		return "--goto " + word(x.Chain)
	case ruleset.SetMark:
		return fmt.Sprintf("--jump MARK --set-mark %s/%#x", hexOrZero(x.Value), x.Mask)
	case ruleset.DNAT:
		if x.Port == 0 {
			return "--jump DNAT --to-destination " + x.Addr.String()
		}
		return fmt.Sprintf("--jump DNAT --to-destination %s:%d", x.Addr, x.Port)
	case ruleset.SNAT:
		return "--jump SNAT --to-source " + x.Addr.String()
	case ruleset.Log:
		return fmt.Sprintf(`--jump LOG --log-prefix "%s: " --log-level 5`, logPrefix(x.Prefix))
	case ruleset.NFLOG:
		return fmt.Sprintf(`--jump NFLOG --nflog-group %d --nflog-prefix "%s" --nflog-size %d`, x.Group, nflogPrefix(x.Prefix), x.Size)
	case ruleset.NoTrack:
		return "--jump NOTRACK"
	}
	panic(fmt.Sprintf("iptables: no rendering for action %T", a))
}

// tcpFlags names flag bits in the order iptables-save prints them.
func tcpFlags(bits uint8) string {
	var names []string
	for i, n := range []string{"FIN", "SYN", "RST", "PSH", "ACK", "URG"} {
		if bits&(1<<i) != 0 {
			names = append(names, n)
		}
	}
	if len(names) == 0 {
		return "NONE"
	}
	return strings.Join(names, ",")
}

var (
	unsafeComment   = regexp.MustCompile(`[^\w @%+=:,./-]`)
	unsafeLogPrefix = regexp.MustCompile(`[^a-zA-Z0-9%: /_-]`)
)

// maxLogPrefixLength is what iptables keeps of a log prefix (29) less the
// ": " the renderer appends.
const maxLogPrefixLength = 27

// logPrefix keeps a log prefix inside its quotes: the characters the
// LogPrefix parameter allows, and no more than iptables keeps.
// Configuration validates it already; this is the second line of defence.
func logPrefix(p string) string {
	p = unsafeLogPrefix.ReplaceAllString(p, "_")
	if len(p) > maxLogPrefixLength {
		p = p[:maxLogPrefixLength]
	}
	return p
}

// word keeps a name (an interface, a chain, a set) one word of the
// restore line: a character that iptables-restore would read as structure
// — whitespace, a quote, a backslash, a control character, anything
// outside ASCII — becomes "_". The managers hand over only names without
// them; this is the second line of defence.
func word(s string) string {
	if !strings.ContainsFunc(s, structural) {
		return s
	}
	return strings.Map(func(r rune) rune {
		if structural(r) {
			return '_'
		}
		return r
	}, s)
}

func structural(r rune) bool { return r <= ' ' || r >= 0x7f || r == '"' || r == '\'' || r == '\\' }

var unsafePrefix = regexp.MustCompile(`[^A-Za-z0-9 ._:/|-]`)

// nflogPrefix keeps a prefix inside its quotes and the kernel's length.
func nflogPrefix(p string) string {
	p = unsafePrefix.ReplaceAllString(p, "_")
	if len(p) > ruleset.MaxNFLOGPrefix {
		p = p[:ruleset.MaxNFLOGPrefix]
	}
	return p
}

// maxCommentLength is iptables' limit on a comment.
const maxCommentLength = 256

func commentFragment(c string) string {
	c = unsafeComment.ReplaceAllString(c, "_")
	if len(c) > maxCommentLength {
		c = c[:maxCommentLength]
	}
	return `-m comment --comment "` + c + `"`
}

// Hashes returns the hash of each rule of a chain. A rule's hash covers
// the chain's name, its own text and every rule before it.
func (r Renderer) Hashes(chain string, rules []ruleset.Rule) []string {
	bodies := make([]string, len(rules))
	for i, x := range rules {
		bodies[i] = r.Rule(x)
	}
	return hashes(chain, bodies)
}

// hashes chains SHA-224 over the chain name and each rule's text as
// "-A <chain> HASH <body>", Felix's hash input.
func hashes(chain string, bodies []string) []string {
	out := make([]string, len(bodies))
	h := sha256.Sum224([]byte(chain))
	sum := h[:]
	for i, b := range bodies {
		d := sha256.New224()
		d.Write(sum)
		d.Write([]byte(line("-A", chain, "HASH", b)))
		sum = d.Sum(nil)
		out[i] = base64.RawURLEncoding.EncodeToString(sum)[:hashLength]
	}
	return out
}

// line writes "<verb> <chain> <hash> <body>": with hash "HASH", the text
// hashes are computed over; otherwise a restore line with the hash
// comment.
func line(verb, chain, hash, body string) string {
	var b strings.Builder
	b.Grow(len(verb) + len(chain) + len(body) + 48)
	b.WriteString(verb)
	b.WriteByte(' ')
	b.WriteString(chain)
	switch hash {
	case "":
	case "HASH":
		b.WriteString(" HASH")
	default:
		b.WriteString(` -m comment --comment "` + HashPrefix + hash + `"`)
	}
	if body != "" {
		b.WriteByte(' ')
		b.WriteString(body)
	}
	return b.String()
}
