//go:build linux

package rseq_test

// Child-process tests: they build the programs under internal/testprog and
// run them in situations a test cannot create inside its own process (a
// seccomp filter in force before the runtime starts, cgo with glibc's areas,
// glibc's tunable, a PIE binary whose main thread the dynamic loader
// registered), then check the programs' reports and, with ptrace, the
// kernel's view of every thread's registration.

import (
	"bufio"
	"context"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/gorseq/rseq"
	"github.com/gorseq/rseq/internal/prebuilt"
	"github.com/gorseq/rseq/internal/testprog/idcheck"
	"golang.org/x/sys/unix"
)

// x86 and arm64 signatures (glibc's and the package's).
var wantSignature = map[string]uint32{"amd64": 0x53053053, "arm64": 0xd428bc00}

// childThreads is how many locked threads besides the main one the test
// programs check (the programs' -threads flag).
const childThreads = 3

// goTool returns the go command of the toolchain running the test: go test
// puts its GOROOT/bin first in the test's PATH.
func goTool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("no go command to build the test programs: %v", err)
	}
	return p
}

// requireVerifiedRuntime skips a test of the children's rseq use when the
// toolchain that builds them is a Go release the package does not verify:
// they fall back, and TestRuntimeAssumptions says why.
func requireVerifiedRuntime(t *testing.T) {
	t.Helper()
	if f := rseq.Features(); !f.RuntimeVerified {
		t.Skipf("Go %s is not a verified release: the test programs would fall back (TestRuntimeAssumptions says what to verify)", f.GoVersion)
	}
}

// needGcc skips the test when cgo programs cannot be built.
func needGcc(t *testing.T) {
	t.Helper()
	cc := "gcc"
	if out, err := exec.Command(goTool(t), "env", "CC").Output(); err == nil && strings.TrimSpace(string(out)) != "" {
		cc = strings.Fields(string(out))[0]
	}
	if _, err := exec.LookPath(cc); err != nil {
		t.Skipf("no C compiler (%s) to build the cgo test program: %v", cc, err)
	}
}

// build returns the program internal/testprog/<name>: the one
// .ci/prebuild.sh made (GORSEQ_PREBUILT: rseq/<name>, with -pie or -cgo1
// for the variants), or one compiled into dir. cgo is "0" or "1"; flags go
// to go build (only -buildmode=pie has a prebuilt variant).
func build(t *testing.T, dir, name, cgo string, flags ...string) string {
	t.Helper()
	variant := name
	switch {
	case len(flags) == 1 && flags[0] == "-buildmode=pie":
		variant += "-pie"
	case len(flags) > 0:
		variant = "" // no prebuilt variant
	case cgo == "1" && name != "cgoids":
		variant += "-cgo1"
	}
	if variant != "" {
		if p, ok, err := prebuilt.Lookup("rseq", variant); err != nil {
			t.Fatal(err)
		} else if ok {
			return p
		}
	}
	if cgo == "1" {
		needGcc(t)
	}
	out := filepath.Join(dir, name)
	if len(flags) > 0 {
		out += "-" + strings.Trim(strings.Join(flags, ""), "-=")
	}
	if cgo == "1" {
		out += "-cgo"
	}
	args := append([]string{"build", "-o", out}, flags...)
	args = append(args, "./internal/testprog/"+name)
	cmd := exec.Command(goTool(t), args...)
	cmd.Env = append(os.Environ(), "CGO_ENABLED="+cgo)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, b)
	}
	return out
}

// argv is how to run prog: itself, or, for a dynamically linked prebuilt
// program on a machine without a C library (a qemu guest), through the
// dynamic loader in GORSEQ_PREBUILT/lib.
func argv(t *testing.T, prog string) []string {
	t.Helper()
	if prebuilt.Dir() == "" {
		return []string{prog}
	}
	f, err := elf.Open(prog)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			loader, libdir := prebuilt.Loader(t)
			return []string{loader, "--library-path", libdir, prog}
		}
	}
	return []string{prog}
}

// rseqConfig is struct ptrace_rseq_configuration.
type rseqConfig struct {
	Pointer   uint64
	Size      uint32
	Signature uint32
	Flags     uint32
	_         uint32
}

// child is a running test program started with -hold.
type child struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stderr *strings.Builder
	report idcheck.Report
}

