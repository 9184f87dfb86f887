package config

import (
	"strings"
	"testing"
)

func TestRejectsReload(t *testing.T) {
	cases := []struct {
		name string
		p    Problem
		want bool
	}{
		{"fatal in the file", Problem{Severity: Fatal, Class: Invalid, Source: SourceFile}, true},
		{"malformed file", Problem{Severity: Fatal, Class: Invalid, Source: SourceFile, Where: "felix.cfg:3"}, true},
		{"fatal from the datastore", Problem{Severity: Fatal, Class: Invalid, Source: SourceDatastoreGlobal}, true},
		{"fatal cross-check", Problem{Severity: Fatal, Class: Invalid, Source: SourceDefault}, true},
		{"invalid value in the file", Problem{Severity: Warning, Class: Invalid, Source: SourceFile}, true},
		{"invalid value in the environment", Problem{Severity: Warning, Class: Invalid, Source: SourceEnv}, false},
		{"invalid libcalico-go variable", Problem{Severity: Warning, Class: Invalid, Source: SourceEtcdEnv}, false},
		{"invalid value in FelixConfiguration default", Problem{Severity: Warning, Class: Invalid, Source: SourceDatastoreGlobal}, false},
		{"invalid value in FelixConfiguration node.<host>", Problem{Severity: Warning, Class: Invalid, Source: SourceDatastoreHost}, false},
		{"local-only from the datastore", Problem{Severity: Warning, Class: LocalOnly, Source: SourceDatastoreHost}, false},
		{"unknown name in the file", Problem{Severity: Warning, Class: Unknown, Source: SourceFile}, false},
		{"refused parameter in the file", Problem{Severity: Warning, Class: NotHonoured, Source: SourceFile}, false},
	}
	for _, c := range cases {
		if got := c.p.RejectsReload(); got != c.want {
			t.Errorf("%s: RejectsReload = %v, want %v", c.name, got, c.want)
		}
		if got := (Problems{{Class: Unknown}, c.p}).RejectsReload(); got != c.want {
			t.Errorf("%s in a list: RejectsReload = %v, want %v", c.name, got, c.want)
		}
	}
}

// The judgement on real sources: a datastore warning (which once made
// every later edit of the file rejected) does not reject a good edit; a
// bad edit still is rejected.
func TestReloadJudgedOnTheFile(t *testing.T) {
	global, dsProblems := FromDatastore(SourceDatastoreGlobal, "felixconfigurations/default",
		map[string]any{"healthPort": "huge", "logPrefix": "a\"b"}, map[string]string{AnnotationPrefix + "EtcdAddr": "x:1"})
	if len(dsProblems) != 1 {
		t.Fatalf("datastore problems %v", dsProblems)
	}
	env := []string{"FELIX_PROMETHEUSMETRICSPORT=huge"} // accepted with a warning at start-up
	good := writeFile(t, "[global]\nLogSeverityScreen = debug\nFrobnicate = 1\nBPFEnabled = true\n")
	_, problems := ReadLocal(good, env).Resolve(global)
	if problems.RejectsReload() {
		t.Errorf("good edit rejected: %v", problems)
	}
	if len(problems) != 5 {
		t.Errorf("the other problems are still reported: %v", problems)
	}
	bad := writeFile(t, "[global]\nLogSeverityScreen = loud\n")
	if _, problems := ReadLocal(bad, env).Resolve(global); !problems.RejectsReload() {
		t.Errorf("bad edit accepted: %v", problems)
	}
	// A file that overrides a bad datastore value of a die-on-fail
	// parameter is judged on its own value.
	dsFatal, _ := FromDatastore(SourceDatastoreGlobal, "felixconfigurations/default", map[string]any{"interfacePrefix": "tap,bad prefix"}, nil)
	if _, problems := ReadLocal(writeFile(t, "InterfacePrefix = tap\n"), nil).Resolve(dsFatal); problems.RejectsReload() {
		t.Errorf("file overriding a bad datastore value rejected: %v", problems)
	}
	_, problems = ReadLocal(writeFile(t, "LogSeverityScreen = debug\n"), nil).Resolve(dsFatal)
	if !problems.RejectsReload() || !strings.Contains(problems[0].String(), "felixconfigurations/default spec.interfacePrefix") {
		t.Errorf("a fatal datastore value in force must reject: %v", problems)
	}
}
