package resource

import (
	"reflect"
	"strings"
	"testing"
)

// The fast path must agree with encoding/json whenever it does not give up.
func checkFastAgrees(t *testing.T, data string) (fastOK bool) {
	kind, labels, spec, ok := fastRemoteEndpoint([]byte(data))
	if !ok {
		return false
	}
	var env struct{ Kind string }
	if err := jsonUnmarshalForTest(data, &env); err != nil {
		t.Fatalf("fast path accepted what encoding/json rejects (%v): %s", err, data)
	}
	if kind != env.Kind {
		t.Errorf("kind %q, encoding/json %q: %s", kind, env.Kind, data)
	}
	meta, w, err := unmarshal[wireRemoteEndpointSpec](Kind(env.Kind), []byte(data))
	if err != nil {
		t.Fatalf("fast path accepted what encoding/json rejects (%v): %s", err, data)
	}
	if want := internLabels(meta.Labels, reservedLabel); !reflect.DeepEqual(labels, want) {
		t.Errorf("labels %v, encoding/json %v: %s", labels, want, data)
	}
	if !reflect.DeepEqual(spec, *w) {
		t.Errorf("spec %+v, encoding/json %+v: %s", spec, *w, data)
	}
	return true
}

func TestFastRemoteEndpoint(t *testing.T) {
	cases := []struct {
		data   string
		fastOK bool // whether the fast path should decide it
	}{
		{neutronWEP, true},
		{`{"kind":"WorkloadEndpoint","metadata":{"labels":{"a":"b"}},"spec":{"ipNetworks":["198.18.0.1/32"],"profiles":["p"]}}`, true},
		{`{"KIND":"x","Metadata":{"LABELS":{"a":"b"}},"SPEC":{"IPNetworks":["198.18.0.1/32"]}}`, true},
		{`{"metadata":null,"spec":{"ipNetworks":null,"serviceAccountName":null}}`, true},
		{` {"spec":{"x":[1,-2.5e+3,true,false,null,{"y":"\u00e9\n"}]}} `, true},
		{`{"metadata":{"labels":{"a":"b"}},"metadata":{"labels":{"c":"d"}}}`, false}, // duplicate: encoding/json merges
		{`{"metadata":{"labels":{"a":"\u0062"}}}`, false},                            // escape in a kept string
		{`{"metadata":{"labels":{"a":1}}}`, false},                                   // type mismatch
		{`{"metadata":{"labels":{"a":null}}}`, false},
		{`{"spec":{"ports":[{"name":"http","port":80}]}}`, false},
		{`{"spec":{"ipNetworks":["198.18.0.1/32",null]}}`, false},
		{`{"ſpec":{}}`, false}, // non-ASCII key: Unicode folding
		{`{"spec":{}} x`, false},
		{`{"spec":{"x":01}}`, false},
		{`{"spec":{"x":"a` + "\x01" + `"}}`, false},
		{`{"spec":{"x":"\q"}}`, false},
		{`{"spec":{"x":[1,]}}`, false},
		{`{"spec":`, false},
		{strings.Repeat("[", 200) + strings.Repeat("]", 200), false},
	}
	for _, c := range cases {
		if got := checkFastAgrees(t, c.data); got != c.fastOK {
			t.Errorf("fast path decided=%v, want %v: %s", got, c.fastOK, c.data)
		}
	}
}

func FuzzFastRemoteEndpoint(f *testing.F) {
	f.Add(neutronWEP)
	f.Add(`{"kind":"WorkloadEndpoint","metadata":{"labels":{"a":"b"},"annotations":{}},"spec":{"ipNetworks":["198.18.0.1/32"],"profiles":["p"],"ports":[]}}`)
	f.Add(`{"Kind":null,"metadata":{"labels":{"pcns.x":"y"}},"spec":{"serviceAccountName":"sa","x":[1e5,{"a":"\ud83d\ude00"}]}}`)
	f.Fuzz(func(t *testing.T, data string) { checkFastAgrees(t, data) })
}
