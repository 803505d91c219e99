//go:build linux && (amd64 || arm64)

package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorseq/rseq/internal/prebuilt"
)

// needStat skips the test where the aborts cannot be observed (no
// permission, no tracefs, no tracepoint), naming the cause; in a qemu guest
// (GORSEQ_QEMU=1, root, Debian kernels) they must be observable.
func needStat(t *testing.T) {
	t.Helper()
	src, err := openStatSource(true)
	if err != nil {
		if os.Getenv("GORSEQ_QEMU") == "1" {
			t.Fatalf("rseq stat cannot observe aborts in the qemu guest: %v", err)
		}
		t.Skipf("rseq stat cannot observe aborts on this machine: %v", err)
	}
	src.Close()
}

// statProg is a running abortsgo or abortsc (see their protocol).
type statProg struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Scanner
	pid   int
}

func startStatProg(t *testing.T, bin string, args ...string) *statProg {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &statProg{cmd: cmd, stdin: stdin, out: bufio.NewScanner(stdout)}
	t.Cleanup(func() {
		stdin.Close()
		cmd.Process.Kill()
		cmd.Wait()
	})
	f := p.line(t, "ready")
	if p.pid = int(f["pid"]); p.pid != cmd.Process.Pid {
		t.Fatalf("program says pid %d, started %d", p.pid, cmd.Process.Pid)
	}
	return p
}

// line reads the next line, which must start with word, and returns its
// KEY=N fields ("pid" for a lone number).
func (p *statProg) line(t *testing.T, word string) map[string]uint64 {
	t.Helper()
	if !p.out.Scan() {
		t.Fatalf("program ended before printing %q: %v", word, p.out.Err())
	}
	f := strings.Fields(p.out.Text())
	if len(f) == 0 || f[0] != word {
		t.Fatalf("program printed %q, want a %q line", p.out.Text(), word)
	}
	m := map[string]uint64{}
	for _, kv := range f[1:] {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			k, v = "pid", kv
		}
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("bad field %q in %q", kv, p.out.Text())
		}
		m[k] = n
	}
	return m
}

// window lets the program run its sections and returns its own abort counts
// over the window (after minus before).
func (p *statProg) window(t *testing.T) map[string]uint64 {
	t.Helper()
	if _, err := io.WriteString(p.stdin, "go\n"); err != nil {
		t.Fatal(err)
	}
	before := p.line(t, "before")
	after := p.line(t, "after")
	p.line(t, "done")
	d := map[string]uint64{}
	for k, v := range after {
		d[k] = v - before[k]
	}
	return d
}

func (p *statProg) finish(t *testing.T) {
	t.Helper()
	p.stdin.Close()
	if err := p.cmd.Wait(); err != nil {
		t.Errorf("program: %v", err)
	}
}

// statRun runs rseq stat (JSON, no refresh) with the given options while
// during runs, and returns its final report.
type statRun struct {
	done chan int
	stop chan struct{}
	out  bytes.Buffer
	errb bytes.Buffer
}

func startStat(t *testing.T, o statOptions) *statRun {
	t.Helper()
	r := &statRun{done: make(chan int, 1), stop: make(chan struct{})}
	attached := make(chan struct{})
	o.json, o.interval, o.top = true, time.Hour, 20
	o.attached = func() { close(attached) }
	o.stop = r.stop
	go func() { r.done <- statMain(o, &r.out, &r.errb) }()
	select {
	case <-attached:
	case code := <-r.done:
		t.Fatalf("rseq stat exited %d before attaching: %s", code, r.errb.String())
	}
	return r
}

func (r *statRun) finish(t *testing.T) *statReport {
	t.Helper()
	close(r.stop)
	if code := <-r.done; code != statOK {
		t.Fatalf("rseq stat: exit %d: %s", code, r.errb.String())
	}
	lines := strings.Split(strings.TrimSpace(r.out.String()), "\n")
	var rep statReport
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &rep); err != nil {
		t.Fatalf("rseq stat output: %v\n%s", err, r.out.String())
	}
	if !rep.Final || rep.LostAborts != 0 {
		t.Fatalf("report not final or records lost: %+v", rep)
	}
	return &rep
}