// startHeld starts argv[0] with -hold and the extra environment, and reads
// its report; the program keeps every checked thread alive until finish.
func startHeld(t *testing.T, env []string, argv ...string) *child {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	prog := filepath.Base(argv[len(argv)-1])
	argv = append(argv, "-hold", "-threads", strconv.Itoa(childThreads))
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	c := &child{cmd: cmd, stderr: new(strings.Builder)}
	cmd.Stderr = c.stderr
	var err error
	if c.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.stdin.Close()
		cmd.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadBytes('\n')
	if err != nil {
		c.stdin.Close()
		werr := cmd.Wait()
		if ee := (*exec.ExitError)(nil); errors.As(werr, &ee) && ee.ExitCode() == 3 {
			t.Skipf("the kernel cannot install seccomp filters: %s", c.stderr)
		}
		t.Fatalf("%s printed no report (%v, exit: %v); stderr:\n%s", argv, err, werr, c.stderr)
	}
	if err := json.Unmarshal(line, &c.report); err != nil {
		t.Fatalf("%s: bad report %q: %v", argv, line, err)
	}
	t.Logf("%s reported: %s", prog, line)
	return c
}

// finish lets the program exit and checks that it found every id correct.
func (c *child) finish(t *testing.T) {
	t.Helper()
	c.stdin.Close()
	err := c.cmd.Wait()
	if !c.report.OK() {
		t.Errorf("the program found wrong ids: errors %q, threads:", c.report.Errors)
		for _, th := range c.report.Threads {
			if len(th.Errors) > 0 {
				t.Errorf("  thread %d (main %v): %q", th.TID, th.Main, th.Errors)
			}
		}
	}
	if err != nil {
		t.Errorf("%s: %v; stderr:\n%s", c.cmd.Path, err, c.stderr)
	}
}

// checkShape checks what every report must hold: the main thread and
// childThreads other distinct threads, each pinned to every allowed CPU.
func checkShape(t *testing.T, r *idcheck.Report) {
	t.Helper()
	if got := len(r.Threads); got != 1+childThreads {
		t.Fatalf("%d threads checked, want %d", got, 1+childThreads)
	}
	if !r.Threads[0].Main {
		t.Errorf("first thread checked (%d) is not the main thread", r.Threads[0].TID)
	}
	if len(r.AllowedCPUs) == 0 || r.PossibleCPUs < len(r.AllowedCPUs) {
		t.Errorf("allowed CPUs %v, possible CPUs %d", r.AllowedCPUs, r.PossibleCPUs)
	}
	for _, th := range r.Threads {
		if fmt.Sprint(th.CPUs) != fmt.Sprint(r.AllowedCPUs) {
			t.Errorf("thread %d was pinned to CPUs %v, want every allowed CPU %v", th.TID, th.CPUs, r.AllowedCPUs)
		}
	}
}

// rseqConfigs stops every thread of pid in turn with ptrace and returns the
// kernel's record of its rseq registration.
func rseqConfigs(t *testing.T, pid int) map[int]rseqConfig {
	t.Helper()
	// Every ptrace request must come from the tracing thread.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		t.Fatal(err)
	}
	configs := map[int]rseqConfig{}
	for _, e := range ents {
		tid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if err := unix.PtraceSeize(tid); err != nil {
			if err == unix.ESRCH {
				continue // a thread of the runtime that has exited
			}
			if err == unix.EPERM {
				t.Skipf("ptrace refused (Yama ptrace_scope or a container policy): %v", err)
			}
			t.Fatalf("PTRACE_SEIZE %d: %v", tid, err)
		}
		var cfg rseqConfig
		err = func() error {
			if err := unix.PtraceInterrupt(tid); err != nil {
				return fmt.Errorf("PTRACE_INTERRUPT: %w", err)
			}
			var ws unix.WaitStatus
			for {
				_, err := unix.Wait4(tid, &ws, unix.WALL, nil)
				if err == unix.EINTR {
					continue
				}
				if err != nil {
					return fmt.Errorf("wait4: %w", err)
				}
				break
			}
			if !ws.Stopped() {
				return fmt.Errorf("thread did not stop: wait status %#x", uint32(ws))
			}
			_, _, e := unix.Syscall6(unix.SYS_PTRACE, unix.PTRACE_GET_RSEQ_CONFIGURATION, uintptr(tid),
				unsafe.Sizeof(cfg), uintptr(unsafe.Pointer(&cfg)), 0, 0)
			if e == unix.EIO {
				t.Skipf("the kernel has no PTRACE_GET_RSEQ_CONFIGURATION (Linux 5.13+)")
			}
			if e != 0 {
				return fmt.Errorf("PTRACE_GET_RSEQ_CONFIGURATION: %w", e)
			}
			return nil
		}()
		if derr := unix.PtraceDetach(tid); derr != nil && err == nil {
			err = fmt.Errorf("PTRACE_DETACH: %w", derr)
		}
		if err != nil {
			t.Fatalf("thread %d: %v", tid, err)
		}
		configs[tid] = cfg
	}
	return configs
}

