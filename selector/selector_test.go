package selector

import (
	"encoding/json"
	"os"
	"reflect"
	"strings"
	"testing"
)

type conformance struct {
	Match []struct {
		Selector   string              `json:"selector"`
		Matches    []map[string]string `json:"matches"`
		NonMatches []map[string]string `json:"non_matches"`
	} `json:"match"`
	Invalid   []string `json:"invalid"`
	Canonical []struct {
		Input     string `json:"input"`
		Canonical string `json:"canonical"`
		UniqueID  string `json:"unique_id"`
	} `json:"canonical"`
}

func loadConformance(t testing.TB) conformance {
	t.Helper()
	data, err := os.ReadFile("testdata/selectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var c conformance
	if err := json.Unmarshal(data, &c); err != nil {
		t.Fatal(err)
	}
	if len(c.Match) == 0 || len(c.Invalid) == 0 || len(c.Canonical) == 0 {
		t.Fatal("conformance data is empty")
	}
	return c
}

func TestConformanceMatch(t *testing.T) {
	for _, c := range loadConformance(t).Match {
		sel, err := Parse(c.Selector)
		if err != nil {
			t.Errorf("Parse(%q): %v", c.Selector, err)
			continue
		}
		for _, l := range c.Matches {
			if !sel.Evaluate(l) {
				t.Errorf("%q should match %v", c.Selector, l)
			}
		}
		for _, l := range c.NonMatches {
			if sel.Evaluate(l) {
				t.Errorf("%q should not match %v", c.Selector, l)
			}
		}
	}
}

func TestConformanceInvalid(t *testing.T) {
	for _, s := range loadConformance(t).Invalid {
		if sel, err := Parse(s); err == nil {
			t.Errorf("Parse(%q) accepted it as %q", s, sel)
		}
	}
}

func TestConformanceCanonical(t *testing.T) {
	for _, c := range loadConformance(t).Canonical {
		sel, err := Parse(c.Input)
		if err != nil {
			t.Errorf("Parse(%q): %v", c.Input, err)
			continue
		}
		if sel.String() != c.Canonical {
			t.Errorf("Parse(%q).String() = %q, want %q", c.Input, sel.String(), c.Canonical)
		}
		if c.UniqueID != "" && sel.UniqueID() != c.UniqueID {
			t.Errorf("Parse(%q).UniqueID() = %q, want %q", c.Input, sel.UniqueID(), c.UniqueID)
		}
	}
}

func TestLexicalRules(t *testing.T) {
	valid := map[string]string{
		"a notin {'x'}":    `a not in {"x"}`,
		"a not\tin {'x',}": `a not in {"x"}`,
		"a in {}":          `a in {}`,
		"has( sg.projectcalico.org/openstack-85cc3048-abc3-43cc-89b3-377341426ac5 )": "has(sg.projectcalico.org/openstack-85cc3048-abc3-43cc-89b3-377341426ac5)",
		"a==\"b\"&&c!='d'||!e startswith 'f'":                                        `((a == "b" && c != "d") || !e starts with "f")`,
		"a == 'x' && (b == 'y' && c == 'z')":                                         `(a == "x" && (b == "y" && c == "z"))`,
		"\tall(\t)":                                                                  "all()",
		"!(!has(a))":                                                                 "has(a)",
		"has == 'x'":                                                                 `has == "x"`,
		"in in {'in'}":                                                               `in in {"in"}`,
		"a == 'multi word \" value'":                                                 `a == 'multi word " value'`,
		"a.b/c-d_e == ''":                                                            `a.b/c-d_e == ""`,
		strings.Repeat("k", 512) + " == 'v'":                                         strings.Repeat("k", 512) + ` == "v"`,
	}
	for in, want := range valid {
		sel, err := Parse(in)
		if err != nil {
			t.Errorf("Parse(%q): %v", in, err)
			continue
		}
		if sel.String() != want {
			t.Errorf("Parse(%q) = %q, want %q", in, sel.String(), want)
		}
	}
	invalid := []string{
		"has (a)", "all ()", "global ()", "has()", "has(a", "a = 'b'", "a & b", "a | b",
		"a ==\n'b'", "a in 'b'", "a in {'b' 'c'}", "a in {,}", "a contains", "'a' == a",
		strings.Repeat("k", 513) + " == 'v'", "a == 'b' c == 'd'", "a inx {}", "a startswithx 'y'",
		"global() && ", "a == \"b", "\x00",
	}
	for _, in := range invalid {
		if sel, err := Parse(in); err == nil {
			t.Errorf("Parse(%q) accepted as %q", in, sel)
		}
	}
}

func TestParseErrorPosition(t *testing.T) {
	cases := []struct{ in, want string }{
		{"a == 'b' && %", `invalid selector "a == 'b' && %" at position 12: unexpected character '%'`},
		{"a b", `invalid selector "a b" at position 2: expected an operator (==, !=, in, not in, contains, starts with, ends with) after label "a", found label "b"`},
		{"(a == 'x'", `invalid selector "(a == 'x'" at position 9: expected ')', found end of selector`},
		{"a == b", `invalid selector "a == b" at position 5: expected a quoted string after '==', found label "b"`},
		{"has(x) &", `invalid selector "has(x) &" at position 7: expected '&&' but found a lone '&'`},
		{"a == 'x", `invalid selector "a == 'x" at position 5: unterminated string literal (no closing ')`},
		{"a == 'x' )", `invalid selector "a == 'x' )" at position 9: expected '&&', '||' or the end of the selector, found ')'`},
	}
	for _, c := range cases {
		_, err := Parse(c.in)
		if err == nil || err.Error() != c.want {
			t.Errorf("Parse(%q) error\n got %v\nwant %s", c.in, err, c.want)
		}
	}
}

func TestEvaluateSemantics(t *testing.T) {
	l := map[string]string{"a": "", "sg.projectcalico.org/openstack-x": "web", "name": "prefix-middle-suffix"}
	cases := map[string]bool{
		"has(a)":                         true,
		"a == ''":                        true,
		"a != ''":                        false,
		"missing != 'x'":                 true,
		"missing not in {'x'}":           true,
		"missing in {}":                  false,
		"a in {}":                        false,
		"a not in {}":                    true,
		"name contains 'middle'":         true,
		"name starts with 'prefix'":      true,
		"name ends with 'suffix'":        true,
		"missing contains ''":            false,
		"name == 'PREFIX-middle-suffix'": false,
		"global()":                       true,
		"has(sg.projectcalico.org/openstack-x) && !has(b)": true,
		"has(b) || has(c) || name == 'x'":                  false,
		"has(b) || has(c) || has(a)":                       true,
	}
	for s, want := range cases {
		if got := MustParse(s).Evaluate(l); got != want {
			t.Errorf("%q on %v = %v, want %v", s, l, got, want)
		}
	}
}

func TestRequiredLabels(t *testing.T) {
	cases := map[string][][]string{
		"all()":                          nil,
		"has(a)":                         {{"a"}},
		"a == 'x'":                       {{"a"}},
		"a != 'x'":                       nil,
		"!has(a)":                        nil,
		"a not in {'x'}":                 nil,
		"a in {'x','y'}":                 {{"a"}},
		"has(a) && b == 'x' && !has(c)":  {{"a"}, {"b"}},
		"has(b) || has(a)":               {{"a", "b"}},
		"has(a) || !has(b)":              nil,
		"(has(a) && has(b)) || c == 'x'": {{"a", "c"}},
		"(has(a) || has(b)) && has(c)":   {{"a", "b"}, {"c"}},
		"name contains 'x'":              {{"name"}},
	}
	for s, want := range cases {
		if got := MustParse(s).RequiredLabels(); !reflect.DeepEqual(got, want) {
			t.Errorf("RequiredLabels(%q) = %v, want %v", s, got, want)
		}
	}
}

const (
	sgWeb     = "sg.projectcalico.org/openstack-a7734e61-b545-452d-a3cd-0189cbd9747a"
	sgClients = "sg.projectcalico.org/openstack-85cc3048-abc3-43cc-89b3-377341426ac5"
	nsOne     = "openstack-region-RegionOne"
)

func TestEntityRuleSelectors(t *testing.T) {
	cases := []struct {
		name               string
		sel, nsSel, notSel string
		ns                 string
		wantPos, wantNeg   string // "" means nil
	}{
		{"cross-region rule of the guide", "has(" + sgClients + ")", "all()", "", nsOne,
			"(has(projectcalico.org/namespace) && has(" + sgClients + "))", ""},
		{"same-region rule (namespaceSelector absent)", "has(" + sgClients + ")", "", "", nsOne,
			`(projectcalico.org/namespace == "openstack-region-RegionOne" && has(` + sgClients + "))", ""},
		{"no selector fields", "", "", "", nsOne, "", ""},
		{"namespaceSelector all() alone", "", "all()", "", nsOne, "has(projectcalico.org/namespace)", ""},
		{"global() namespaceSelector", "has(x)", "global()", "", nsOne, "(!has(projectcalico.org/namespace) && has(x))", ""},
		{"namespace labels get the pcns. prefix", "", "projectcalico.org/name == 'openstack-region-b'", "", nsOne,
			`pcns.projectcalico.org/name == "openstack-region-b"`, ""},
		{"notSelector only", "", "", "has(x)", nsOne, `projectcalico.org/namespace == "openstack-region-RegionOne"`, "has(x)"},
		{"global policy selector is free", "has(x)", "", "!has(y)", "", "has(x)", "!has(y)"},
		{"global policy, no selector", "", "", "", "", "", ""},
		{"compound namespaceSelector", "has(x)", "a == 'b' || all()", "", "",
			`((pcns.a == "b" || has(projectcalico.org/namespace)) && has(x))`, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			pos, neg, err := ers(c.sel, c.nsSel, c.notSel, c.ns)
			if err != nil {
				t.Fatal(err)
			}
			if got := str(pos); got != c.wantPos {
				t.Errorf("positive = %q, want %q", got, c.wantPos)
			}
			if got := str(neg); got != c.wantNeg {
				t.Errorf("negative = %q, want %q", got, c.wantNeg)
			}
		})
	}
	// The set Felix programmed for the guide's rule (docs/calico.md: cali40s:bnhJRqUSRy3lLnoKpL4N8es).
	pos, _, _ := ers("has("+sgClients+")", "all()", "", "openstack-region-regionone")
	if !strings.HasPrefix(pos.UniqueID(), "s:bnhJRqUSRy3lLnoKpL4N8es") {
		t.Errorf("ID %s does not match Felix's set name", pos.UniqueID())
	}
	// The cross-region selector matches RegionTwo members; the scoped one does not.
	remote := map[string]string{sgClients: "clients", NamespaceLabel: "openstack-region-RegionTwo"}
	cross, _, _ := ers("has("+sgClients+")", "all()", "", nsOne)
	local, _, _ := ers("has("+sgClients+")", "", "", nsOne)
	if !cross.Evaluate(remote) || local.Evaluate(remote) {
		t.Errorf("cross-region %v, same-region %v on a RegionTwo member", cross.Evaluate(remote), local.Evaluate(remote))
	}
}

