package config

import (
	"errors"
	"fmt"
	"math/bits"
	"net"
	"net/netip"
	"net/url"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"ocelot/internal/cidr"
)

// Bounds on raw values. Every value from a file, the environment or the
// datastore is untrusted: it is checked against these before it is parsed.
const (
	// MaxValueLen is the longest raw value of any parameter, in bytes.
	MaxValueLen = 4096
	// maxStringLen is the longest free-text value (KindString).
	maxStringLen = 1024
	// maxListItems is the most items a list parameter may have.
	maxListItems = 128
	// maxLogPrefixLen: iptables keeps 29 characters of a log prefix, and
	// the rule renders "<prefix>: ".
	maxLogPrefixLen = 27
	// maxHostAddressLen is Felix's bound on a listening address.
	maxHostAddressLen = 64
)

// ProtoPort is one entry of a failsafe port list: [proto:][net:]port.
type ProtoPort struct {
	Protocol string // "tcp" or "udp"
	Net      string // optional CIDR, canonical
	Port     int
}

func (p ProtoPort) String() string {
	if p.Net == "" {
		return fmt.Sprintf("%s:%d", p.Protocol, p.Port)
	}
	if strings.Contains(p.Net, ":") {
		return fmt.Sprintf("%s:[%s]:%d", p.Protocol, p.Net, p.Port)
	}
	return fmt.Sprintf("%s:%s:%d", p.Protocol, p.Net, p.Port)
}

// LogRate is a rate limit for the Log action: Count per Per. The zero value
// means no limit.
type LogRate struct {
	Count int    // 1-9999
	Per   string // second, minute, hour or day
}

// PerSecond is the rate in events per second (0 for no limit).
func (r LogRate) PerSecond() float64 {
	per := map[string]float64{"second": 1, "minute": 60, "hour": 3600, "day": 86400}[r.Per]
	if r.Count == 0 || per == 0 {
		return 0
	}
	return float64(r.Count) / per
}

func (r LogRate) String() string {
	if r.Count == 0 {
		return ""
	}
	return fmt.Sprintf("%d/%s", r.Count, r.Per)
}

// InterfacePatterns is a list of interface names and /regexp/ patterns, as
// InterfaceExclude takes them. Each entry has been validated.
type InterfacePatterns []string

// Matcher compiles the patterns into one predicate: a name matches a plain
// entry exactly, or a /regexp/ entry anywhere (as Felix does).
func (ps InterfacePatterns) Matcher() (func(name string) bool, error) {
	res := make([]*regexp.Regexp, 0, len(ps))
	for _, p := range ps {
		re, err := compileInterfacePattern(p)
		if err != nil {
			return nil, err
		}
		res = append(res, re)
	}
	return func(name string) bool {
		for _, re := range res {
			if re.MatchString(name) {
				return true
			}
		}
		return false
	}, nil
}

