package layers

import (
	"go/parser"
	"go/token"
	"io/fs"
	"maps"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
)

const module = "ocelot"

// allowed maps a package (or a tree, with a trailing "/...") to the Ocelot
// packages it may import. The most specific entry wins. Test files are not
// checked: a test may reach anywhere to build its fixtures.
var allowed = map[string][]string{
	"contract":            {},
	"selector":            {},
	"selector/labelindex": {"selector"},
	"internal/...":        {"internal/..."},
	"config":              {"internal/..."},
	"datastore/resource":  {"selector", "internal/..."},
	"datastore/...":       {"datastore/...", "config", "internal/..."},
	"calc/...":            {"calc/...", "contract", "selector/...", "datastore/resource", "internal/..."},
	"dataplane/...":       {"dataplane/...", "contract", "config", "explain", "internal/..."},
	// explain evaluates the messages calc sent with its own reading of
	// Calico's semantics: it shares nothing with what renders them.
	"explain": {"contract"},
	// The neutral rule model and what renders desired state into it know
	// no backend: iptables and nftables render the same chains.
	"dataplane/ruleset": {"contract"},
	"dataplane/rules":   {"contract", "dataplane/ruleset"},
	// cmd wires the layers together; the dataplane's drivers stay behind
	// the dataplane package, which is built from config by its own
	// constructor.
	"cmd/...":      {"cmd/...", "calc", "config", "contract", "dataplane", "datastore", "datastore/resource", "explain", "internal/..."},
	"fv-tests/...": {"..."},
}

func TestImportsFollowTheLayers(t *testing.T) {
	imports := moduleImports(t)
	if len(imports) < 10 {
		t.Fatalf("found only %d packages; is the module root right?", len(imports))
	}
	pkgs := make([]string, 0, len(imports))
	for p := range imports {
		pkgs = append(pkgs, p)
	}
	sort.Strings(pkgs)
	for _, pkg := range pkgs {
		rule, ok := ruleFor(pkg)
		if !ok {
			t.Errorf("package %s has no entry in the layer table", pkg)
			continue
		}
		for imp := range imports[pkg] {
			if !permits(rule, imp) {
				t.Errorf("%s imports %s, which its layer does not allow", pkg, imp)
			}
		}
	}
}

// The table must be able to fail: an upward import is refused.
func TestTableRefusesUpwardImports(t *testing.T) {
	for _, c := range []struct{ from, to string }{
		{"datastore/resource", "calc"}, {"calc", "datastore"}, {"dataplane", "calc"},
		{"dataplane/rules", "datastore/resource"}, {"contract", "selector"}, {"cmd/ocelot", "dataplane/routing"},
		{"dataplane/rules", "dataplane/iptables"}, {"dataplane/ruleset", "dataplane/iptables"},
		{"cmd/ocelot", "dataplane/rules"}, {"explain", "dataplane/rules"}, {"explain", "dataplane"}, {"cmd/ocelot", "dataplane/iptables"}, {"cmd/ocelot", "dataplane/ipsets"},
	} {
		rule, _ := ruleFor(c.from)
		if permits(rule, c.to) {
			t.Errorf("the table lets %s import %s", c.from, c.to)
		}
	}
}

func ruleFor(pkg string) ([]string, bool) {
	if r, ok := allowed[pkg]; ok {
		return r, true
	}
	best, found := "", false
	for k := range allowed {
		tree, ok := strings.CutSuffix(k, "/...")
		if ok && (pkg == tree || strings.HasPrefix(pkg, tree+"/")) && len(k) > len(best) {
			best, found = k, true
		}
	}
	return allowed[best], found
}

func permits(rule []string, imp string) bool {
	for _, r := range rule {
		if r == "..." || r == imp {
			return true
		}
		if tree, ok := strings.CutSuffix(r, "/..."); ok && (imp == tree || strings.HasPrefix(imp, tree+"/")) {
			return true
		}
	}
	return false
}

// moduleImports parses every non-test Go file of the module and returns,
// per package directory, the module packages it imports.
func moduleImports(t *testing.T) map[string]map[string]bool {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]bool{}
	fset := token.NewFileSet()
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); path != root && (strings.HasPrefix(name, ".") || name == "bin" || name == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, filepath.Dir(path))
		pkg := filepath.ToSlash(rel)
		if out[pkg] == nil {
			out[pkg] = map[string]bool{}
		}
		for _, is := range f.Imports {
			p, _ := strconv.Unquote(is.Path.Value)
			if rest, ok := strings.CutPrefix(p, module+"/"); ok {
				out[pkg][rest] = true
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Every package says in a doc.go what it owns and what it must not touch;
// its package comment is there and nowhere else, so that it has one place
// to be kept true.
func TestEveryPackageHasADocGo(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	docs := map[string]bool{}      // package directory -> doc.go holds its comment
	other := map[string][]string{} // package directory -> other files with a package comment
	fset := token.NewFileSet()
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); path != root && (strings.HasPrefix(name, ".") || name == "bin" || name == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.PackageClauseOnly|parser.ParseComments)
		if err != nil {
			return err
		}
		dir, _ := filepath.Rel(root, filepath.Dir(path))
		if _, seen := docs[dir]; !seen {
			docs[dir] = false
		}
		switch {
		case filepath.Base(path) == "doc.go":
			docs[dir] = f.Doc != nil
		case f.Doc != nil:
			other[dir] = append(other[dir], filepath.Base(path))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(docs) < 10 {
		t.Fatalf("found only %d packages; is the module root right?", len(docs))
	}
	for _, dir := range slices.Sorted(maps.Keys(docs)) {
		if !docs[dir] {
			t.Errorf("package %s has no doc.go with its package comment", dir)
		}
		if len(other[dir]) > 0 {
			t.Errorf("package %s has its package comment outside doc.go too: %v", dir, other[dir])
		}
	}
}
