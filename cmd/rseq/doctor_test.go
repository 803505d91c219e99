package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/gorseq/rseq"
	"golang.org/x/sys/unix"
)

// runDoctor runs the doctor command and returns its exit status and output.
func runDoctor(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	rc := doctorMain(args, &out, &errb)
	return rc, out.String(), errb.String()
}

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

func TestDoctorNoTiming(t *testing.T) {
	rc, out, _ := runDoctor(t, "-json", "-time", "0")
	if rc != 0 {
		t.Fatalf("exit %d", rc)
	}
	var r doctorReport
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatal(err)
	}
	if r.Timing != (timingReport{}) {
		t.Errorf("timing %+v with --time 0", r.Timing)
	}
}

func TestDoctorTunableFromEnvironment(t *testing.T) {
	t.Setenv("GLIBC_TUNABLES", "glibc.malloc.check=3:glibc.pthread.rseq=0")
	rc, out, _ := runDoctor(t, "--json", "--time", "0")
	if rc != 0 {
		t.Fatalf("exit %d", rc)
	}
	var r doctorReport
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatal(err)
	}
	if r.Glibc.Tunable != "0" {
		t.Errorf("glibc tunable %q, want \"0\"", r.Glibc.Tunable)
	}
	rc, out, _ = runDoctor(t, "--time", "0")
	if rc != 0 || !strings.Contains(out, "glibc.pthread.rseq  0 (from GLIBC_TUNABLES)") {
		t.Errorf("exit %d, table does not show the tunable:\n%s", rc, out)
	}
}

func TestDoctorBadArguments(t *testing.T) {
	for _, tc := range []struct {
		args   []string
		rc     int
		stderr string
	}{
		{[]string{"extra"}, 2, `unexpected argument "extra"`},
		{[]string{"--time", "-1s"}, 2, "must not be negative"},
		{[]string{"--time", "soon"}, 2, "invalid value"},
		{[]string{"--bogus"}, 2, "flag provided but not defined: -bogus"},
		{[]string{"-h"}, 0, "usage: rseq doctor"},
	} {
		rc, out, errs := runDoctor(t, tc.args...)
		if rc != tc.rc || !strings.Contains(errs, tc.stderr) || out != "" {
			t.Errorf("doctor %q: exit %d stdout %q stderr %q; want exit %d and stderr containing %q",
				tc.args, rc, out, errs, tc.rc, tc.stderr)
		}
	}
}

func TestGlibcTunable(t *testing.T) {
	for env, want := range map[string]string{
		"":                     "",
		"glibc.pthread.rseq=0": "0",
		"glibc.malloc.check=3:glibc.pthread.rseq=1": "1",
		"glibc.pthread.rseq=0:glibc.pthread.rseq=1": "1",
		"glibc.pthread.rseqx=0":                     "",
		"glibc.pthread.rseq":                        "",
		"xglibc.pthread.rseq=0":                     "",
	} {
		if got := glibcTunable(env, "glibc.pthread.rseq"); got != want {
			t.Errorf("glibcTunable(%q) = %q, want %q", env, got, want)
		}
	}
}

func TestKernelVersion(t *testing.T) {
	for _, tc := range []struct {
		release    string
		major, min int
		ok         bool
	}{
		{"6.18.44-fc-v769", 6, 18, true},
		{"5.13", 5, 13, true},
		{"6.1.0-28-amd64", 6, 1, true},
		{"5.4rc1", 5, 4, true},
		{"4.19-rc2", 4, 19, true},
		{"linux", 0, 0, false},
		{"6", 0, 0, false},
		{"x.1", 0, 0, false},
		{"", 0, 0, false},
	} {
		maj, min, ok := kernelVersion(tc.release)
		if maj != tc.major || min != tc.min || ok != tc.ok {
			t.Errorf("kernelVersion(%q) = %d, %d, %v; want %d, %d, %v", tc.release, maj, min, ok, tc.major, tc.min, tc.ok)
		}
	}
}

