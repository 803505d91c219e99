package inspect

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestJSONAddresses: addresses are "0x..." strings, ids and sizes numbers,
// and the form reads back.
func TestJSONAddresses(t *testing.T) {
	th := Thread{TID: 7, Registered: true, Area: 0x7f0012345000, Size: 32, RseqCS: 0x4c1000, IP: 0x4b2004, CPUID: 1,
		Section: &Section{Descriptor: 0x4c1000, Start: 0x4b2000, PostCommit: 12, Abort: 0x4b2010}}
	b, err := json.Marshal(th)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"area":"0x7f0012345000"`, `"rseq_cs":"0x4c1000"`, `"ip":"0x4b2004"`, `"start":"0x4b2000"`, `"abort":"0x4b2010"`, `"descriptor":"0x4c1000"`, `"post_commit_offset":12`, `"size":32`, `"tid":7`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("%s lacks %s", b, want)
		}
	}
	if strings.Count(string(b), `"area"`) != 1 {
		t.Errorf("area written twice: %s", b)
	}
	var back Thread
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back.Area != th.Area || back.IP != th.IP || back.RseqCS != th.RseqCS || back.TID != 7 || back.Section == nil || *back.Section != *th.Section {
		t.Errorf("read back %+v (section %+v), want %+v", back, back.Section, th)
	}
}
