package testenv

import (
	"strings"
	"testing"
)

func TestAbortLedgerCheck(t *testing.T) {
	t.Setenv("GORSEQ_QEMU", "1")
	before := map[string]uint64{"cmpStore": 10, "pop": 4, "add": 0}
	cases := []struct {
		name    string
		each    bool
		target  []string
		after   map[string]uint64
		wantErr string // "" for none
	}{
		{"nothing targeted", true, nil, before, ""},
		{"each aborted", true, []string{"cmpStore", "pop"}, map[string]uint64{"cmpStore": 11, "pop": 5}, ""},
		{"one never aborted", true, []string{"cmpStore", "pop"}, map[string]uint64{"cmpStore": 12, "pop": 4}, "sections pop never aborted"},
		{"one is enough without EachSection", false, []string{"cmpStore", "pop"}, map[string]uint64{"cmpStore": 12, "pop": 4}, ""},
		{"none aborted", false, []string{"cmpStore", "pop"}, before, "no section aborted"},
		// add cannot abort under TCG: targeting it asks nothing of it.
		{"straight-line section", true, []string{"add", "pop"}, map[string]uint64{"pop": 5}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			l := AbortLedger{EachSection: c.each}
			l.Target(c.target...)
			err := l.check(before, c.after)
			switch {
			case c.wantErr == "" && err != nil:
				t.Errorf("error %v, want none", err)
			case c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)):
				t.Errorf("error %v, want one containing %q", err, c.wantErr)
			}
		})
	}
}
