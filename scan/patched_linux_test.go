package scan

import (
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/gorseq/rseq/internal/ptrace"
	"golang.org/x/sys/unix"
)

// TestScanProcessBreakpoints: a process whose sections hold breakpoints
// (as under a debugger or rseq torture) scans like its file, with a
// code-differs note naming the patched byte: the int3 written over the
// first instruction of each section is neither decoded nor judged.
func TestScanProcessBreakpoints(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skip("the live test binary is built for linux/amd64")
	}
	bin, err := filepath.Abs(td("good_x86_64"))
	if err != nil {
		t.Fatal(err)
	}
	file, err := ScanFile(bin, Options{Disassemble: true})
	if err != nil {
		t.Fatal(err)
	}
	cmd, stdin := startWaiting(t, bin)
	defer func() {
		stdin.Close()
		cmd.Wait()
	}()
	pid := cmd.Process.Pid
	objs, _ := ScanProcess(pid, Options{})
	var bias uint64
	for _, o := range objs {
		if o.Path == bin {
			bias = o.Bias
		}
	}
	if bias == 0 {
		t.Fatalf("no load bias found for %s", bin)
	}

	// Stop the process and write an int3 over each section's first
	// byte, from the tracer's thread.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := unix.PtraceAttach(pid); err != nil {
		t.Skipf("cannot trace the test program: %v", ptrace.Explain(pid, err))
	}
	var ws unix.WaitStatus
	if _, err := unix.Wait4(pid, &ws, 0, nil); err != nil || !ws.Stopped() {
		t.Fatalf("waiting for the attach: %v, status %#x", err, ws)
	}
	defer unix.PtraceDetach(pid)
	mem, err := ptrace.OpenMem(pid, true)
	if err != nil {
		t.Fatal(err)
	}
	defer mem.Close()
	for _, s := range file.Sections {
		var orig [1]byte
		if err := mem.Read(s.Start+bias, orig[:]); err != nil {
			t.Fatal(err)
		}
		if err := mem.Write(s.Start+bias, []byte{0xcc}); err != nil {
			t.Fatalf("writing the breakpoint: %v", err)
		}
		defer mem.Write(s.Start+bias, orig[:])
	}

	objs, errs := ScanProcess(pid, Options{Disassemble: true})
	for _, e := range errs {
		t.Errorf("ScanProcess: %v", e)
	}
	var live *Object
	for _, o := range objs {
		if o.Path == bin {
			live = o
		}
	}
	if live == nil || len(live.Sections) != len(file.Sections) {
		t.Fatalf("live scan: %+v", live)
	}
	notes := 0
	for _, f := range live.Findings {
		if f.Rule == "code-differs" && f.Severity == Info && f.Section >= 0 &&
			strings.Contains(f.Message, "differs from the file's in 1 byte(s)") && strings.Contains(f.Message, "memory 0xcc") {
			notes++
			continue
		}
		t.Errorf("finding %v %s %d: %s", f.Severity, f.Rule, f.Section, f.Message)
	}
	if notes != len(file.Sections) {
		t.Errorf("%d code-differs notes, want one per section (%d)", notes, len(file.Sections))
	}
	for i, s := range live.Sections {
		f := file.Sections[i]
		if len(s.Instructions) != len(f.Instructions) {
			t.Fatalf("section %d: %d instructions live, %d in the file", i, len(s.Instructions), len(f.Instructions))
		}
		for k, in := range s.Instructions {
			if fi := f.Instructions[k]; in.Addr != fi.Addr+live.Bias || in.Len != fi.Len || strings.HasPrefix(in.Text, "int3") {
				t.Errorf("section %d instruction %d: live %q at %#x, file %q at %#x", i, k, in.Text, in.Addr, fi.Text, fi.Addr)
			}
		}
	}
}
