package cidr

import "testing"

func TestParse(t *testing.T) {
	for in, want := range map[string]string{
		"198.18.0.7/24": "198.18.0.0/24", "198.18.0.7": "198.18.0.7/32",
		"2001:db8::1": "2001:db8::1/128", "2001:db8::1/64": "2001:db8::/64",
	} {
		if p, err := Parse(in); err != nil || p.String() != want {
			t.Errorf("Parse(%q) = %v, %v; want %s", in, p, err, want)
		}
	}
	for _, in := range []string{"", "198.18.0.0/33", "host", "198.18.0.0/"} {
		if _, err := Parse(in); err == nil {
			t.Errorf("Parse(%q) accepted", in)
		}
	}
}
