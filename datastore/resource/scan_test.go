package resource

import (
	"reflect"
	"strings"
	"testing"
)

// The fast path must agree with encoding/json whenever it does not give
// up: same kind, labels (and their validity) and spec.
func checkFastAgrees(t *testing.T, data string) (fastOK bool) {
	kind, labels, labelsOK, spec, ok := fastRemoteEndpoint([]byte(data))
	if !ok {
		return false
	}
	var env struct{ Kind string }
	if err := jsonUnmarshalForTest(data, &env); err != nil {
		t.Fatalf("fast path accepted what encoding/json rejects (%v): %q", err, data)
	}
	if kind != env.Kind {
		t.Errorf("kind %q, encoding/json %q: %q", kind, env.Kind, data)
	}
	meta, w, err := unmarshal[wireRemoteEndpointSpec](Kind(env.Kind), []byte(data))
	if err != nil {
		t.Fatalf("fast path accepted what encoding/json rejects (%v): %q", err, data)
	}
	want, wantOK := internLabels(meta.Labels, reservedLabel)
	if !reflect.DeepEqual(labels, want) || labelsOK != wantOK {
		t.Errorf("labels %v (valid %v), encoding/json %v (valid %v): %q", labels, labelsOK, want, wantOK, data)
	}
	if !reflect.DeepEqual(spec, *w) {
		t.Errorf("spec %+v, encoding/json %+v: %q", spec, *w, data)
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
		// Keys that encoding/json reads as something else than their bytes.
		{`{"sp\u0065c":{"ipNetworks":["198.18.0.1/32"]}}`, false},
		{`{"metadata":{"labels":{"role\u0041":"x"}}}`, false},
		{`{"metadata":{"lab\u0065ls":{"a":"b"}}}`, false},
		{`{"spec":{"ipNetw\u006frks":["198.18.0.1/32"]}}`, false},
		{`{"\u212aind":"x"}`, false},
		{"{\"\u212aind\":\"x\"}", false},                  // KELVIN SIGN, which encoding/json folds onto 'k'
		{"{\"spec\":{\"ipNetworks\":[\"\xff\"]}}", false}, // invalid UTF-8 in a kept string
		{"{\"x\xff\":1,\"spec\":{}}", false},
		// Case and duplicates.
		{`{"spec":{"ipNetworks":["198.18.0.1/32"]},"SPEC":{"ipNetworks":["198.18.0.2/32"]}}`, false},
		{`{"spec":{"ipNetworks":["198.18.0.1/32"],"IPNETWORKS":["198.18.0.2/32"]}}`, false},
		{`{"metadata":{"labels":{"a":"1","a":"2"}}}`, true}, // a map: the last wins in both
		{`{"metadata":{"labels":{"a":"x y"}}}`, true},       // decided, and judged invalid in both
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
	f.Add(`{"sp\u0065c":{"ipNetworks":["198.18.0.1/32"]},"metadata":{"labels":{"role\u0041":"x","a":"1","a":"2"}}}`)
	f.Add(`{"kind":"WorkloadEndpoint","KIND":"x","spec":{"profiles":["p"],"Profiles":null},"metadata":{"Labels":{"k":"v"}}}`)
	f.Add("{\"\u212aind\":\"x\",\"ſpec\":{},\"metadata\":{\"labels\":{\"\xff\":\"\xfe\"}}}")
	f.Add(`{"metadata":{"labels":{"sg.projectcalico.org/openstack-x":"","bad key":"v","k":"bad value"}},"spec":{"ipNetworks":["::ffff:1.2.3.4"]}}`)
	f.Fuzz(func(t *testing.T, data string) { checkFastAgrees(t, data) })
}
