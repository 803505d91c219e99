//go:build linux && (amd64 || arm64)

package torture

import (
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorseq/rseq"
	"github.com/gorseq/rseq/internal/prebuilt"
	"github.com/gorseq/rseq/internal/testenv"
	"github.com/gorseq/rseq/scan"
	"golang.org/x/sys/unix"
)

// The helper programs are built here with gcc and go build, or taken from
// $GORSEQ_PREBUILT/torture (see internal/prebuilt and .ci/prebuild.sh):
// percpu, percpuSELFREG, percpuBROKEN, percpuUNREG, percpuPARTIAL (testdata/percpu.c with
// each -D variant), goprog (testdata/goprog), dlmain and libinc.so
// (testdata/dlmain.c and libinc.c, run with the loader in
// $GORSEQ_PREBUILT/lib).

var (
	buildMu   sync.Mutex
	buildDir  string
	buildErr  error
	cprogPath = map[string]string{}
)

// cprog returns the path of testdata/percpu.c built with the given variant
// ("", "SELFREG", "BROKEN" or "UNREG").
func cprog(t testing.TB, variant string) string {
	t.Helper()
	name := "percpu" + variant
	if p, ok, err := prebuilt.Lookup("torture", name); err != nil {
		t.Fatal(err)
	} else if ok {
		return p
	}
	buildMu.Lock()
	defer buildMu.Unlock()
	if p := cprogPath[name]; p != "" {
		return p
	}
	if buildDir == "" && buildErr == nil {
		buildDir, buildErr = os.MkdirTemp("", "torture-test")
	}
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	p := filepath.Join(buildDir, name)
	args := []string{"-O2", "-pthread", "-Wall", "-o", p, "testdata/percpu.c"}
	if variant != "" {
		args = append(args, "-D"+variant)
	}
	if out, err := exec.Command("gcc", args...).CombinedOutput(); err != nil {
		t.Fatalf("building testdata/percpu.c -D%s: %v\n%s", variant, err, out)
	}
	cprogPath[name] = p
	return p
}

// forkExecEnv makes the test binary a stand-in for sh -c on machines
// without a shell: it runs its arguments as a child (fork and exec) and
// prints "done STATUS".
const forkExecEnv = "GORSEQ_TORTURE_FORKEXEC"

