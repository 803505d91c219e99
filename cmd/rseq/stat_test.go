package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestStatFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--pid", "-3"},
		{"--duration", "-1s"},
		{"--interval", "1ms"},
		{"--top", "0"},
		{"extra"},
		{"--bogus"},
	} {
		var out, errb bytes.Buffer
		if code := run(append([]string{"stat"}, args...), &out, &errb); code != statUsage {
			t.Errorf("%v: exit %d, want %d (%s)", args, code, statUsage, errb.String())
		}
	}
	var out, errb bytes.Buffer
	if code := run([]string{"stat", "-h"}, &out, &errb); code != statOK || !strings.Contains(errb.String(), "rseq:rseq_ip_fixup") {
		t.Errorf("-h: exit %d\n%s", code, errb.String())
	}
}

// TestStatReport feeds records to the aggregation directly: totals, the
// PID filter, rates over an interval, the offset histogram, and the table
// and JSON built from them.
func TestStatReport(t *testing.T) {
	agg := newStatAgg(0, nil)
	agg.commands[10], agg.commands[20] = "ten", "twenty"
	ev := func(pid int, ip uint64) abortEvent {
		return abortEvent{PID: pid, TID: pid, IP: ip, Start: 0x1000, Len: 0x10, Abort: 0x2000}
	}
	for range 3 {
		agg.addAbort(ev(10, 0x1004))
	}
	agg.addAbort(ev(10, 0x1000))
	prev := agg.snapshot()
	for range 4 {
		agg.addAbort(ev(20, 0x100c))
	}
	agg.addAbort(abortEvent{PID: 20, IP: 0x3001, Start: 0x3000, Len: 8, Abort: 0x3100})
	agg.addUpdate(10)
	agg.addUpdate(20)
	agg.addUpdate(20)

	r := agg.report(4*time.Second, 2*time.Second, prev, 1, 0, true)
	if r.Aborts != 9 || r.AbortsPerSec != 2.5 || r.LostAborts != 1 || *r.Updates != 3 {
		t.Fatalf("totals %+v", r)
	}
	if len(r.Processes) != 2 || r.Processes[0].PID != 20 || r.Processes[0].Aborts != 5 || r.Processes[1].Aborts != 4 {
		t.Fatalf("processes %+v", r.Processes)
	}
	p10 := r.Processes[1]
	if p10.AbortsPerSec != 0 || *p10.Updates != 1 || p10.Command != "ten" {
		t.Errorf("pid 10 %+v: no aborts in the interval", p10)
	}
	s := p10.Sections[0]
	if s.Start != "0x1000" || s.Abort != "0x2000" || s.PostCommitOffset != 16 || len(s.Offsets) != 2 ||
		s.Offsets[0] != (statOffset{Offset: 0, Aborts: 1}) || s.Offsets[1] != (statOffset{Offset: 4, Aborts: 3}) {
		t.Errorf("pid 10 section %+v", s)
	}
	if p20 := r.Processes[0]; p20.Sections[0].Aborts != 4 || p20.Sections[0].AbortsPerSec != 2 || p20.Sections[1].Start != "0x3000" {
		t.Errorf("pid 20 sections %+v", p20.Sections)
	}

	// The filter keeps one process, listed even without aborts.
	only := newStatAgg(30, nil)
	only.commands[30] = "thirty"
	only.addAbort(ev(10, 0x1004))
	if r := only.report(time.Second, time.Second, statSnapshot{}, 0, 0, false); r.Aborts != 0 || len(r.Processes) != 1 || r.Processes[0].PID != 30 || r.Updates != nil {
		t.Errorf("filtered report %+v", r)
	}

	var b bytes.Buffer
	printStatReport(&b, r, statOptions{top: 1}, false)
	out := b.String()
	for _, want := range []string{
		"every process, 4.00s since attaching: 9 aborts, 2.5/s",
		"WARNING: the kernel dropped 1 abort",
		"PID 20 (twenty): 5 aborts, 2.5/s; 2 rseq_update",
		"1 more section(s) (--top)",
		"where 0x1000 aborted",
		"+0x4 3 ",
		"(no descriptor found in the mapped objects)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	b.Reset()
	printStatReport(&b, r, statOptions{json: true}, true)
	var back statReport
	if err := json.Unmarshal(b.Bytes(), &back); err != nil || back.Aborts != 9 || len(back.Processes) != 2 || back.Processes[0].Sections[0].Offsets[0].Offset != 12 {
		t.Errorf("JSON %v: %s", err, b.String())
	}
	if strings.Count(b.String(), "\n") != 1 {
		t.Errorf("a JSON report is not one line: %s", b.String())
	}
}
