//go:build linux

package inspect

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorseq/rseq/internal/prebuilt"
	"github.com/gorseq/rseq/internal/ptrace"
	"github.com/gorseq/rseq/scan"
)

// helperEnv makes the test binary inspect the given pid and print the
// result, for the test that runs it as another user.
const helperEnv = "RSEQ_INSPECT_HELPER_PID"

// trueEnv makes the test binary exit at once with status 0: a stand-in for
// true(1) that needs no /bin (qemu guests hold only the test binaries).
const trueEnv = "RSEQ_INSPECT_HELPER_TRUE"

// trueCmd returns a command that exits at once with status 0.
func trueCmd(t *testing.T) *exec.Cmd {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), trueEnv+"=1")
	return cmd
}

// glibcSignature is the signature glibc registers its areas with (RSEQ_SIG).
var glibcSignature = map[string]uint32{"amd64": 0x53053053, "386": 0x53053053, "arm64": 0xd428bc00}[runtime.GOARCH]

func TestMain(m *testing.M) {
	if os.Getenv(trueEnv) != "" {
		os.Exit(0)
	}
	if v := os.Getenv(helperEnv); v != "" {
		pid, _ := strconv.Atoi(v)
		_, err := Inspect(pid, nil)
		fmt.Println("error:", err)
		os.Exit(0)
	}
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

// threadsProg returns testdata/threads.c built with gcc, or the prebuilt
// $GORSEQ_PREBUILT/inspect/threads (see internal/prebuilt).
func threadsProg(t *testing.T) string {
	t.Helper()
	if p, ok, err := prebuilt.Lookup("inspect", "threads"); err != nil {
		t.Fatal(err)
	} else if ok {
		return p
	}
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "inspect-test")
		if buildErr != nil {
			return
		}
		out, err := exec.Command("gcc", "-O2", "-pthread", "-Wall", "-o", filepath.Join(buildDir, "threads"), "testdata/threads.c").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("%v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatalf("building testdata/threads.c: %v", buildErr)
	}
	return filepath.Join(buildDir, "threads")
}

type target struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Reader
}