// compare checks that the report's sections of pid carry exactly the
// program's counts; names maps a symbol substring to the program's counter.
func compareStat(t *testing.T, rep *statReport, pid int, own map[string]uint64, names map[string]string, wantObject string) {
	t.Helper()
	got := map[string]uint64{}
	var proc *statProc
	for i := range rep.Processes {
		if rep.Processes[i].PID == pid {
			proc = &rep.Processes[i]
		}
	}
	if proc == nil {
		if sum(own) == 0 {
			return
		}
		t.Fatalf("no process %d in the report: %+v", pid, rep)
	}
	for _, s := range proc.Sections {
		name := ""
		for sub, n := range names {
			if strings.Contains(s.Symbol, sub) {
				name = n
			}
		}
		if name == "" {
			t.Errorf("aborts in a section the program does not count: %+v", s)
			continue
		}
		if s.Object != wantObject {
			t.Errorf("section %s in object %q, want %q", s.Symbol, s.Object, wantObject)
		}
		var hist uint64
		for _, o := range s.Offsets {
			hist += o.Aborts
			if o.Offset >= s.PostCommitOffset {
				t.Errorf("section %s: abort at offset %#x, past its length %d", s.Symbol, o.Offset, s.PostCommitOffset)
			}
		}
		if hist != s.Aborts {
			t.Errorf("section %s: histogram sums to %d, aborts %d", s.Symbol, hist, s.Aborts)
		}
		got[name] += s.Aborts
	}
	for _, name := range names {
		if got[name] != own[name] {
			t.Errorf("section %s: rseq stat counted %d aborts, the program %d", name, got[name], own[name])
		}
	}
	if proc.Aborts != sum(own) {
		t.Errorf("process total %d, program's %d", proc.Aborts, sum(own))
	}
	t.Logf("pid %d: program %v, rseq stat %v", pid, own, got)
}

func sum(m map[string]uint64) uint64 {
	var n uint64
	for _, v := range m {
		n += v
	}
	return n
}

func buildAbortsGo(t *testing.T) string {
	return prebuilt.Program(t, "cmd/rseq", "abortsgo", func(bin string) error {
		cmd := exec.Command("go", "build", "-o", bin, "./testdata/abortsgo")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build: %v\n%s", err, out)
		}
		return nil
	})
}

func buildAbortsC(t *testing.T) string {
	return prebuilt.Program(t, "cmd/rseq", "abortsc", func(bin string) error {
		if out, err := exec.Command("gcc", "-O2", "-pthread", "-Wall", "-o", bin, "testdata/abortsc.c").CombinedOutput(); err != nil {
			return fmt.Errorf("gcc: %v\n%s", err, out)
		}
		return nil
	})
}

// TestStatGo checks rseq stat --pid against rseq.Stats() of a Go program
// whose sections abort by CPU moves, signals and preemption.
func TestStatGo(t *testing.T) {
	needStat(t)
	bin := buildAbortsGo(t)
	p := startStatProg(t, bin, "2", "300ms")
	st := startStat(t, statOptions{pid: p.pid, updates: true})
	own := p.window(t)
	rep := st.finish(t)
	p.finish(t)
	if sum(own) == 0 {
		t.Fatalf("the program saw no aborts; nothing was checked")
	}
	compareStat(t, rep, p.pid, own, map[string]string{"rseq.addSection": "add", "rseq.AddCPU": "addCPU", "rseq.copyCommitSection": "copyCommit"}, bin)
	if rep.Updates == nil || *rep.Updates == 0 {
		t.Errorf("--updates: no rseq_update counted: %+v", rep)
	}
}

// TestStatC checks rseq stat against a C program's own count of its abort
// handler entries, for one PID and system-wide at the same time.
func TestStatC(t *testing.T) {
	needStat(t)
	bin := buildAbortsC(t)
	p := startStatProg(t, bin, "2", "300")
	one := startStat(t, statOptions{pid: p.pid})
	all := startStat(t, statOptions{})
	own := p.window(t)
	repOne := one.finish(t)
	repAll := all.finish(t)
	p.finish(t)
	if sum(own) == 0 {
		t.Fatalf("the program saw no aborts; nothing was checked")
	}
	names := map[string]string{"sec_short": "short", "sec_long": "long"}
	compareStat(t, repOne, p.pid, own, names, bin)
	compareStat(t, repAll, p.pid, own, names, bin)
	if repOne.PID != p.pid || repAll.PID != 0 {
		t.Errorf("report PIDs %d and %d", repOne.PID, repAll.PID)
	}
}

// TestStatCommandLine runs the command as a user would, with --duration and
// the table, on a process that exits during the run.
func TestStatCommandLine(t *testing.T) {
	needStat(t)
	bin := buildAbortsC(t)
	p := startStatProg(t, bin, "1", "100")
	done := make(chan struct{})
	var out, errb bytes.Buffer
	var code int
	go func() {
		code = run([]string{"stat", "--pid", strconv.Itoa(p.pid), "--duration", "20s"}, &out, &errb)
		close(done)
	}()
	time.Sleep(300 * time.Millisecond) // attach (the counts need not be exact here)
	p.window(t)
	p.finish(t)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("rseq stat did not end when the process exited")
	}
	if code != statOK || !strings.Contains(out.String(), fmt.Sprintf("process %d (abortsc)", p.pid)) ||
		!strings.Contains(out.String(), "(the process exited)") {
		t.Errorf("exit %d\n%s\n%s", code, out.String(), errb.String())
	}
	out.Reset()
	errb.Reset()
	if code := run([]string{"stat", "--pid", "999999999", "--duration", "1s"}, &out, &errb); code != statUsage || !strings.Contains(errb.String(), "process 999999999: no such process") {
		t.Errorf("a missing process: exit %d: %s", code, errb.String())
	}
}