// checkFiltered checks that the kernel applies a seccomp filter to pid.
func checkFiltered(t *testing.T, pid int) {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "\nSeccomp:\t2\n") {
		t.Errorf("process %d runs without a seccomp filter:\n%s", pid, b)
	}
}

// checkRegistrations compares the kernel's registration of every reported
// thread with the area the package says the thread uses.
func checkRegistrations(t *testing.T, c *child, configs map[int]rseqConfig, wantSize uint32) {
	t.Helper()
	sig := wantSignature[runtime.GOARCH]
	for _, th := range c.report.Threads {
		cfg, ok := configs[th.TID]
		if !ok {
			t.Errorf("thread %d not found in /proc/%d/task", th.TID, c.cmd.Process.Pid)
			continue
		}
		if th.Area == 0 {
			continue
		}
		if cfg.Pointer != th.Area || cfg.Size != wantSize || cfg.Signature != sig {
			t.Errorf("thread %d: kernel has area %#x length %d signature %#x registered; want the package's area %#x length %d signature %#x",
				th.TID, cfg.Pointer, cfg.Size, cfg.Signature, th.Area, wantSize, sig)
		}
	}
}

// TestSeccompFallback runs the program with the rseq system call refused by a
// seccomp filter installed before the runtime starts: the package must fall
// back, name the errno, and still give correct ids on every thread and CPU.
func TestSeccompFallback(t *testing.T) {
	requireVerifiedRuntime(t)
	dir := t.TempDir()
	launcher := build(t, dir, "seccompexec", "0")
	ids := build(t, dir, "ids", "0")
	for _, tc := range []struct {
		errno  syscall.Errno
		name   string
		reason string // what Reason must contain besides the name
	}{
		{unix.ENOSYS, "ENOSYS", "no rseq"},
		{unix.EPERM, "EPERM", "refused"},
		{unix.EACCES, "EACCES", ""}, // an errno a filter may choose at will
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := startHeld(t, nil, append([]string{launcher, "-errno", tc.name}, argv(t, ids)...)...)
			checkFiltered(t, c.cmd.Process.Pid)
			f := c.report.Features
			if f.Usable || f.Mode != "none" {
				t.Errorf("usable %v mode %q, want false and none", f.Usable, f.Mode)
			}
			if f.Errno != int(tc.errno) || f.ErrnoName != tc.name {
				t.Errorf("errno %d (%s), want %d (%s)", f.Errno, f.ErrnoName, tc.errno, tc.name)
			}
			if !strings.Contains(f.Reason, tc.name) || !strings.Contains(f.Reason, tc.reason) {
				t.Errorf("reason %q does not name %s (%q)", f.Reason, tc.name, tc.reason)
			}
			if len(f.Fields) != 0 {
				t.Errorf("fields %q reported while rseq is not usable", f.Fields)
			}
			checkShape(t, &c.report)
			for _, th := range c.report.Threads {
				if th.Area != 0 {
					t.Errorf("thread %d reports an area %#x while rseq is refused", th.TID, th.Area)
				}
			}
			// The kernel agrees: no thread is registered.
			for tid, cfg := range rseqConfigs(t, c.cmd.Process.Pid) {
				if cfg.Pointer != 0 {
					t.Errorf("thread %d has an rseq area %#x registered under the filter", tid, cfg.Pointer)
				}
			}
			c.finish(t)
		})
	}
}