var (
	hostnameRE    = regexp.MustCompile(`^[a-zA-Z0-9_.-]{1,253}$`)
	regionRE      = regexp.MustCompile(`^[a-zA-Z0-9]([a-zA-Z0-9-]{0,44}[a-zA-Z0-9])?$`)
	ifacePrefixRE = regexp.MustCompile(`^[a-zA-Z0-9_.-]{1,15}$`)
	ifaceNameRE   = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,15}$`)
	ifaceRegexpRE = regexp.MustCompile(`^/[^\s]+/$`)
	hostAddressRE = regexp.MustCompile(`^[a-zA-Z0-9:._+-]{1,64}$`)
	logPrefixRE   = regexp.MustCompile(`^[a-zA-Z0-9%: /_-]*$`)
	logRateRE     = regexp.MustCompile(`^([1-9][0-9]{0,3})/(second|minute|hour|day)$`)
)

// MaxRegionLength is the longest region name: a namespace name is at most 63
// characters and "openstack-region-" takes 17 of them.
const MaxRegionLength = 63 - len("openstack-region-")

// markBitsNeeded is how many bits of IptablesMarkMask Ocelot allocates:
// accept, pass, drop, scratch-0 and scratch-1.
const markBitsNeeded = 5

// zeroValue is the value "none" sets for each kind.
func zeroValue(k Kind) any {
	switch k {
	case KindBool:
		return false
	case KindInt:
		return 0
	case KindSeconds, KindMillis:
		return time.Duration(0)
	case KindURLList, KindPrefixList:
		return []string(nil)
	case KindInterfacePatterns:
		return InterfacePatterns(nil)
	case KindPortList:
		return []ProtoPort(nil)
	case KindMarkMask:
		return uint32(0)
	case KindLogRate:
		return LogRate{}
	default:
		return ""
	}
}

// maxLen is the longest raw value p accepts, in bytes.
func (p *Param) maxLen() int {
	switch {
	case p.MaxLen > 0:
		return p.MaxLen
	case p.Kind == KindString:
		return maxStringLen
	}
	return MaxValueLen
}

// checkText applies the rules every raw value obeys, whatever its kind:
// bounded size, valid UTF-8, printable characters only (no control, format
// or line-separator characters that could change what a log line, a script
// or a message looks like).
func checkText(raw string, max int) error {
	if len(raw) > max {
		return fmt.Errorf("is %d bytes long; at most %d are accepted", len(raw), max)
	}
	if !utf8.ValidString(raw) {
		return errors.New("is not valid UTF-8")
	}
	for i, r := range raw {
		if !unicode.IsPrint(r) {
			return fmt.Errorf("contains the non-printable character %U at byte %d; control and format characters are not accepted", r, i)
		}
	}
	return nil
}

// parseValue turns raw text into the typed value of p. The error text is the
// rule that was broken, phrased to follow "<param> = <value>: ".
func parseValue(p *Param, raw string) (any, error) {
	if err := checkText(raw, p.maxLen()); err != nil {
		return nil, err
	}
	if strings.EqualFold(raw, "none") {
		if p.NonZero {
			return nil, errors.New("may not be none: this parameter needs a value")
		}
		return zeroValue(p.Kind), nil
	}
	switch p.Kind {
	case KindBool:
		return parseBool(raw)
	case KindInt:
		return parseInt(p, raw)
	case KindSeconds:
		return parseDuration(raw, time.Second, "seconds")
	case KindMillis:
		return parseDuration(raw, time.Millisecond, "milliseconds")
	case KindString, KindPath:
		return raw, nil
	case KindEnum:
		for _, e := range p.Enum {
			if strings.EqualFold(e, raw) {
				return e, nil
			}
		}
		return nil, fmt.Errorf("must be one of %s (any case)", strings.Join(p.Enum, ", "))
	case KindHostname:
		if !hostnameRE.MatchString(raw) {
			return nil, errors.New("must be 1-253 characters from [a-zA-Z0-9_.-]")
		}
		return raw, nil
	case KindIPOrHost:
		// Felix takes any [a-zA-Z0-9_.-] name; an IPv6 address too here.
		if _, err := netip.ParseAddr(raw); err == nil && !strings.Contains(raw, "%") {
			return raw, nil
		}
		if !hostnameRE.MatchString(raw) {
			return nil, errors.New("must be an IP address or a host name of [a-zA-Z0-9_.-]")
		}
		return raw, nil
	case KindHostAddress:
		if !hostAddressRE.MatchString(raw) {
			return nil, fmt.Errorf("must be a host name or address: 1-%d characters from [a-zA-Z0-9:._+-]", maxHostAddressLen)
		}
		return raw, nil
	case KindRegion:
		return raw, ValidateRegion(raw)
	case KindMarkMask:
		return parseMarkMask(raw)
	case KindURLList:
		return parseURLList(raw)
	case KindHostPort:
		return raw, validateHostPort(raw)
	case KindFile:
		st, err := os.Stat(raw)
		if err != nil {
			return nil, fmt.Errorf("must name a readable file: %v", errors.Unwrap(err))
		}
		if st.IsDir() {
			return nil, errors.New("must name a file, not a directory")
		}
		return raw, nil
	case KindPrefixList:
		items, err := splitList(raw)
		if err != nil {
			return nil, err
		}
		if len(items) == 0 {
			return nil, errors.New("must list at least one interface prefix")
		}
		for _, it := range items {
			if !ifacePrefixRE.MatchString(it) {
				return nil, fmt.Errorf("prefix %q must be 1-15 characters from [a-zA-Z0-9_.-]", clip(it))
			}
		}
		return items, nil
	case KindInterfacePatterns:
		return parseInterfacePatterns(raw)
	case KindPortList:
		return parsePortList(raw)
	case KindLogPrefix:
		if !logPrefixRE.MatchString(raw) {
			return nil, errors.New("must be letters, digits and the characters %: /_- (as the Calico API accepts)")
		}
		if len(raw) > maxLogPrefixLen {
			return nil, fmt.Errorf("must be at most %d characters: iptables keeps 29 of the rendered \"<prefix>: \"", maxLogPrefixLen)
		}
		return raw, nil
	case KindLogRate:
		m := logRateRE.FindStringSubmatch(raw)
		if m == nil {
			return nil, errors.New("must be N/second, N/minute, N/hour or N/day with N from 1 to 9999")
		}
		n, _ := strconv.Atoi(m[1])
		return LogRate{Count: n, Per: m[2]}, nil
	}
	return nil, fmt.Errorf("internal error: unknown kind %d", p.Kind)
}

// sameValue reports whether raw means the same as ref for p: both parse to
// equal values, or, where they do not parse, the texts are equal in any
// case. An empty ref is the kind's zero value.
func sameValue(p *Param, raw, ref string) bool {
	a, errA := parseValue(p, raw)
	var b any
	var errB error
	if ref == "" {
		b = zeroValue(p.Kind)
	} else {
		b, errB = parseValue(p, ref)
	}
	if errA == nil && errB == nil {
		if sa, ok := a.(string); ok {
			sb, _ := b.(string)
			return strings.EqualFold(sa, sb)
		}
		return reflect.DeepEqual(a, b)
	}
	return strings.EqualFold(strings.TrimSpace(raw), ref)
}

// ValidateRegion checks an OpenStack region name. Unlike Felix, which insists
// on a lower-case DNS label, Ocelot keeps case so that OpenStack's default
// names (RegionOne) work.
func ValidateRegion(r string) error {
	if r == "" {
		return nil
	}
	if len(r) > MaxRegionLength {
		return fmt.Errorf("must be at most %d characters (the namespace openstack-region-<region> is limited to 63), not %d", MaxRegionLength, len(r))
	}
	if !regionRE.MatchString(r) {
		return errors.New("must be letters, digits and '-', starting and ending with a letter or digit")
	}
	return nil
}

func parseBool(raw string) (any, error) {
	switch strings.ToLower(raw) {
	case "true", "t", "yes", "y", "on", "1":
		return true, nil
	case "false", "f", "no", "n", "off", "0":
		return false, nil
	}
	return nil, errors.New("must be true or false")
}

// parseInt reads an integer as Felix does: decimal, or 0x hex, 0o/0 octal,
// 0b binary.
func parseInt(p *Param, raw string) (any, error) {
	bounded := p.Min != 0 || p.Max != 0
	n, err := strconv.ParseInt(raw, 0, 64)
	if err != nil || (bounded && (n < int64(p.Min) || n > int64(p.Max))) {
		if bounded {
			return nil, fmt.Errorf("must be an integer from %d to %d", p.Min, p.Max)
		}
		return nil, errors.New("must be an integer")
	}
	return int(n), nil
}

// parseDuration reads a number of units (fractions allowed) or, as a
// convenience and for FelixConfiguration's durations, a Go duration such as
// "90s".
func parseDuration(raw string, unit time.Duration, unitName string) (any, error) {
	if f, err := strconv.ParseFloat(raw, 64); err == nil {
		if f < 0 || f > float64(1<<62)/float64(unit) || f != f {
			return nil, fmt.Errorf("must be a non-negative number of %s", unitName)
		}
		return time.Duration(f * float64(unit)), nil
	}
	if d, err := time.ParseDuration(raw); err == nil && d >= 0 {
		return d, nil
	}
	return nil, fmt.Errorf("must be a non-negative number of %s", unitName)
}

// splitList splits a comma-separated list, dropping blanks, and bounds it.
func splitList(raw string) ([]string, error) {
	var out []string
	for _, s := range strings.Split(raw, ",") {
		if s = strings.TrimSpace(s); s != "" {
			if len(out) == maxListItems {
				return nil, fmt.Errorf("lists more than %d items", maxListItems)
			}
			out = append(out, s)
		}
	}
	return out, nil
}

func parseInterfacePatterns(raw string) (any, error) {
	items, err := splitList(raw)
	if err != nil {
		return nil, err
	}
	for _, it := range items {
		if _, err := compileInterfacePattern(it); err != nil {
			return nil, err
		}
	}
	return InterfacePatterns(items), nil
}

// compileInterfacePattern turns an InterfaceExclude entry into a regexp:
// /re/ as written, a plain name anchored at both ends.
func compileInterfacePattern(p string) (*regexp.Regexp, error) {
	switch {
	case ifaceRegexpRE.MatchString(p):
		re, err := regexp.Compile(p[1 : len(p)-1])
		if err != nil {
			return nil, fmt.Errorf("entry %q is not a valid regular expression: %s", clip(p), clip(err.Error()))
		}
		return re, nil
	case ifaceNameRE.MatchString(p):
		return regexp.MustCompile("^" + regexp.QuoteMeta(p) + "$"), nil
	}
	return nil, fmt.Errorf("entry %q must be an interface name (1-15 characters from [a-zA-Z0-9_-]) or a /regexp/ without spaces", clip(p))
}

func parsePortList(raw string) (any, error) {
	items, err := splitList(raw)
	if err != nil {
		return nil, err
	}
	var out []ProtoPort
	for _, item := range items {
		pp, err := parseProtoPort(item)
		if err != nil {
			return nil, fmt.Errorf("entry %q: %v (expected [tcp|udp:][net:]port)", clip(item), err)
		}
		out = append(out, pp)
	}
	return out, nil
}

func parseProtoPort(item string) (ProtoPort, error) {
	pp := ProtoPort{Protocol: "tcp"}
	rest := item
	if i := strings.IndexByte(rest, ':'); i >= 0 {
		switch proto := strings.ToLower(rest[:i]); proto {
		case "tcp", "udp":
			pp.Protocol, rest = proto, rest[i+1:]
		}
	}
	portText := rest
	if strings.HasPrefix(rest, "[") {
		end := strings.Index(rest, "]:")
		if end < 0 {
			return pp, errors.New("an IPv6 net must be written [cidr]:port")
		}
		p, err := cidr.Parse(rest[1:end])
		if err != nil || !p.Addr().Is6() {
			return pp, fmt.Errorf("%q is not an IPv6 CIDR", clip(rest[1:end]))
		}
		pp.Net, portText = p.String(), rest[end+2:]
	} else if i := strings.LastIndexByte(rest, ':'); i >= 0 {
		p, err := cidr.Parse(rest[:i])
		if err != nil || !p.Addr().Is4() {
			return pp, fmt.Errorf("%q is not a protocol (tcp, udp) or an IPv4 CIDR", clip(rest[:i]))
		}
		pp.Net, portText = p.String(), rest[i+1:]
	}
	port, err := strconv.Atoi(portText)
	if err != nil || port < 0 || port > 65535 {
		return pp, fmt.Errorf("port %q must be an integer from 0 to 65535", clip(portText))
	}
	pp.Port = port
	return pp, nil
}

func parseMarkMask(raw string) (any, error) {
	n, err := strconv.ParseUint(raw, 0, 32)
	if err != nil {
		return nil, errors.New("must be a 32-bit integer (hex like 0xffff0000 or decimal)")
	}
	if bits.OnesCount32(uint32(n)) < markBitsNeeded {
		return nil, fmt.Errorf("must have at least %d bits set (accept, pass, drop and two scratch marks)", markBitsNeeded)
	}
	return uint32(n), nil
}

// parseURLList accepts what Felix accepts for EtcdEndpoints: http(s)
// URLs of a host and port only, one scheme for all. Credentials in a URL
// are refused, and never echoed back.
func parseURLList(raw string) (any, error) {
	items, err := splitList(raw)
	if err != nil {
		return nil, err
	}
	scheme := ""
	for _, it := range items {
		u, err := url.Parse(it)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("%q must be a URL like http://host:2379 or https://host:2379", clip(redactURLs(it)))
		}
		if u.User != nil || u.Opaque != "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.ForceQuery {
			return nil, fmt.Errorf("%q must be scheme://host:port only (no credentials, path, query or fragment)", clip(redactURLs(it)))
		}
		if scheme != "" && u.Scheme != scheme {
			return nil, errors.New("all endpoints must use the same scheme (http or https)")
		}
		scheme = u.Scheme
	}
	return items, nil
}

func validateHostPort(raw string) error {
	host, port, err := net.SplitHostPort(raw)
	if err != nil || host == "" {
		return errors.New("must be host:port")
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return errors.New("must be host:port with a port from 1 to 65535")
	}
	return nil
}

// redactURLs hides the user information of every URL in s
// ("http://user:pw@host" becomes "http://(redacted)@host").
func redactURLs(s string) string {
	var b strings.Builder
	for {
		i := strings.Index(s, "://")
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		b.WriteString(s[:i+3])
		s = s[i+3:]
		end := strings.IndexAny(s, "/,? ")
		if end < 0 {
			end = len(s)
		}
		if at := strings.LastIndexByte(s[:end], '@'); at >= 0 {
			b.WriteString("(redacted)")
			s = s[at:]
		}
	}
}