func startTarget(t *testing.T, args ...string) *target {
	t.Helper()
	cmd := exec.Command(threadsProg(t), args...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	tg := &target{cmd: cmd, stdin: stdin, out: bufio.NewReader(stdout)}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	line, err := tg.out.ReadString('\n')
	if err != nil || line != "ready\n" {
		t.Fatalf("target said %q, %v", line, err)
	}
	return tg
}

// finish asks the target to stop and check itself; it must say ok.
func (tg *target) finish(t *testing.T) {
	t.Helper()
	io.WriteString(tg.stdin, "q\n")
	rest, _ := io.ReadAll(tg.out)
	if err := tg.cmd.Wait(); err != nil || !strings.HasPrefix(string(rest), "ok") {
		t.Fatalf("target's own check after inspection: %v, %q", err, rest)
	}
}

// notStopped fails if any thread of pid is stopped or traced.
func notStopped(t *testing.T, pid int) {
	t.Helper()
	tids, _ := ptrace.Threads(pid)
	for _, tid := range tids {
		if st := ptrace.ThreadState(pid, tid); st == 't' || st == 'T' {
			t.Errorf("thread %d left in state %c", tid, st)
		}
	}
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if !strings.Contains(string(b), "TracerPid:\t0\n") {
		t.Errorf("process %d is still traced", pid)
	}
}

func scanSym(t *testing.T) Symbolizer {
	return func(pid int, addr uint64) (string, string, bool) {
		objs, _ := scan.ScanProcess(pid, scan.Options{})
		s, ok := scan.FindSection(objs, addr)
		if !ok {
			return "", "", false
		}
		return s.Object, s.Symbol, true
	}
}

func TestInspectThreads(t *testing.T) {
	tg := startTarget(t)
	pid := tg.cmd.Process.Pid
	ncpu := runtime.NumCPU()
	sawSection, sawInside := false, false
	for round := 0; round < 20; round++ {
		p, err := Inspect(pid, scanSym(t))
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		notStopped(t, pid)
		names := map[string]int{}
		for _, th := range p.Threads {
			if !th.Registered && th.Name == "churn" {
				// A worker just created by churn (whose name it still
				// has) before glibc registered its area.
				continue
			}
			names[th.Name]++
			if !th.Registered || th.Size != 32 || th.Signature != glibcSignature || th.Area == 0 {
				t.Fatalf("thread %d (%s): registered=%v size %d signature %#x area %#x; want glibc's registration",
					th.TID, th.Name, th.Registered, th.Size, th.Signature, th.Area)
			}
			if th.CPUID == -1 && th.Name == "churn" {
				// RSEQ_CPU_ID_UNINITIALIZED: a new worker stopped
				// between its rseq registration and its first return
				// to user space, where the kernel fills in the ids.
				continue
			}
			if th.CPUID < 0 || int(th.CPUID) >= ncpu || int(th.CPUIDStart) >= ncpu {
				t.Errorf("thread %d (%s): cpu_id %d cpu_id_start %d with %d CPUs", th.TID, th.Name, th.CPUID, th.CPUIDStart, ncpu)
			}
			if th.HasNodeCID && int(th.MMCID) >= len(p.Threads)+p.Vanished+8 {
				t.Errorf("thread %d: mm_cid %d out of range", th.TID, th.MMCID)
			}
			if th.Stop != "interrupt" {
				t.Errorf("thread %d stopped by %q, want interrupt", th.TID, th.Stop)
			}
			if th.Name == "spinner" && th.Section != nil {
				sawSection = true
				if !strings.HasPrefix(th.Section.Symbol, "spin_inc") || !strings.HasSuffix(th.Section.Object, "/threads") {
					t.Errorf("spinner's section named %q in %q, want spin_inc in threads", th.Section.Symbol, th.Section.Object)
				}
				if th.Section.Start == 0 || th.Section.PostCommit == 0 || th.Section.Abort <= th.Section.Start {
					t.Errorf("spinner's section %+v", *th.Section)
				}
				sawInside = sawInside || th.InSection
			}
		}
		if p.Threads[0].TID != pid || p.Threads[0].Name != "main" {
			t.Errorf("first thread %d %q, want %d main", p.Threads[0].TID, p.Threads[0].Name, pid)
		}
		for _, n := range []string{"main", "spinner", "sleeper", "churn"} {
			if names[n] != 1 && !(n == "churn" && names[n] > 1) {
				t.Errorf("round %d: %d threads named %s (threads %v)", round, names[n], n, names)
			}
		}
	}
	if !sawSection {
		t.Error("the spinner never showed its rseq_cs set")
	}
	t.Logf("spinner caught inside its section: %v", sawInside)
	tg.finish(t)
}

func TestInspectGroupStopped(t *testing.T) {
	tg := startTarget(t)
	pid := tg.cmd.Process.Pid
	syscall.Kill(pid, syscall.SIGSTOP)
	time.Sleep(50 * time.Millisecond)
	p, err := Inspect(pid, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, th := range p.Threads {
		if th.Stop != "group-stop" {
			t.Errorf("thread %d: stop %q, want group-stop", th.TID, th.Stop)
		}
	}
	// It must still be stopped, and run on after SIGCONT.
	if st := ptrace.ThreadState(pid, pid); st != 'T' {
		t.Errorf("stopped process left in state %c, want T", st)
	}
	syscall.Kill(pid, syscall.SIGCONT)
	tg.finish(t)
}

func TestInspectExited(t *testing.T) {
	cmd := trueCmd(t)
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	if _, err := Inspect(cmd.Process.Pid, nil); !errors.Is(err, ErrExited) {
		t.Errorf("reaped process: %v, want ErrExited", err)
	}
	// A zombie: exited, not yet reaped.
	cmd = trueCmd(t)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 500 && ptrace.ThreadState(cmd.Process.Pid, cmd.Process.Pid) != 'Z'; i++ {
		time.Sleep(2 * time.Millisecond)
	}
	if _, err := Inspect(cmd.Process.Pid, nil); !errors.Is(err, ErrExited) {
		t.Errorf("zombie: %v, want ErrExited", err)
	}
	cmd.Wait()
	if _, err := Inspect(-3, nil); err == nil {
		t.Error("pid -3 accepted")
	}
}

// TestInspectExiting inspects processes that exit while being inspected: every
// call either succeeds or reports ErrExited, never hangs, and leaves the
// process to be reaped by its parent with its own exit status.
func TestInspectExiting(t *testing.T) {
	ok, exited := 0, 0
	for i := 0; i < 8; i++ {
		tg := startTarget(t, "exit", strconv.Itoa(5+3*i))
		pid := tg.cmd.Process.Pid
		// No concurrent Wait: this process is both the target's parent
		// and its tracer, and a wait for the parent would consume the
		// tracer's stop reports.
		for {
			p, err := Inspect(pid, nil)
			if err == nil {
				if len(p.Notes) > 0 {
					t.Logf("notes: %v", p.Notes)
				}
				ok++
				continue
			}
			if !errors.Is(err, ErrExited) {
				t.Fatalf("process %d exiting: %v, want ErrExited", pid, err)
			}
			exited++
			break
		}
		if err := tg.cmd.Wait(); err != nil {
			t.Fatalf("target exited with %v after inspection, want status 0", err)
		}
	}
	if ok == 0 || exited != 8 {
		t.Errorf("%d inspections succeeded, %d saw the exit; want some and 8", ok, exited)
	}
}

// TestInspectNoPermission runs Inspect as user nobody against a process of
// root: the error must name the cause.
func TestInspectNoPermission(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run a helper as nobody")
	}
	tg := startTarget(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "inspect-nobody")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	helper := filepath.Join(dir, "helper")
	if err := os.WriteFile(helper, b, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(helper, "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+strconv.Itoa(tg.cmd.Process.Pid))
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helper: %v\n%s", err, out)
	}
	s := string(out)
	for _, want := range []string{"no permission to trace process", "another user (uid 0, you are uid 65534)", "CAP_SYS_PTRACE"} {
		if !strings.Contains(s, want) {
			t.Errorf("error %q does not say %q", strings.TrimSpace(s), want)
		}
	}
	notStopped(t, tg.cmd.Process.Pid)
	tg.finish(t)
}