// ers parses the three selector fields of a rule ("" is absent) and
// composes them.
func ers(sel, nsSel, notSel, ns string) (pos, neg *Selector, err error) {
	var p [3]*Selector
	for i, s := range []string{sel, nsSel, notSel} {
		if s != "" {
			if p[i], err = Parse(s); err != nil {
				return nil, nil, err
			}
		}
	}
	pos, neg = EntityRuleSelectors(p[0], p[1], p[2], ns)
	return pos, neg, nil
}

func optional(s string) *Selector {
	if s == "" {
		return nil
	}
	return MustParse(s)
}

func TestPolicySelector(t *testing.T) {
	cases := []struct{ sel, nsSel, ns, want string }{
		{"has(" + sgWeb + ")", "", nsOne, "(has(" + sgWeb + `) && projectcalico.org/namespace == "openstack-region-RegionOne")`},
		{"", "", nsOne, `projectcalico.org/namespace == "openstack-region-RegionOne"`},
		{"", "", "", "all()"},
		{"has(x)", "", "", "has(x)"},
		{"has(x)", "all()", "", "(has(x) && has(projectcalico.org/namespace))"},
		{"", "tier == 'gold'", "", `pcns.tier == "gold"`},
	}
	for _, c := range cases {
		if got := PolicySelector(optional(c.sel), optional(c.nsSel), c.ns); got.String() != c.want {
			t.Errorf("PolicySelector(%q, %q, %q) = %q, want %q", c.sel, c.nsSel, c.ns, got, c.want)
		}
	}
	web := map[string]string{sgWeb: "web", NamespaceLabel: nsOne}
	webTwo := map[string]string{sgWeb: "web", NamespaceLabel: "openstack-region-RegionTwo"}
	s := PolicySelector(optional("has("+sgWeb+")"), nil, nsOne)
	if !s.Evaluate(web) || s.Evaluate(webTwo) {
		t.Error("a namespaced policy must select only its own namespace's endpoints")
	}
}