// TestDoctorTableCases prints made-up reports for the situations this
// machine does not show by itself.
func TestDoctorTableCases(t *testing.T) {
	base := doctorReport{Kernel: "6.1.0-28-amd64", Machine: "x86_64", GoVersion: "go1.26.8", FeatureSize: 20, Alignment: 32, Fields: []string{}, PossibleCPUs: 4}
	for _, tc := range []struct {
		name string
		edit func(*doctorReport)
		want []string
	}{
		{"seccomp", func(r *doctorReport) {
			r.Mode, r.Reason, r.Errno = "none", "rseq is refused by a filter", "EPERM"
		}, []string{
			"rseq usable         no: rseq is refused by a filter (EPERM)\n",
			"registration mode   none: ids come from the getcpu system call\n",
			"feature size        20 bytes, alignment 32 (original ABI: the auxiliary vector has no rseq entries (kernel < 6.3))\n",
			"fields              none (rseq not in use)\n",
			"glibc               not in this process (it runs without cgo)\n",
		}},
		{"glibc", func(r *doctorReport) {
			r.Usable, r.Mode, r.Cgo, r.FromAuxv, r.FeatureSize = true, "glibc", true, true, 28
			r.Glibc = glibcReport{Linked: true, RseqOffset: 2336, RseqSize: 20, Registered: true}
			r.Notes = []string{"first note", "second note"}
		}, []string{
			"rseq usable         yes\n",
			"registration mode   glibc: the package uses the area glibc registered on each thread\n",
			"feature size        28 bytes, alignment 32 (from the auxiliary vector)\n",
			"glibc               registered: __rseq_offset 2336, __rseq_size 20\n",
			"notes               first note\n                    second note\n",
		}},
		{"tunable", func(r *doctorReport) {
			r.Mode, r.Cgo, r.Reason = "none", true, "glibc did not register rseq"
			r.Glibc = glibcReport{Linked: true, RseqOffset: 2336, Tunable: "0"}
		}, []string{
			"glibc               did not register rseq: __rseq_offset 2336, __rseq_size 0\n",
			"glibc.pthread.rseq  0 (from GLIBC_TUNABLES)\n",
		}},
		{"musl", func(r *doctorReport) { r.Mode, r.Cgo = "none", true }, []string{
			"glibc               rseq symbols not found (glibc older than 2.35, or another C library)\n",
		}},
		{"membarrier", func(r *doctorReport) {
			r.MembarrierError, r.PtraceRseqConfigHow = "membarrier(MEMBARRIER_CMD_QUERY): ENOSYS", "from the kernel version"
		}, []string{
			"membarrier rseq     no: membarrier(MEMBARRIER_CMD_QUERY): ENOSYS\n",
			"ptrace rseq config  no (from the kernel version)\n",
		}},
	} {
		r := base
		tc.edit(&r)
		var b bytes.Buffer
		printDoctor(&b, &r)
		for _, w := range tc.want {
			if !strings.Contains(b.String(), w) {
				t.Errorf("%s: table lacks %q:\n%s", tc.name, w, b.String())
			}
		}
		if strings.Contains(b.String(), "timing") {
			t.Errorf("%s: a timing row without a timing:\n%s", tc.name, b.String())
		}
	}
}

func TestDecidePtraceRseqConfig(t *testing.T) {
	refused := errors.New("operation not permitted")
	for _, tc := range []struct {
		kernel string
		ok     bool
		err    error
		want   bool
		how    string
	}{
		{"6.18.44", true, nil, true, "asked a traced child"},
		{"6.18.44", false, nil, false, "does not know the request (EIO)"},
		{"5.13.0", false, refused, true, "from the kernel version: 5.13 >= 5.13 (tracing a child failed: operation not permitted)"},
		{"5.12.19", false, refused, false, "from the kernel version: 5.12 < 5.13"},
		{"4.19.0-rc1", false, refused, false, "4.19 < 5.13"},
		{"6.1.0-28-amd64", false, refused, true, "6.1 >= 5.13"},
		{"weird", false, refused, false, `unknown: tracing a child failed (operation not permitted) and the kernel release "weird" does not parse`},
	} {
		got, how := decidePtraceRseqConfig(tc.kernel, tc.ok, tc.err)
		if got != tc.want || !strings.Contains(how, tc.how) {
			t.Errorf("decide(%q, %v, %v) = %v, %q; want %v and %q", tc.kernel, tc.ok, tc.err, got, how, tc.want, tc.how)
		}
	}
}
