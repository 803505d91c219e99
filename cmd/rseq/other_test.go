//go:build !linux

package main

import (
	"encoding/json"
	"runtime"
	"strings"
	"testing"
)

// Outside Linux, doctor reports what it can and the Linux-only subcommands
// say they are not supported.

func TestDoctorNotLinux(t *testing.T) {
	rc, out, errs := runDoctor(t, "--json", "--time", "4ms")
	if rc != 0 {
		t.Fatalf("doctor --json: exit %d, stderr %q", rc, errs)
	}
	var r doctorReport
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if r.Usable || !strings.Contains(r.Kernel, runtime.GOOS) || r.MembarrierRseq || r.PtraceRseqConfig {
		t.Errorf("report %+v", r)
	}
	if r.Timing.RseqCPUOps <= 0 || r.Timing.GetcpuOps != 0 {
		t.Errorf("timing %+v: rseq.CPU() only", r.Timing)
	}
	rc, out, _ = runDoctor(t, "--time", "4ms")
	if rc != 0 || !strings.Contains(out, "rseq usable         no: ") || !strings.Contains(out, "no getcpu system call here") {
		t.Errorf("exit %d\n%s", rc, out)
	}
}

func TestLinuxOnlyCommands(t *testing.T) {
	var out, errb strings.Builder
	if rc := run([]string{"ps", "1"}, &out, &errb); rc != 1 || !strings.Contains(errb.String(), "not supported on "+runtime.GOOS) {
		t.Errorf("ps: exit %d, stderr %q", rc, errb.String())
	}
	errb.Reset()
	if rc := run([]string{"torture", "--", "true"}, &out, &errb); rc != tortureUsage || !strings.Contains(errb.String(), "not supported on "+runtime.GOOS) {
		t.Errorf("torture: exit %d, stderr %q", rc, errb.String())
	}
}

func TestScanPidNotLinux(t *testing.T) {
	status, _, errs := runScanCmd("--pid", "1")
	if status != scanUnusable || !strings.Contains(errs, "not supported on "+runtime.GOOS) {
		t.Errorf("scan --pid: exit %d, stderr %q", status, errs)
	}
}
