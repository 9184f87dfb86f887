package config

import (
	"errors"
	"fmt"
	"math/bits"
	"net"
	"net/netip"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"ocelot/internal/cidr"
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

var (
	hostnameRE    = regexp.MustCompile(`^[a-zA-Z0-9_.-]{1,253}$`)
	dnsNameRE     = regexp.MustCompile(`^[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?(\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$`)
	regionRE      = regexp.MustCompile(`^[a-zA-Z0-9]([a-zA-Z0-9-]{0,44}[a-zA-Z0-9])?$`)
	ifacePrefixRE = regexp.MustCompile(`^[a-zA-Z0-9_.-]{1,15}$`)
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
	case KindList, KindURLList, KindPrefixList:
		return []string(nil)
	case KindPortList:
		return []ProtoPort(nil)
	case KindMarkMask:
		return uint32(0)
	default:
		return ""
	}
}

// parseValue turns raw text into the typed value of p. The error text is the
// rule that was broken, phrased to follow "<param> = <value>: ".
func parseValue(p *Param, raw string) (any, error) {
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
	case KindString:
		return raw, nil
	case KindList:
		return splitList(raw), nil
	case KindPortList:
		return parsePortList(raw)
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
		if _, err := netip.ParseAddr(raw); err == nil {
			return raw, nil
		}
		if !dnsNameRE.MatchString(raw) || len(raw) > 253 {
			return nil, errors.New("must be an IP address or a DNS host name")
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
		items := splitList(raw)
		if len(items) == 0 {
			return nil, errors.New("must list at least one interface prefix")
		}
		for _, it := range items {
			if !ifacePrefixRE.MatchString(it) {
				return nil, fmt.Errorf("prefix %q must be 1-15 characters from [a-zA-Z0-9_.-]", it)
			}
		}
		return items, nil
	}
	return nil, fmt.Errorf("internal error: unknown kind %d", p.Kind)
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

func parseInt(p *Param, raw string) (any, error) {
	n, err := strconv.Atoi(raw)
	if err != nil {
		if p.Min != 0 || p.Max != 0 {
			return nil, fmt.Errorf("must be an integer from %d to %d", p.Min, p.Max)
		}
		return nil, errors.New("must be an integer")
	}
	if (p.Min != 0 || p.Max != 0) && (n < p.Min || n > p.Max) {
		return nil, fmt.Errorf("must be an integer from %d to %d", p.Min, p.Max)
	}
	return n, nil
}

// parseDuration reads a number of units (fractions allowed) or, as a
// convenience, a Go duration such as "90s".
func parseDuration(raw string, unit time.Duration, unitName string) (any, error) {
	if f, err := strconv.ParseFloat(raw, 64); err == nil {
		if f < 0 || f > float64(1<<62)/float64(unit) {
			return nil, fmt.Errorf("must be a non-negative number of %s", unitName)
		}
		return time.Duration(f * float64(unit)), nil
	}
	if d, err := time.ParseDuration(raw); err == nil && d >= 0 {
		return d, nil
	}
	return nil, fmt.Errorf("must be a non-negative number of %s", unitName)
}

func splitList(raw string) []string {
	var out []string
	for _, s := range strings.Split(raw, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

func parsePortList(raw string) (any, error) {
	var out []ProtoPort
	for _, item := range splitList(raw) {
		pp, err := parseProtoPort(item)
		if err != nil {
			return nil, fmt.Errorf("entry %q: %v (expected [tcp|udp:][net:]port)", item, err)
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
			return pp, fmt.Errorf("%q is not an IPv6 CIDR", rest[1:end])
		}
		pp.Net, portText = p.String(), rest[end+2:]
	} else if i := strings.LastIndexByte(rest, ':'); i >= 0 {
		p, err := cidr.Parse(rest[:i])
		if err != nil || !p.Addr().Is4() {
			return pp, fmt.Errorf("%q is not a protocol (tcp, udp) or an IPv4 CIDR", rest[:i])
		}
		pp.Net, portText = p.String(), rest[i+1:]
	}
	port, err := strconv.Atoi(portText)
	if err != nil || port < 0 || port > 65535 {
		return pp, fmt.Errorf("port %q must be an integer from 0 to 65535", portText)
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

func parseURLList(raw string) (any, error) {
	items := splitList(raw)
	scheme := ""
	for _, it := range items {
		u, err := url.Parse(it)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("%q must be a URL like http://host:2379 or https://host:2379", it)
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
