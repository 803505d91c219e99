package torture

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestSectionReportJSON: start and abort are "0x..." strings, offsets and
// counts numbers, and the form reads back.
func TestSectionReportJSON(t *testing.T) {
	r := SectionReport{Object: "/bin/x", Start: 0x401b72, Abort: 0x401b90, Points: 5, Covered: 5, Missed: []uint64{3}}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"start":"0x401b72"`, `"abort":"0x401b90"`, `"points":5`, `"missed":[3]`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("%s lacks %s", b, want)
		}
	}
	var back SectionReport
	if err := json.Unmarshal(b, &back); err != nil || back.Start != r.Start || back.Abort != r.Abort || back.Points != 5 {
		t.Errorf("read back %+v, %v", back, err)
	}
}
