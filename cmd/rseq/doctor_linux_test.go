//go:build linux

package main

import (
	"encoding/json"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/gorseq/rseq"
	"golang.org/x/sys/unix"
)

func TestDoctorJSON(t *testing.T) {
	rc, out, errs := runDoctor(t, "--json", "--time", "10ms")
	if rc != 0 {
		t.Fatalf("doctor --json: exit %d, stderr %q", rc, errs)
	}
	// The documented field names exist, with the documented JSON types.
	var raw map[string]any
	if err := json.Unmarshal([]byte(out), &raw); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out)
	}
	for key, kind := range map[string]string{
		"usable": "bool", "reason": "string", "feature_size": "number", "alignment": "number",
		"mode": "string", "cpu": "number", "node": "number", "concurrency_id": "number",
		"fields": "array", "kernel": "string", "possible_cpus": "number", "glibc": "object",
		"membarrier_rseq": "bool", "ptrace_rseq_config": "bool", "timing": "object",
	} {
		v, ok := raw[key]
		if !ok {
			t.Errorf("JSON lacks %q", key)
			continue
		}
		got := "other"
		switch v.(type) {
		case bool:
			got = "bool"
		case string:
			got = "string"
		case float64:
			got = "number"
		case []any:
			got = "array"
		case map[string]any:
			got = "object"
		}
		if got != kind {
			t.Errorf("%q is a JSON %s, want %s", key, got, kind)
		}
	}

	var r doctorReport
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatal(err)
	}
	f := rseq.Features()
	if r.Usable != f.Usable || r.Reason != f.Reason || r.Mode != f.Mode.String() {
		t.Errorf("usable %v reason %q mode %q; Features says %v %q %q", r.Usable, r.Reason, r.Mode, f.Usable, f.Reason, f.Mode)
	}
	if r.FeatureSize != f.FeatureSize || r.Alignment != f.Alignment || r.FromAuxv != f.FromAuxv {
		t.Errorf("feature size %d alignment %d auxv %v; Features says %d %d %v",
			r.FeatureSize, r.Alignment, r.FromAuxv, f.FeatureSize, f.Alignment, f.FromAuxv)
	}
	if wantFields := f.Fields(); !slices.Equal(r.Fields, wantFields) || r.Fields == nil {
		t.Errorf("fields %q, Features says %q", r.Fields, wantFields)
	}
	if !slices.Equal(r.Notes, f.Notes) || r.Notes == nil {
		t.Errorf("notes %q, Features says %q", r.Notes, f.Notes)
	}
	if r.Signature != f.Signature || r.AreaSize != f.AreaSize {
		t.Errorf("signature %#x area size %d; Features says %#x %d", r.Signature, r.AreaSize, f.Signature, f.AreaSize)
	}
	if wantErrno := ""; f.Errno != 0 {
		wantErrno = unix.ErrnoName(f.Errno)
		if r.Errno != wantErrno {
			t.Errorf("errno %q, want %q", r.Errno, wantErrno)
		}
	} else if r.Errno != "" {
		t.Errorf("errno %q while Features has none", r.Errno)
	}

	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		t.Fatal(err)
	}
	if want := unix.ByteSliceToString(u.Release[:]); r.Kernel != want {
		t.Errorf("kernel %q, uname says %q", r.Kernel, want)
	}
	if r.PossibleCPUs != rseq.PossibleCPUs() || r.PossibleCPUs < 1 {
		t.Errorf("possible_cpus %d, rseq.PossibleCPUs() %d", r.PossibleCPUs, rseq.PossibleCPUs())
	}
	if r.CPU < 0 || r.CPU >= r.PossibleCPUs {
		t.Errorf("cpu %d outside [0, %d)", r.CPU, r.PossibleCPUs)
	}
	if r.ConcurrencyID < 0 || r.ConcurrencyID >= r.PossibleCPUs {
		t.Errorf("concurrency_id %d outside [0, %d)", r.ConcurrencyID, r.PossibleCPUs)
	}
	if nodes := possibleNodes(t); r.Node < 0 || r.Node >= nodes {
		t.Errorf("node %d outside [0, %d)", r.Node, nodes)
	}
	switch {
	case !f.Usable && r.AreaAddress != 0:
		t.Errorf("area_address %#x while rseq is not usable", r.AreaAddress)
	case f.Usable && f.Alignment > 0 && r.AreaAddress%uint64(f.Alignment) != 0:
		t.Errorf("area_address %#x not aligned to %d", r.AreaAddress, f.Alignment)
	}

	g := r.Glibc
	if g.Linked != f.Glibc || g.RseqOffset != f.GlibcOffset || g.RseqSize != f.GlibcSize || g.Registered != (f.Glibc && f.GlibcSize != 0) {
		t.Errorf("glibc %+v; Features says glibc %v offset %d size %d", g, f.Glibc, f.GlibcOffset, f.GlibcSize)
	}
	if want := glibcTunable(os.Getenv("GLIBC_TUNABLES"), "glibc.pthread.rseq"); g.Tunable != want {
		t.Errorf("glibc tunable %q, environment has %q", g.Tunable, want)
	}

	// membarrier: the same answer as asking the kernel here.
	mask, _, e := unix.RawSyscall(unix.SYS_MEMBARRIER, 0, 0, 0)
	if e != 0 {
		if r.MembarrierRseq || r.MembarrierCommands != -1 || r.MembarrierError == "" {
			t.Errorf("membarrier query fails here (%v) but doctor says rseq %v commands %d error %q",
				e, r.MembarrierRseq, r.MembarrierCommands, r.MembarrierError)
		}
	} else {
		if r.MembarrierCommands != int(mask) {
			t.Errorf("membarrier_commands %#x, the kernel answers %#x", r.MembarrierCommands, mask)
		}
		if want := mask&(1<<7) != 0 && mask&(1<<8) != 0; r.MembarrierRseq != want {
			t.Errorf("membarrier_rseq %v for commands %#x", r.MembarrierRseq, mask)
		}
	}

	if maj, min, ok := kernelVersion(r.Kernel); ok {
		if want := maj > 5 || maj == 5 && min >= 13; r.PtraceRseqConfig != want {
			t.Errorf("ptrace_rseq_config %v on kernel %d.%d (%s)", r.PtraceRseqConfig, maj, min, r.PtraceRseqConfigHow)
		}
	}
	if r.PtraceRseqConfigHow == "" {
		t.Error("ptrace_rseq_config_how is empty")
	}

	tm := r.Timing
	if tm.RseqCPUOps <= 0 || tm.GetcpuOps <= 0 || tm.RseqCPUNs <= 0 || tm.GetcpuSyscallNs <= 0 {
		t.Errorf("timing %+v: every figure should be positive", tm)
	}
}

