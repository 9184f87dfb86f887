package config

import (
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

var updateDocs = flag.Bool("update", false, "rewrite the generated table in docs/parameters.md")

const (
	docsPath   = "../docs/parameters.md"
	beginTable = "<!-- BEGIN GENERATED: go test ./config -run TestParametersDoc -update -->"
	endTable   = "<!-- END GENERATED -->"
)

// TestParametersDoc keeps docs/parameters.md in agreement with the
// parameter table: the part between the markers is rendered from it.
func TestParametersDoc(t *testing.T) {
	data, err := os.ReadFile(docsPath)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(data)
	begin, end := strings.Index(doc, beginTable), strings.Index(doc, endTable)
	if begin < 0 || end < begin {
		t.Fatalf("%s lacks the markers %q and %q", docsPath, beginTable, endTable)
	}
	want := doc[:begin+len(beginTable)] + "\n" + renderParameterDoc() + doc[end:]
	if want == doc {
		return
	}
	if *updateDocs {
		if err := os.WriteFile(docsPath, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("%s disagrees with the parameter table; run go test ./config -run TestParametersDoc -update", docsPath)
}

func renderParameterDoc() string {
	var b strings.Builder
	count := map[Status]int{}
	felix := 0
	var used, refused []Param
	for _, p := range Params() {
		if p.From == FromFelix {
			felix++
			count[p.Status]++
		}
		if p.Status == Refused {
			refused = append(refused, p)
		} else {
			used = append(used, p)
		}
	}
	fmt.Fprintf(&b, "Felix's %d parameters: %d honoured, %d honoured differently, %d not yet honoured (planned), %d refused.\n",
		felix, count[Honoured], count[Differently], count[Planned], count[Refused])
	b.WriteString("Not counted: the parameters Felix removed recently, Ocelot's own, and the one from Calico Enterprise.\n\n")

	b.WriteString("### Parameters Ocelot uses or will use\n\n")
	b.WriteString("| Parameter | FelixConfiguration | Default | Status | Notes |\n|---|---|---|---|---|\n")
	for _, p := range used {
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s | %s |\n", p.Name, code(p.YAML), code(p.Default), p.Status, cell(notes(p)))
	}
	b.WriteString("\n### Parameters Ocelot refuses\n\n")
	b.WriteString("Setting one of these to anything but the value in the Default column is reported, and the value ignored.\n\n")
	b.WriteString("| Parameter | FelixConfiguration | Default | Reason |\n|---|---|---|---|\n")
	sort.Slice(refused, func(i, j int) bool { return strings.ToLower(refused[i].Name) < strings.ToLower(refused[j].Name) })
	for _, p := range refused {
		def := code(p.Default)
		if len(p.Inert) > 0 {
			def = code(strings.Join(p.Inert, ", "))
			if p.Inert[0] == anyValue {
				def = "any"
			}
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", p.Name, code(p.YAML), def, cell(notes(p)))
	}
	return b.String()
}

// notes is the Notes cell: the reason, then what an operator must know.
func notes(p Param) string {
	var parts []string
	if p.Reason != "" {
		parts = append(parts, capitalised(p.Reason))
	}
	if p.Doc != "" {
		parts = append(parts, capitalised(p.Doc))
	}
	if len(p.Inert) > 0 && p.Status == Planned {
		parts = append(parts, "Not reported when set to "+strings.Join(p.Inert, " or "))
	}
	var flags []string
	if p.DieOnFail {
		flags = append(flags, "fatal when invalid")
	}
	if p.NonZero {
		flags = append(flags, "none is fatal")
	}
	if p.Local {
		flags = append(flags, "local only")
	}
	if p.Live {
		flags = append(flags, "changes live")
	}
	switch p.From {
	case FromEnterprise:
		flags = append(flags, "a Calico Enterprise parameter")
	case FromOcelot:
		flags = append(flags, "Ocelot's own")
	case FromFelixRemoved:
		flags = append(flags, "no longer in Felix")
	}
	if len(flags) > 0 {
		parts = append(parts, "*"+strings.Join(flags, ", ")+"*")
	}
	return strings.Join(parts, ". ")
}

func capitalised(s string) string {
	r, n := utf8.DecodeRuneInString(s)
	return string(unicode.ToUpper(r)) + s[n:]
}

func code(s string) string {
	if s == "" {
		return ""
	}
	return "`" + cell(s) + "`"
}

func cell(s string) string { return strings.ReplaceAll(s, "|", `\|`) }
