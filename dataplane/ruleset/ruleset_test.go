package ruleset

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"reflect"
	"slices"
	"testing"
)

// Examples has one value of every kind declared here, so renderers'
// tests that render them all cover the whole model.
func TestExamplesCoverEveryKind(t *testing.T) {
	declared := map[string][]string{} // marker method -> types
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "ruleset.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range f.Decls {
		fn, ok := d.(*ast.FuncDecl)
		if !ok || fn.Recv == nil || (fn.Name.Name != "criterion" && fn.Name.Name != "action") {
			continue
		}
		recv := fmt.Sprint(fn.Recv.List[0].Type)
		declared[fn.Name.Name] = append(declared[fn.Name.Name], recv)
	}
	crit, acts := Examples()
	have := map[string][]string{}
	for _, c := range crit {
		have["criterion"] = append(have["criterion"], reflect.TypeOf(c).Name())
	}
	for _, a := range acts {
		have["action"] = append(have["action"], reflect.TypeOf(a).Name())
	}
	for kind, types := range declared {
		slices.Sort(types)
		got := slices.Clone(have[kind])
		slices.Sort(got)
		if !slices.Equal(types, got) {
			t.Errorf("%s kinds declared %v, Examples has %v", kind, types, got)
		}
	}
	if len(declared["criterion"]) < 10 || len(declared["action"]) < 8 {
		t.Fatalf("found only %v: is the parse right?", declared)
	}
}

func TestVerdict(t *testing.T) {
	for name, want := range map[string]Action{"ACCEPT": Accept{}, "DROP": Drop{}, "REJECT": Reject{}, "RETURN": Return{}} {
		if got, err := Verdict(name); err != nil || got != want {
			t.Errorf("Verdict(%q) = %v, %v", name, got, err)
		}
	}
	if _, err := Verdict("accept\n-A INPUT -j ACCEPT"); err == nil {
		t.Error("a verdict that is not one was accepted")
	}
}

func TestChainIPSetIDs(t *testing.T) {
	c := &Chain{Rules: []Rule{{Match: Match{}.SourceIPSet("s:a").NotDestIPPortSet("n:b")}, {Match: Match{}.MarkSet(1)}}}
	if got := c.IPSetIDs(); !slices.Equal(got, []string{"s:a", "n:b"}) {
		t.Errorf("IPSetIDs = %v", got)
	}
}