// possibleNodes returns one more than the highest possible NUMA node.
func possibleNodes(t *testing.T) int {
	b, err := os.ReadFile("/sys/devices/system/node/possible")
	if err != nil {
		return 1 // no NUMA support: node 0 only
	}
	s := strings.TrimSpace(string(b))
	last := s[strings.LastIndexAny(s, ",-")+1:]
	n, err := strconv.Atoi(last)
	if err != nil {
		t.Fatalf("bad /sys/devices/system/node/possible %q", s)
	}
	return n + 1
}

func TestDoctorTable(t *testing.T) {
	rc, out, errs := runDoctor(t, "--time", "4ms")
	if rc != 0 {
		t.Fatalf("doctor: exit %d, stderr %q", rc, errs)
	}
	var u unix.Utsname
	unix.Uname(&u)
	f := rseq.Features()
	usable := "rseq usable         yes"
	if !f.Usable {
		usable = "rseq usable         no: " + f.Reason
	}
	for _, want := range []string{
		"kernel              " + unix.ByteSliceToString(u.Release[:]),
		usable,
		"registration mode   " + f.Mode.String() + ":",
		"possible CPUs       " + strconv.Itoa(rseq.PossibleCPUs()),
		"membarrier rseq     ",
		"ptrace rseq config  ",
		"timing              rseq.CPU() ",
	} {
		if !strings.Contains(out, "\n"+want) && !strings.HasPrefix(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	// Every row's value starts in the same column.
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	col := -1
	for _, l := range lines {
		i := strings.Index(l, "  ")
		for i >= 0 && i < len(l) && l[i] == ' ' {
			i++
		}
		if col == -1 {
			col = i
		}
		if i != col {
			t.Errorf("row %q: value at column %d, others at %d", l, i, col)
		}
	}
}
