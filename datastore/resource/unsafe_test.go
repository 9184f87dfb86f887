package resource

import (
	"encoding/json"
	"unsafe"
)

func stringData(s string) *byte { return unsafe.StringData(s) }

func jsonUnmarshalForTest(data string, v any) error { return json.Unmarshal([]byte(data), v) }
