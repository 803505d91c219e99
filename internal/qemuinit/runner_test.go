//go:build linux

package main

import (
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestMain lets the test binary stand in for a test binary run by the
// runner: QEMUINIT_HELPER selects its behaviour.
func TestMain(m *testing.M) {
	switch h := os.Getenv("QEMUINIT_HELPER"); {
	case h == "":
		os.Exit(m.Run())
	case strings.HasPrefix(h, "exit:"):
		n, _ := strconv.Atoi(strings.TrimPrefix(h, "exit:"))
		fmt.Print("partial line without newline")
		os.Exit(n)
	case h == "args":
		wd, _ := os.Getwd()
		fmt.Printf("args=%q wd=%s home=%s gorseq=%s\n", os.Args[1:], wd, os.Getenv("HOME"), os.Getenv("GORSEQ_QEMU"))
		os.Exit(0)
	case h == "hang":
		// A hung Go test: SIGQUIT makes it dump goroutines and exit 2.
		time.Sleep(time.Hour)
	case h == "hang-hard":
		signal.Ignore(syscall.SIGQUIT)
		fmt.Println("ignoring SIGQUIT")
		time.Sleep(time.Hour)
	case h == "grandchild":
		// Leave a grandchild behind in the process group; print its pid.
		c := exec.Command("sleep", "3600")
		if err := c.Start(); err != nil {
			fmt.Println("start:", err)
			os.Exit(1)
		}
		fmt.Printf("grandchild=%d\n", c.Process.Pid)
		os.Exit(0)
	case h == "selfkill":
		syscall.Kill(os.Getpid(), syscall.SIGTERM)
		time.Sleep(time.Hour)
	}
	os.Exit(99)
}

// console stands in for the guest console: like it, and unlike a
// bytes.Buffer, it is an *os.File, which the child writes to directly.
type console struct {
	t *testing.T
	f *os.File
}

func newConsole(t *testing.T) *console {
	f, err := os.CreateTemp(t.TempDir(), "console")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return &console{t, f}
}

func (c *console) String() string {
	b, err := os.ReadFile(c.f.Name())
	if err != nil {
		c.t.Fatal(err)
	}
	return string(b)
}

func (c *console) Reset() {
	if err := c.f.Truncate(0); err != nil {
		c.t.Fatal(err)
	}
	if _, err := c.f.Seek(0, 0); err != nil {
		c.t.Fatal(err)
	}
}

func helperRunner(out *console, helper string, timeout time.Duration) *runner {
	return &runner{
		args:    []string{"-test.v", "two words"},
		env:     guestEnv([]string{"QEMUINIT_HELPER=" + helper, "GORSEQ_QEMU=1", "HOME=/"}),
		timeout: timeout,
		grace:   2 * time.Second,
		out:     out.f,
	}
}

func self(t *testing.T) job {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return job{name: "self", path: exe}
}

func TestRunExitStatus(t *testing.T) {
	out := newConsole(t)
	for _, c := range []struct {
		helper string
		want   int
	}{{"exit:0", 0}, {"exit:3", 3}, {"selfkill", 128 + int(syscall.SIGTERM)}} {
		out.Reset()
		res := helperRunner(out, c.helper, time.Minute).run(self(t))
		if res.exit != c.want || res.timedOut {
			t.Errorf("%s: exit %d timedOut %v, want %d false; output %q", c.helper, res.exit, res.timedOut, c.want, out.String())
		}
	}
}

func TestRunArgsEnvDir(t *testing.T) {
	out := newConsole(t)
	j := self(t)
	res := helperRunner(out, "args", time.Minute).run(j)
	if res.exit != 0 {
		t.Fatalf("exit %d: %s", res.exit, out.String())
	}
	want := fmt.Sprintf("args=%q wd=%s home=/tmp gorseq=1\n", []string{"-test.v", "two words"}, filepath.Dir(j.path))
	if out.String() != want {
		t.Fatalf("output %q, want %q", out.String(), want)
	}
}

func TestRunTimeoutQuit(t *testing.T) {
	out := newConsole(t)
	start := time.Now()
	res := helperRunner(out, "hang", 500*time.Millisecond).run(self(t))
	if !res.timedOut || res.exit != exitTimeout {
		t.Fatalf("exit %d timedOut %v, want %d true", res.exit, res.timedOut, exitTimeout)
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("took %v: SIGQUIT should have ended it without the SIGKILL grace", el)
	}
	if s := out.String(); !strings.Contains(s, "SIGQUIT") || !strings.Contains(s, "goroutine ") {
		t.Errorf("output lacks the SIGQUIT notice or the goroutine dump: %q", s)
	}
}

func TestRunTimeoutKill(t *testing.T) {
	out := newConsole(t)
	start := time.Now()
	res := helperRunner(out, "hang-hard", 500*time.Millisecond).run(self(t))
	if !res.timedOut || res.exit != exitTimeout {
		t.Fatalf("exit %d timedOut %v, want %d true", res.exit, res.timedOut, exitTimeout)
	}
	if el := time.Since(start); el < 2500*time.Millisecond || el > 10*time.Second {
		t.Errorf("took %v, want timeout + grace (2.5s) and little more", el)
	}
	if !strings.Contains(out.String(), "SIGKILL") {
		t.Errorf("output lacks the SIGKILL notice: %q", out.String())
	}
}

func TestRunKillsProcessGroup(t *testing.T) {
	if _, err := exec.LookPath("sleep"); err != nil {
		t.Skip("no sleep command")
	}
	out := newConsole(t)
	res := helperRunner(out, "grandchild", time.Minute).run(self(t))
	if res.exit != 0 {
		t.Fatalf("exit %d: %s", res.exit, out.String())
	}
	m := regexp.MustCompile(`grandchild=(\d+)`).FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("no grandchild pid in %q", out.String())
	}
	pid, _ := strconv.Atoi(m[1])
	// The grandchild was reparented (to init or a subreaper) and killed;
	// it is gone or a zombie once its new parent has not reaped it yet.
	deadline := time.Now().Add(5 * time.Second)
	for {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil || strings.Contains(string(stat), ") Z ") {
			return
		}
		if time.Now().After(deadline) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("grandchild %d still alive: %s", pid, stat)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestRunMissingBinary(t *testing.T) {
	out := newConsole(t)
	res := helperRunner(out, "exit:0", time.Minute).run(job{name: "x", path: "/nonexistent/x.test"})
	if res.exit != exitNotFound || !strings.Contains(out.String(), "no such file") {
		t.Fatalf("exit %d output %q, want %d and a no such file message", res.exit, out.String(), exitNotFound)
	}
}

func TestRunAllReport(t *testing.T) {
	out := newConsole(t)
	r := helperRunner(out, "exit:0", time.Minute)
	j := self(t)
	fail := r.runAll([]job{{name: "ok", path: j.path}, {name: "missing", path: "/nonexistent"}})
	if fail != 1 {
		t.Errorf("runAll = %d failures, want 1", fail)
	}
	lines := regexp.MustCompile(`(?m)^QEMU-TEST-(RESULT \S+ exit=\d+|END .*)`).FindAllString(out.String(), -1)
	want := []string{"QEMU-TEST-RESULT ok exit=0", "QEMU-TEST-RESULT missing exit=127", "QEMU-TEST-END pass=1 fail=1"}
	if !reflect.DeepEqual(lines, want) {
		t.Errorf("marker lines %q, want %q\nfull output:\n%s", lines, want, out.String())
	}
}

func TestDiscover(t *testing.T) {
	root := t.TempDir()
	write := func(name string, mode os.FileMode) {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, nil, mode); err != nil {
			t.Fatal(err)
		}
	}
	write("rseq/rseq.test", 0o755)
	write("rseq/testdata/x.test", 0o755) // not directly in the package dir: ignored
	write("percpu/percpu.test", 0o755)
	write("two/a.test", 0o755)
	write("two/b.test", 0o755)
	write("loose.test", 0o755)
	write("noexec/noexec.test", 0o644)
	write("args", 0o644)
	jobs, err := discover(root)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, j := range jobs {
		rel, _ := filepath.Rel(root, j.path)
		got = append(got, j.name+"="+rel)
	}
	want := []string{"loose=loose.test", "percpu=percpu/percpu.test", "rseq=rseq/rseq.test", "two/a.test=two/a.test", "two/b.test=two/b.test"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("discover = %q, want %q", got, want)
	}
	if _, err := discover(filepath.Join(root, "missing")); err == nil {
		t.Error("discover of a missing directory succeeded")
	}
}

func TestSplitArgs(t *testing.T) {
	for _, c := range []struct {
		argv       []string
		bins, args []string
	}{
		{nil, nil, nil},
		{[]string{"/a.test", "/b.test"}, []string{"/a.test", "/b.test"}, nil},
		{[]string{"-test.run=X"}, nil, []string{"-test.run=X"}},
		{[]string{"/a.test", "-test.v", "/b.test", "-test.count=2"}, []string{"/a.test", "/b.test"}, []string{"-test.v", "-test.count=2"}},
	} {
		bins, args := splitArgs(c.argv)
		if !reflect.DeepEqual(bins, c.bins) || !reflect.DeepEqual(args, c.args) {
			t.Errorf("splitArgs(%q) = %q, %q; want %q, %q", c.argv, bins, args, c.bins, c.args)
		}
	}
}

func TestReadArgsFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "args")
	if err := os.WriteFile(p, []byte("-test.short\n\n-test.run=A B\r\n  \n-test.v"), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := readArgsFile(p)
	want := []string{"-test.short", "-test.run=A B", "-test.v"}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("readArgsFile = %q, %v; want %q", got, err, want)
	}
	if got, err := readArgsFile(p + ".missing"); got != nil || err != nil {
		t.Errorf("missing file: %q, %v; want nil, nil", got, err)
	}
}

func TestGuestEnv(t *testing.T) {
	got := guestEnv([]string{"HOME=/", "TERM=linux", "PATH=/x"})
	want := []string{"HOME=/tmp", "TERM=linux", "PATH=/x", "TMPDIR=/tmp"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("guestEnv = %q, want %q", got, want)
	}
}
