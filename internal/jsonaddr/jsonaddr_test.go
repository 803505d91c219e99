package jsonaddr

import (
	"encoding/json"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	for _, v := range []uint64{0, 1, 0x4eb953, 1<<64 - 1} {
		b, err := json.Marshal(Addr(v))
		if err != nil {
			t.Fatal(err)
		}
		var back Addr
		if err := json.Unmarshal(b, &back); err != nil || uint64(back) != v {
			t.Errorf("%#x: %s came back as %#x, %v", v, b, uint64(back), err)
		}
	}
	if b, _ := json.Marshal(Addr(0x401ba5)); string(b) != `"0x401ba5"` {
		t.Errorf("marshalled as %s", b)
	}
	var a Addr
	if err := json.Unmarshal([]byte("4201381"), &a); err != nil || a != 4201381 {
		t.Errorf("a number: %v, %d", err, a)
	}
	for _, bad := range []string{`"401ba5"`, `"0xzz"`, `true`, `-1`} {
		if err := json.Unmarshal([]byte(bad), &a); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
}