// TestOwnModeCgoEnabledWithoutCgo runs a program built with CGO_ENABLED=1
// that links no cgo package: the runtime runs without cgo, so the package
// registers areas of its own on every thread, the main one included.
func TestOwnModeCgoEnabledWithoutCgo(t *testing.T) {
	requireVerifiedRuntime(t)
	ids := build(t, t.TempDir(), "ids", "1")
	c := startHeld(t, nil, argv(t, ids)...)
	f := c.report.Features
	if !f.Usable || f.Mode != "own" || f.Cgo {
		t.Fatalf("usable %v mode %q cgo %v (reason %q), want true, own, false", f.Usable, f.Mode, f.Cgo, f.Reason)
	}
	if f.Signature != wantSignature[runtime.GOARCH] {
		t.Errorf("signature %#x, want %#x", f.Signature, wantSignature[runtime.GOARCH])
	}
	checkShape(t, &c.report)
	for _, th := range c.report.Threads {
		if th.Area == 0 || f.Alignment > 0 && th.Area%uint64(f.Alignment) != 0 {
			t.Errorf("thread %d (main %v): area %#x, want a registered area aligned to %d", th.TID, th.Main, th.Area, f.Alignment)
		}
	}
	checkRegistrations(t, c, rseqConfigs(t, c.cmd.Process.Pid), uint32(f.AreaSize))
	c.finish(t)
}

// TestPIEMainThread runs a PIE binary without cgo: the dynamic loader
// registered glibc's area on the main thread before Go started, so the
// package cannot register there and must use the fallback on that thread
// only, with real rseq on every other thread.
func TestPIEMainThread(t *testing.T) {
	requireVerifiedRuntime(t)
	ids := build(t, t.TempDir(), "ids", "0", "-buildmode=pie")
	ef, err := elf.Open(ids)
	if err != nil {
		t.Fatal(err)
	}
	interp := false
	for _, p := range ef.Progs {
		interp = interp || p.Type == elf.PT_INTERP
	}
	ef.Close()
	if !interp {
		t.Skip("this toolchain links -buildmode=pie without a dynamic loader; nothing registers the main thread early")
	}
	c := startHeld(t, nil, argv(t, ids)...)
	f := c.report.Features
	t.Logf("features of a PIE binary: usable %v mode %s cgo %v glibc %v (offset %d size %d) reason %q notes %q",
		f.Usable, f.Mode, f.Cgo, f.Glibc, f.GlibcOffset, f.GlibcSize, f.Reason, f.Notes)
	if !f.Usable || f.Mode != "own" || f.Cgo {
		t.Errorf("usable %v mode %q cgo %v (reason %q), want true, own, false", f.Usable, f.Mode, f.Cgo, f.Reason)
	}
	if len(f.Notes) == 0 {
		t.Errorf("Features has no note saying that the main thread uses the fallback")
	}
	checkShape(t, &c.report)
	for _, th := range c.report.Threads {
		switch {
		case th.Main && th.Area != 0:
			t.Errorf("main thread reports area %#x, but the dynamic loader owns its registration", th.Area)
		case !th.Main && th.Area == 0:
			t.Errorf("thread %d uses the fallback; only the main thread should", th.TID)
		}
	}
	configs := rseqConfigs(t, c.cmd.Process.Pid)
	// The premise: the loader really did register the main thread.
	if main := configs[c.cmd.Process.Pid]; main.Pointer == 0 {
		t.Errorf("the main thread has no rseq registration: the dynamic loader did not register it")
	}
	checkRegistrations(t, c, configs, uint32(f.AreaSize))
	c.finish(t)
}

// TestCgo runs a program that runs with cgo, so that glibc registers rseq
// on every thread, in three situations; the subtests share its build.
func TestCgo(t *testing.T) {
	requireVerifiedRuntime(t)
	dir := t.TempDir()
	prog := build(t, dir, "cgoids", "1")
	t.Run("GlibcAreaReused", func(t *testing.T) { testGlibcAreaReused(t, prog) })
	t.Run("GlibcTunableOff", func(t *testing.T) { testGlibcTunableOff(t, prog) })
	t.Run("Seccomp", func(t *testing.T) { testSeccompCgo(t, build(t, dir, "seccompexec", "0"), prog) })
}

