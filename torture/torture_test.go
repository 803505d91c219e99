//go:build linux && amd64

package torture

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

// cprog returns the path of testdata/percpu.c built with the given variant
// ("", "SELFREG", "BROKEN" or "UNREG").
func cprog(t *testing.T, variant string) string {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "torture-test")
		if buildErr != nil {
			return
		}
		for _, v := range []string{"", "SELFREG", "BROKEN", "UNREG"} {
			args := []string{"-O2", "-pthread", "-Wall", "-o", filepath.Join(buildDir, "percpu"+v), "testdata/percpu.c"}
			if v != "" {
				args = append(args, "-D"+v)
			}
			if out, err := exec.Command("gcc", args...).CombinedOutput(); err != nil {
				buildErr = err
				buildDir = string(out)
				return
			}
		}
	})
	if buildErr != nil {
		t.Fatalf("building testdata/percpu.c: %v\n%s", buildErr, buildDir)
	}
	return filepath.Join(buildDir, "percpu"+variant)
}

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" && buildErr == nil {
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

func checkFull(t *testing.T, r *Report, wantSections int) {
	t.Helper()
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
	}
}

func TestGlibcRegisteredFullCoverage(t *testing.T) {
	out, read := output(t)
	r, err := Run(Config{Args: []string{cprog(t, ""), "4", "20000"}, Stdout: out, Stderr: out, Reps: 3, Timeout: 50 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if !r.Exited || r.ExitCode != 0 {
		t.Fatalf("program failed under torture: exited=%v code=%d signal=%s output %q", r.Exited, r.ExitCode, r.Signal, read())
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
		t.Fatalf("program failed under torture: exited=%v code=%d signal=%s output %q", r.Exited, r.ExitCode, r.Signal, read())
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
// this module's library: every one of the library's sections must reach
// full coverage with the program's exact checks passing.
func TestGoLibrary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and tortures a Go program")
	}
	bin := filepath.Join(t.TempDir(), "goprog")
	build := exec.Command("go", "build", "-o", bin, "./testdata/goprog")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building testdata/goprog: %v\n%s", err, out)
	}
	out, read := output(t)
	r, err := Run(Config{Args: []string{bin, "4", "20000"}, Stdout: out, Stderr: out, Reps: 2,
		Inject: time.Millisecond, Timeout: 50 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if !r.Exited || r.ExitCode != 0 || !strings.Contains(read(), "every check exact") {
		t.Fatalf("program failed under torture: exited=%v code=%d signal=%s output %q", r.Exited, r.ExitCode, r.Signal, read())
	}
	if len(r.Sections) == 0 {
		t.Fatal("no critical sections found in the Go program: the library's sections are missing or the scanner does not see them")
	}
	for _, s := range r.Sections {
		t.Logf("%s: %d/%d points, %d aborts, %d unprotected hits", s.Symbol, s.Covered, s.Points, s.Aborts, s.Unprotected)
	}
	checkFull(t, r, len(r.Sections))
	if r.Signals == 0 {
		t.Error("no SIGURG injected into a Go program")
	}
	t.Logf("%d aborts in %v (%.0f/s), %d migrations, %d signals", r.Aborts, r.Duration, r.AbortsPerSecond(), r.Migrations, r.Signals)
}

// BenchmarkAborts measures forced aborts per second: one thread running the
// 5- and 20-instruction sections, 200 aborts at each of their 25 points.
func BenchmarkAborts(b *testing.B) {
	t := &testing.T{}
	bin := cprog(t, "")
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
func TestDlopen(t *testing.T) {
	dir := t.TempDir()
	lib, bin := filepath.Join(dir, "libinc.so"), filepath.Join(dir, "dlmain")
	for _, args := range [][]string{
		{"-O2", "-shared", "-fPIC", "-o", lib, "testdata/libinc.c"},
		{"-O2", "-pthread", "-o", bin, "testdata/dlmain.c", "-ldl"},
	} {
		if out, err := exec.Command("gcc", args...).CombinedOutput(); err != nil {
			t.Fatalf("gcc %v: %v\n%s", args, err, out)
		}
	}
	out, read := output(t)
	r, err := Run(Config{Args: []string{bin, lib, "20000"}, Stdout: out, Stderr: out, Reps: 2, Timeout: 50 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if !r.Exited || r.ExitCode != 0 || !strings.Contains(read(), "ok: sum 40000") {
		t.Fatalf("program failed under torture: exited=%v code=%d signal=%s output %q", r.Exited, r.ExitCode, r.Signal, read())
	}
	checkFull(t, r, 1)
	if s := r.Sections[0]; s.Object != lib || !strings.HasPrefix(s.Symbol, "lib_inc") || s.Points != 5 {
		t.Errorf("section %+v, want lib_inc's 5 points in %s", s, lib)
	}
}

// TestForkExec follows a shell that forks and execs the program.
func TestForkExec(t *testing.T) {
	out, read := output(t)
	r, err := Run(Config{Args: []string{"sh", "-c", cprog(t, "") + " 2 20000; echo done $?"}, Stdout: out, Stderr: out, Timeout: 50 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if !r.Exited || r.ExitCode != 0 || !strings.Contains(read(), "ok: sums 40000\ndone 0\n") {
		t.Fatalf("exited=%v code=%d signal=%s output %q", r.Exited, r.ExitCode, r.Signal, read())
	}
	checkFull(t, r, 2)
	if r.Processes != 2 {
		t.Errorf("followed %d processes, want 2", r.Processes)
	}
}

// TestUnregistered runs sections on a thread without an rseq area: the
// kernel would not abort them, so torture steps over every hit and forces
// no abort.
func TestUnregistered(t *testing.T) {
	out, read := output(t)
	r, err := Run(Config{Args: []string{cprog(t, "UNREG"), "1", "500"}, Stdout: out, Stderr: out, Timeout: 50 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if !r.Exited || r.ExitCode != 0 || !strings.Contains(read(), "ok: sums 500\n") {
		t.Fatalf("exited=%v code=%d signal=%s output %q", r.Exited, r.ExitCode, r.Signal, read())
	}
	if r.Aborts != 0 || r.Covered != 0 || r.Points != 25 {
		t.Errorf("%d aborts, %d/%d points covered; want 0, 0/25", r.Aborts, r.Covered, r.Points)
	}
	// Every point stays armed: each of the 500 passes hits all of them.
	for _, s := range r.Sections {
		if s.Unprotected != 500*s.Points {
			t.Errorf("section %s: %d unprotected hits, want %d", s.Symbol, s.Unprotected, 500*s.Points)
		}
	}
}