func TestAndNot(t *testing.T) {
	a, b := MustParse("has(a)"), MustParse("!has(b)")
	if got := And(a, Not(b)).String(); got != "(has(a) && has(b))" {
		t.Errorf("And(a, Not(!b)) = %q", got)
	}
	if got := And(a, b).String(); got != "(has(a) && !has(b))" {
		t.Errorf("And = %q", got)
	}
}

func str(s *Selector) string {
	if s == nil {
		return ""
	}
	return s.String()
}

func FuzzRoundTrip(f *testing.F) {
	for _, c := range loadConformance(f).Match {
		f.Add(c.Selector)
	}
	for _, s := range loadConformance(f).Invalid {
		f.Add(s)
	}
	f.Add("!(!has(a)) && (b in {'x', \"y\"} || c notin {})")
	f.Fuzz(func(t *testing.T, in string) {
		sel, err := Parse(in)
		if err != nil {
			return
		}
		again, err := Parse(sel.String())
		if err != nil {
			t.Fatalf("canonical form %q of %q does not parse: %v", sel.String(), in, err)
		}
		if again.UniqueID() != sel.UniqueID() || again.String() != sel.String() {
			t.Fatalf("round trip of %q: %q (%s) became %q (%s)", in, sel, sel.UniqueID(), again, again.UniqueID())
		}
		sel.RequiredLabels()
		sel.Evaluate(map[string]string{"a": "x"})
	})
}