// testGlibcAreaReused: glibc registered an area on every thread and the
// package must use exactly that area (thread pointer + __rseq_offset, as C
// computes it on the same thread), never a second one.
func testGlibcAreaReused(t *testing.T, prog string) {
	c := startHeld(t, nil, argv(t, prog)...)
	f, cs := c.report.Features, c.report.C
	if cs == nil {
		t.Fatal("the cgo program reported no C side")
	}
	if cs.RseqSize == 0 {
		t.Skipf("glibc did not register rseq in the child (__rseq_size 0): glibc older than 2.35, or the tunable is set (GLIBC_TUNABLES=%q)", os.Getenv("GLIBC_TUNABLES"))
	}
	if !f.Usable || f.Mode != "glibc" || !f.Cgo || !f.Glibc {
		t.Fatalf("usable %v mode %q cgo %v glibc %v (reason %q), want true, glibc, true, true", f.Usable, f.Mode, f.Cgo, f.Glibc, f.Reason)
	}
	if f.GlibcOffset != cs.RseqOffset || f.GlibcSize != cs.RseqSize {
		t.Errorf("Features has __rseq_offset %d __rseq_size %d, C sees %d and %d", f.GlibcOffset, f.GlibcSize, cs.RseqOffset, cs.RseqSize)
	}
	if f.Signature != wantSignature[runtime.GOARCH] {
		t.Errorf("signature %#x, want glibc's %#x", f.Signature, wantSignature[runtime.GOARCH])
	}
	checkShape(t, &c.report)
	for _, th := range c.report.Threads {
		if th.Area == 0 || th.Area != th.Expected {
			t.Errorf("thread %d: AreaAddress %#x, glibc's area %#x", th.TID, th.Area, th.Expected)
		}
	}
	// Each thread has one registration, and it is glibc's: glibc registers
	// with the length of its struct rseq, 32 bytes.
	// A thread the runtime is creating right now exists for a moment
	// before glibc's start_thread registers its area: ask again before
	// calling a missing registration an error.
	var configs map[int]rseqConfig
	for try := 0; ; try++ {
		configs = rseqConfigs(t, c.cmd.Process.Pid)
		missing := 0
		for _, cfg := range configs {
			if cfg.Pointer == 0 {
				missing++
			}
		}
		if missing == 0 || try == 10 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	checkRegistrations(t, c, configs, 32)
	for tid, cfg := range configs {
		if cfg.Pointer == 0 {
			t.Errorf("thread %d of the cgo program has no rseq registration; glibc registers every thread", tid)
		}
	}
	c.finish(t)
}

// testGlibcTunableOff runs the cgo program with glibc's registration turned
// off: no thread has an area, so the package must fall back and say why.
func testGlibcTunableOff(t *testing.T, prog string) {
	c := startHeld(t, []string{"GLIBC_TUNABLES=glibc.pthread.rseq=0"}, argv(t, prog)...)
	f, cs := c.report.Features, c.report.C
	if cs == nil || cs.RseqSize != 0 {
		t.Fatalf("C side %+v: glibc registered rseq despite glibc.pthread.rseq=0", cs)
	}
	if f.Usable || f.Mode != "none" {
		t.Errorf("usable %v mode %q, want false and none", f.Usable, f.Mode)
	}
	if !strings.Contains(f.Reason, "glibc did not register") {
		t.Errorf("reason %q does not say that glibc did not register rseq", f.Reason)
	}
	checkShape(t, &c.report)
	for tid, cfg := range rseqConfigs(t, c.cmd.Process.Pid) {
		if cfg.Pointer != 0 {
			t.Errorf("thread %d has an rseq area %#x registered although glibc did not register and the package must not", tid, cfg.Pointer)
		}
	}
	c.finish(t)
}

// testSeccompCgo refuses rseq in the cgo program: glibc's own registration
// fails first (the filter is in force before the dynamic loader), and the
// package must fall back and name the errno.
func testSeccompCgo(t *testing.T, launcher, prog string) {
	c := startHeld(t, nil, append([]string{launcher, "-errno", "ENOSYS"}, argv(t, prog)...)...)
	checkFiltered(t, c.cmd.Process.Pid)
	f, cs := c.report.Features, c.report.C
	if cs == nil || cs.RseqSize != 0 {
		t.Fatalf("C side %+v: glibc registered rseq under a filter refusing it", cs)
	}
	if f.Usable || f.Mode != "none" {
		t.Errorf("usable %v mode %q, want false and none", f.Usable, f.Mode)
	}
	if !strings.Contains(f.Reason, "ENOSYS") && !strings.Contains(f.Reason, "glibc did not register") {
		t.Errorf("reason %q names neither ENOSYS nor glibc's missing registration", f.Reason)
	}
	checkShape(t, &c.report)
	c.finish(t)
}