func TestMain(m *testing.M) {
	if os.Getenv(forkExecEnv) != "" {
		cmd := exec.Command(os.Args[1], os.Args[2:]...)
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		err := cmd.Run()
		code := cmd.ProcessState.ExitCode()
		if err != nil && code < 0 {
			fmt.Println("run:", err)
			os.Exit(2)
		}
		fmt.Printf("done %d\n", code)
		os.Exit(0)
	}
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// output returns a file the program writes to and a function reading it.
func output(t *testing.T) (*os.File, func() string) {
	f, err := os.CreateTemp(t.TempDir(), "out")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f, func() string {
		b, _ := os.ReadFile(f.Name())
		return string(b)
	}
}

// describe sums up a report for a failure message.
func describe(r *Report) string {
	s := fmt.Sprintf("exited=%v code=%d signal=%s killed=%v timed_out=%v, %d/%d points, %d aborts (the last at %v), %d migrations, %d signals, %d processes, %d threads, run %v",
		r.Exited, r.ExitCode, r.Signal, r.Killed, r.TimedOut, r.Covered, r.Points, r.Aborts, r.LastAbort, r.Migrations, r.Signals, r.Processes, r.Threads, r.Duration)
	for _, sec := range r.Sections {
		s += fmt.Sprintf("; section %s: %d/%d points, %d aborts (%d migrating), %d unprotected, %d+%d stalls, missed %#x %q, unreachable %#x %s",
			sec.Symbol, sec.Covered, sec.Points, sec.Aborts, sec.MigratedAborts, sec.Unprotected, sec.CommitStalls, sec.PostCommitStalls, sec.Missed, sec.Reasons, sec.Unreachable, sec.Note)
	}
	for _, n := range r.Notes {
		s += "; note: " + n
	}
	return s
}

// checkFull checks that the report covers wantSections sections, each
// completely: every point aborted, and every stall made (the commit stalls
// where the program may use two CPUs).
func checkFull(t *testing.T, r *Report, wantSections int) {
	t.Helper()
	t.Log(describe(r))
	if r.TimedOut {
		t.Errorf("the torture ran into its timeout")
	}
	if len(r.Sections) != wantSections {
		t.Fatalf("%d sections tortured, want %d: %+v", len(r.Sections), wantSections, r.Sections)
	}
	for _, s := range r.Sections {
		if s.Points == 0 || s.Covered != s.Points {
			t.Errorf("section %s: %d/%d points covered (missed offsets %v)", s.Symbol, s.Covered, s.Points, s.Missed)
		}
		if s.Aborts < s.Points {
			t.Errorf("section %s: %d aborts for %d points", s.Symbol, s.Aborts, s.Points)
		}
		switch {
		case s.PostCommitStalls >= r.Stalls:
		case testenv.InQemu() && s.PostCommitStalls > 0:
			// Under TCG a post-commit stall needs the other threads to
			// run the same section on the held CPU, which a slow guest
			// beside another may not do in a program's phase (ClaimHandle
			// once made 1 of 3 in a 5 s phase, arm64/6.12 on the CI
			// machine): the count is a target there, and each section
			// must make one.
			t.Logf("section %s: %d post-commit stalls, target %d (qemu)", s.Symbol, s.PostCommitStalls, r.Stalls)
		default:
			t.Errorf("section %s: %d post-commit stalls, want %d", s.Symbol, s.PostCommitStalls, r.Stalls)
		}
		switch {
		case !multiCPU() || s.CommitStalls >= r.Stalls:
		case testenv.InQemu():
			// Under TCG a commit stall's window often closes before the
			// restarted pass reaches its commit (the emulated thread is
			// slow to be scheduled on its new CPU): the count is a
			// target there, and the run as a whole must make some.
			t.Logf("section %s: %d commit stalls, target %d (qemu)", s.Symbol, s.CommitStalls, r.Stalls)
		default:
			t.Errorf("section %s: %d commit stalls, want %d", s.Symbol, s.CommitStalls, r.Stalls)
		}
	}
	if multiCPU() && r.CommitStalls == 0 && len(r.Sections) > 0 {
		t.Errorf("no commit stall made in any section")
	}
}

func TestGlibcRegisteredFullCoverage(t *testing.T) {
	out, read := output(t)
	r, err := Run(Config{Args: []string{cprog(t, ""), "4", "20000"}, Stdout: out, Stderr: out, Reps: 3, Timeout: 50 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if !r.Exited || r.ExitCode != 0 {
		t.Fatalf("program failed under torture: %s; output %q", describe(r), read())
	}
	if !strings.Contains(read(), "ok: sums 80000\n") {
		t.Fatalf("output %q", read())
	}
	checkFull(t, r, 2)
	// inc5 has 5 instructions and inc20 20, each aborted 3 times.
	if r.Points != 25 || r.Covered != 25 {
		t.Fatalf("points %d covered %d, want 25", r.Points, r.Covered)
	}
	if r.Threads != 5 {
		t.Errorf("followed %d threads, want 5", r.Threads)
	}
	t.Logf("%d aborts in %v (%.0f/s)", r.Aborts, r.Duration, r.AbortsPerSecond())
}

func TestSelfRegisteredFullCoverage(t *testing.T) {
	out, read := output(t)
	env := append(os.Environ(), "GLIBC_TUNABLES=glibc.pthread.rseq=0")
	r, err := Run(Config{Args: []string{cprog(t, "SELFREG"), "3", "20000"}, Env: env, Stdout: out, Stderr: out, Inject: time.Millisecond, Timeout: 50 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if !r.Exited || r.ExitCode != 0 {
		t.Fatalf("program failed under torture: %s; output %q", describe(r), read())
	}
	checkFull(t, r, 2)
	for _, s := range r.Sections {
		if s.BadSignature != 0 {
			t.Errorf("section %s: %d bad signatures", s.Symbol, s.BadSignature)
		}
	}
}

func TestBrokenSectionFails(t *testing.T) {
	out, read := output(t)
	r, err := Run(Config{Args: []string{cprog(t, "BROKEN"), "2", "20000"}, Stdout: out, Stderr: out, Timeout: 50 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if !r.Exited || r.ExitCode != 1 || !strings.Contains(read(), "FAIL: sums") {
		t.Fatalf("broken program: exited=%v code=%d signal=%s output %q; want exit 1 with FAIL", r.Exited, r.ExitCode, r.Signal, read())
	}
	checkFull(t, r, 2)
}

// TestGoLibrary tortures a Go program that runs every per-CPU operation of
// this module's library (testdata/goprog, built from this tree): every one
// of the library's sections must reach full coverage with the program's
// exact checks passing. The sections expected come from the library's own
// table as the program has it (rseq.Sections(), which it prints), not from
// the report: each must be found, with as many abort points as it has
// instructions (amd64: decoded from the program's file; arm64: its length
// over 4), every point aborted Reps times, no pass run without rseq_cs set
// (an abort handler that skips the re-arm shows there), and its stalls
// made: post-commit stalls (values used after the commit show) and, with
// two CPUs or more, commit stalls after migrating aborts (an index read
// before the restart label shows).
func TestGoLibrary(t *testing.T) {
	if testing.Short() && prebuilt.Dir() == "" {
		t.Skip("builds and tortures a Go program")
	}
	if f := rseq.Features(); !f.Operations {
		// The program would fail its own check that the operations run
		// as sections, with no section to torture.
		t.Skipf("the library's operations do not run as restartable sections on %s here (%s): nothing to torture", runtime.GOARCH, f.OperationsReason)
	}
	bin := prebuilt.Program(t, "torture", "goprog", func(out string) error {
		build := exec.Command("go", "build", "-o", out, "./testdata/goprog")
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if b, err := build.CombinedOutput(); err != nil {
			return fmt.Errorf("%v\n%s", err, b)
		}
		return nil
	})
	out, read := output(t)
	// Every phase of the program lasts 1s at least: long enough for the
	// stalls of its sections, each of which needs the other threads busy
	// with the same operations while one thread is held. (Run beside the
	// other packages' tests in go test ./..., storeCommit and copyCommit
	// once made 1 of their 3 commit stalls with 200ms phases, 2026-12-02,
	// and 2 and 1 of 3 with 500ms phases, 2026-12-03.)
	cfg := Config{Args: []string{bin, "4", "20000", "1s"}, Stdout: out, Stderr: out, Reps: 2,
		Inject: time.Millisecond, Timeout: 50 * time.Second, Stalls: 3, StallTime: 3 * time.Millisecond}
	if testenv.InQemu() {
		// Emulated CPUs: the other threads need longer to get anything
		// done while one is held, and CI runs two guests at once on two
		// host cores, each about half as fast as one alone. (With 1s
		// phases an arm64 guest once made only 2 of TakeHandle's 3
		// post-commit stalls, with 2s phases an arm64/7.3 guest beside
		// another once failed too, and with 3s an arm64/6.12 guest once
		// made 2 of cmpStore's, 2026-12-02: its two phases give it 10 s
		// now.)
		cfg.Args[3] = "5s"
		cfg.StallTime = 15 * time.Millisecond
		cfg.Timeout = 150 * time.Second
	}
	r, err := Run(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !r.Exited || r.ExitCode != 0 || !strings.Contains(read(), "every check exact") {
		t.Fatalf("program failed under torture: %s; output %q", describe(r), read())
	}
	lib, err := librarySections(bin, read())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range r.Sections {
		t.Logf("%s: %d/%d points, %d aborts (%d migrating), %d unprotected hits, %d commit stalls, %d post-commit stalls",
			s.Symbol, s.Covered, s.Points, s.Aborts, s.MigratedAborts, s.Unprotected, s.CommitStalls, s.PostCommitStalls)
	}
	checkFull(t, r, len(lib))
	byStart := map[uint64]SectionReport{}
	for _, s := range r.Sections {
		byStart[s.Start] = s
	}
	migrated := 0
	for _, want := range lib {
		s, ok := byStart[want.start]
		if !ok {
			t.Errorf("library section %s (start %#x, %d instructions) not tortured", want.name, want.start, want.insns)
			continue
		}
		if s.Points != want.insns {
			t.Errorf("library section %s: %d abort points, want its %d instructions", want.name, s.Points, want.insns)
		}
		if s.Aborts < 2*want.insns {
			t.Errorf("library section %s: %d aborts, want at least %d (every instruction twice)", want.name, s.Aborts, 2*want.insns)
		}
		if s.Unprotected != 0 {
			t.Errorf("library section %s: %d breakpoint hits while rseq_cs did not cover the section: a pass ran unprotected (an abort handler that does not re-arm?)", want.name, s.Unprotected)
		}
		if s.BadSignature != 0 {
			t.Errorf("library section %s: %d aborts found a bad signature", want.name, s.BadSignature)
		}
		migrated += s.MigratedAborts
		switch {
		case !multiCPU() || s.MigratedAborts > 0:
		case testenv.InQemu():
			// Under TCG a section aborted a few dozen times can see none
			// of its aborts moved (addFloat64CPU: 0 of 16, arm64/7.3 on
			// the CI machine): per section a target there, and the run
			// as a whole must move some.
			t.Logf("library section %s: no forced abort moved its thread to another CPU (qemu: a target)", want.name)
		default:
			t.Errorf("library section %s: no forced abort moved its thread to another CPU", want.name)
		}
	}
	if multiCPU() && migrated == 0 {
		t.Errorf("no forced abort of any library section moved its thread to another CPU")
	}
	if r.Signals == 0 {
		t.Error("no SIGURG injected into a Go program")
	}
	t.Logf("%d aborts in %v (%.0f/s), %d migrations, %d signals, %d commit stalls, %d post-commit stalls",
		r.Aborts, r.Duration, r.AbortsPerSecond(), r.Migrations, r.Signals, r.CommitStalls, r.PostCommitStalls)
}

// libSection is one section of the library as goprog reports it, at its
// link-time address.
type libSection struct {
	name  string
	start uint64
	insns int
}

// librarySections reads the section table goprog printed (run-time
// addresses) and returns it at link-time addresses, with the number of
// instructions of each section, counted in the program's file.
func librarySections(bin, output string) ([]libSection, error) {
	f, err := elf.Open(bin)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	syms, err := f.Symbols()
	if err != nil {
		return nil, err
	}
	var mainSym uint64
	for _, s := range syms {
		if s.Name == "main.main" {
			mainSym = s.Value
		}
	}
	var secs []libSection
	var mainAddr uint64
	type span struct{ start, post uint64 }
	var spans []span
	for _, line := range strings.Split(output, "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) == 5 && f[0] == "section":
			start, err1 := strconv.ParseUint(f[2], 0, 64)
			post, err2 := strconv.ParseUint(f[3], 0, 64)
			if err1 != nil || err2 != nil || post <= start {
				return nil, fmt.Errorf("bad section line %q", line)
			}
			secs = append(secs, libSection{name: f[1]})
			spans = append(spans, span{start, post})
		case len(f) == 2 && f[0] == "main":
			mainAddr, _ = strconv.ParseUint(f[1], 0, 64)
		}
	}
	if len(secs) == 0 || mainAddr == 0 || mainSym == 0 {
		return nil, fmt.Errorf("no section table from the program (main %#x, main.main %#x): output %q", mainAddr, mainSym, output)
	}
	bias := mainAddr - mainSym
	text := f.Section(".text")
	if text == nil {
		return nil, fmt.Errorf("%s: no .text", bin)
	}
	code, err := text.Data()
	if err != nil {
		return nil, err
	}
	for i := range secs {
		start, post := spans[i].start-bias, spans[i].post-bias
		if start < text.Addr || post > text.Addr+uint64(len(code)) {
			return nil, fmt.Errorf("section %s at %#x-%#x is outside .text", secs[i].name, start, post)
		}
		n, err := countInstructions(code[start-text.Addr : post-text.Addr])
		if err != nil {
			return nil, fmt.Errorf("section %s: %v", secs[i].name, err)
		}
		secs[i].start, secs[i].insns = start, n
	}
	return secs, nil
}

// multiCPU reports whether this process may run on two CPUs or more, which
// migrating aborts and commit stalls need.
func multiCPU() bool {
	var m unix.CPUSet
	return unix.SchedGetaffinity(0, &m) == nil && m.Count() > 1
}

// BenchmarkAborts measures forced aborts per second: one thread running the
// 5- and 20-instruction sections, 200 aborts at each of their 25 points.
func BenchmarkAborts(b *testing.B) {
	bin := cprog(b, "")
	var aborts int
	var d time.Duration
	for i := 0; i < b.N; i++ {
		r, err := Run(Config{Args: []string{bin, "1", "200000"}, Reps: 200})
		if err != nil {
			b.Fatal(err)
		}
		if !r.Exited || r.ExitCode != 0 || r.Covered != r.Points {
			b.Fatalf("run failed: %+v", r)
		}
		aborts += r.Aborts
		d += r.LastAbort
	}
	b.ReportMetric(float64(aborts)/d.Seconds(), "aborts/s")
}

// TestDlopen tortures a section in a library the program loads with dlopen:
// the loader hook finds it before its code runs.
//
// With GORSEQ_PREBUILT, dlmain runs under the dynamic loader packed in
// $GORSEQ_PREBUILT/lib (the machine may have no C library): torture then
// starts the loader, which maps dlmain like a library.
func TestDlopen(t *testing.T) {
	var lib, bin string
	var args []string
	if loader, libdir := prebuilt.Loader(t); loader != "" {
		bin = prebuilt.Program(t, "torture", "dlmain", nil)
		lib = prebuilt.Program(t, "torture", "libinc.so", nil)
		args = []string{loader, "--library-path", libdir, bin}
	} else {
		dir := t.TempDir()
		lib, bin = filepath.Join(dir, "libinc.so"), filepath.Join(dir, "dlmain")
		for _, args := range [][]string{
			{"-O2", "-shared", "-fPIC", "-o", lib, "testdata/libinc.c"},
			{"-O2", "-pthread", "-o", bin, "testdata/dlmain.c", "-ldl"},
		} {
			if out, err := exec.Command("gcc", args...).CombinedOutput(); err != nil {
				t.Fatalf("gcc %v: %v\n%s", args, err, out)
			}
		}
		args = []string{bin}
	}
	out, read := output(t)
	r, err := Run(Config{Args: append(args, lib, "20000"), Stdout: out, Stderr: out, Reps: 2, Timeout: 50 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if !r.Exited || r.ExitCode != 0 || !strings.Contains(read(), "ok: sum 40000") {
		t.Fatalf("program failed under torture: %s; output %q", describe(r), read())
	}
	checkFull(t, r, 1)
	if s := r.Sections[0]; s.Object != lib || !strings.HasPrefix(s.Symbol, "lib_inc") || s.Points != 5 {
		t.Errorf("section %+v, want lib_inc's 5 points in %s", s, lib)
	}
}

// TestForkExec follows a shell that forks and execs the program; without a
// shell (a bare test machine), this test binary does the fork and exec.
func TestForkExec(t *testing.T) {
	out, read := output(t)
	prog := cprog(t, "")
	cfg := Config{Args: []string{"sh", "-c", prog + " 2 20000; echo done $?"}, Stdout: out, Stderr: out, Timeout: 50 * time.Second}
	// The shell forks once; a Go parent's runtime may fork a probe child
	// of its own (syscall's CLONE_PIDFD check).
	minProcs, maxProcs := 2, 2
	if _, lookErr := exec.LookPath("sh"); lookErr != nil {
		exe, err := os.Executable()
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("no sh (%v): the test binary forks and execs the program", lookErr)
		cfg.Args = []string{exe, prog, "2", "20000"}
		cfg.Env = append(os.Environ(), forkExecEnv+"=1")
		// The test binary holds the library's sections: leave them be.
		cfg.Filter = func(s *scan.Section) bool { return strings.HasPrefix(s.Symbol, "inc") }
		maxProcs = 3
	}
	r, err := Run(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !r.Exited || r.ExitCode != 0 || !strings.Contains(read(), "ok: sums 40000\ndone 0\n") {
		t.Fatalf("%s; output %q", describe(r), read())
	}
	checkFull(t, r, 2)
	if r.Processes < minProcs || r.Processes > maxProcs {
		t.Errorf("followed %d processes, want %d to %d", r.Processes, minProcs, maxProcs)
	}
}

// TestUnregistered runs sections on a thread without an rseq area: the
// kernel would not abort them, so torture steps over every hit and forces
// no abort.
func TestUnregistered(t *testing.T) {
	// Every hit is a trap and a single step: -short (the qemu guests)
	// makes fewer passes.
	passes := 500
	if testing.Short() {
		passes = 100
	}
	out, read := output(t)
	r, err := Run(Config{Args: []string{cprog(t, "UNREG"), "1", strconv.Itoa(passes)}, Stdout: out, Stderr: out, Timeout: 50 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if !r.Exited || r.ExitCode != 0 || !strings.Contains(read(), fmt.Sprintf("ok: sums %d\n", passes)) {
		t.Fatalf("%s; output %q", describe(r), read())
	}
	if r.Aborts != 0 || r.Covered != 0 || r.Points != 25 {
		t.Errorf("%d aborts, %d/%d points covered; want 0, 0/25", r.Aborts, r.Covered, r.Points)
	}
	// Every point stays armed: each pass hits all of them.
	for _, s := range r.Sections {
		if s.Unprotected != passes*s.Points {
			t.Errorf("section %s: %d unprotected hits, want %d", s.Symbol, s.Unprotected, passes*s.Points)
		}
	}
}
