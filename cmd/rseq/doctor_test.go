package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// runDoctor runs the doctor command and returns its exit status and output.
func runDoctor(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	rc := doctorMain(args, &out, &errb)
	return rc, out.String(), errb.String()
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
