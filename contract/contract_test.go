package contract

import (
	"reflect"
	"slices"
	"strings"
	"testing"
)

// Every field of Rule that holds set IDs is listed by IPSetIDs: a new
// field that is forgotten there fails this test.
func TestIPSetIDsCoversEveryField(t *testing.T) {
	var r Rule
	v := reflect.ValueOf(&r).Elem()
	var want []string
	for i := 0; i < v.NumField(); i++ {
		f := v.Type().Field(i)
		if !strings.HasSuffix(f.Name, "IPSetIDs") {
			continue
		}
		v.Field(i).Set(reflect.ValueOf([]string{f.Name}))
		want = append(want, f.Name)
	}
	if len(want) != 8 {
		t.Fatalf("found %d set-ID fields, want 8: %v", len(want), want)
	}
	got := r.IPSetIDs()
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("IPSetIDs() = %v, want %v", got, want)
	}
}