// Input size and nesting are bounded before the parser recurses: the
// 1.4 MB selector of nested parentheses that once overflowed the stack of
// every agent is an error, as is anything past the documented limits; a
// selector at the limits parses, and so does its canonical form.
func TestLimits(t *testing.T) {
	nested := func(n int, inner string) string {
		return strings.Repeat("(", n) + inner + strings.Repeat(")", n)
	}
	// Operators nested n deep: each level is "has(a) && !(...)" or "||".
	deepOps := func(n int) string {
		s := "has(x)"
		for i := 0; i < n; i++ {
			op := " && "
			if i%2 == 1 {
				op = " || "
			}
			s = "has(l" + strings.Repeat("i", i%3) + ")" + op + "(" + s + ")"
		}
		return s
	}
	rejected := map[string]string{
		"1.4 MB of parentheses":           nested(700_000, "all()"),
		"parentheses one past the limit":  nested(MaxDepth+1, "has(a)"),
		"operators one past the limit":    deepOps(MaxDepth + 1),
		"negations one past the limit":    strings.Repeat("!(has(a) && ", MaxDepth/2+1) + "has(b)" + strings.Repeat(")", MaxDepth/2+1),
		"one byte over the length limit":  "a in {'" + strings.Repeat("x", MaxLength-len("a in {''}")+1) + "'}",
		"a long flat selector over limit": strings.Repeat("has(a) || ", MaxLength/10+1) + "has(b)",
	}
	for name, in := range rejected {
		_, err := Parse(in)
		if err == nil {
			t.Errorf("%s: accepted", name)
			continue
		}
		if len(err.Error()) > 400 {
			t.Errorf("%s: error message is %d bytes long; it must not repeat the input", name, len(err.Error()))
		}
	}
	accepted := map[string]string{
		"parentheses at the limit": nested(MaxDepth, "has(a)"),
		"operators at the limit":   deepOps(MaxDepth),
		"length at the limit":      "a in {'" + strings.Repeat("x", MaxLength-len("a in {''}")) + "'}",
	}
	for name, in := range accepted {
		sel, err := Parse(in)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		again, err := Parse(sel.String())
		if err != nil || again.UniqueID() != sel.UniqueID() {
			t.Errorf("%s: canonical form does not parse back: %v", name, err)
		}
	}
}
