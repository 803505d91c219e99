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
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorseq/rseq/internal/prebuilt"
	"github.com/gorseq/rseq/scan"
)

// buildPercpu builds torture/testdata/percpu.c with the given variant (""
// or "BROKEN", for -DBROKEN), or returns the prebuilt
// $GORSEQ_PREBUILT/torture/percpuVARIANT (see internal/prebuilt).
func buildPercpu(t *testing.T, variant string) string {
	t.Helper()
	return prebuilt.Program(t, "torture", "percpu"+variant, func(bin string) error {
		args := []string{"-O2", "-pthread", "-o", bin, "../../torture/testdata/percpu.c"}
		if variant != "" {
			args = append(args, "-D"+variant)
		}
		if out, err := exec.Command("gcc", args...).CombinedOutput(); err != nil {
			return fmt.Errorf("gcc: %v\n%s", err, out)
		}
		return nil
	})
}

// sectionName returns the name rseq torture's report gives the section whose
// symbol starts with prefix in the program at path ("inc20+0x12").
func sectionName(t *testing.T, path, prefix string) string {
	t.Helper()
	o, err := scan.ScanFile(path, scan.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range o.Sections {
		if strings.HasPrefix(s.Symbol, prefix) {
			return s.Symbol
		}
	}
	t.Fatalf("%s has no section %s*", path, prefix)
	return ""
}

func runTortureCmd(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(append([]string{"torture"}, args...), &out, &errb)
	return code, out.String(), errb.String()
}

func TestTortureCommand(t *testing.T) {
	bin := buildPercpu(t, "")
	code, out, errs := runTortureCmd(t, "--progress", "0", "--reps", "2", "--", bin, "2", "20000")
	if code != tortureOK {
		t.Fatalf("exit %d\n%s\n%s", code, out, errs)
	}
	inc20 := sectionName(t, bin, "inc20")
	for _, want := range []string{"ok: sums 40000\n", "coverage: 25/25 abort points of the 2 sections entered (100.0%", inc20 + " ", "result: the program survived"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}

	code, out, errs = runTortureCmd(t, "--progress", "0", "--json", "-", "--section", "^inc5", "--", bin, "1", "1000")
	if code != tortureOK {
		t.Fatalf("--json: exit %d\n%s\n%s", code, out, errs)
	}
	// Standard output holds the JSON report alone; the program's own
	// line went to standard error.
	if !strings.Contains(errs, "ok: sums 1000\n") {
		t.Errorf("the program's output is not on stderr: %q", errs)
	}
	i := 0
	var rep struct {
		Sections []struct {
			Symbol          string
			Points, Covered int
		}
		Coverage float64 `json:"coverage_percent"`
		Survived bool
	}
	if err := json.Unmarshal([]byte(out[i:]), &rep); err != nil {
		t.Fatalf("standard output is not one JSON report (%v): %q", err, out)
	}
	if len(rep.Sections) != 1 || !strings.HasPrefix(rep.Sections[0].Symbol, "inc5") || rep.Sections[0].Covered != 5 || rep.Coverage != 100 || !rep.Survived {
		t.Errorf("report %+v", rep)
	}
}

func TestTortureCommandBroken(t *testing.T) {
	bin := buildPercpu(t, "BROKEN")
	code, out, errs := runTortureCmd(t, "--progress", "0", "--", bin, "2", "20000")
	if code != tortureFailed || !strings.Contains(out, "FAIL: sums") || !strings.Contains(out, "program: exited with status 1 (expected 0)") {
		t.Fatalf("exit %d, want %d\n%s\n%s", code, tortureFailed, out, errs)
	}
}

func TestTortureCommandTimeout(t *testing.T) {
	bin := buildPercpu(t, "")
	// A million aborts per point cannot finish: the timeout ends the
	// torture, the program finishes untouched, coverage stays low.
	code, out, errs := runTortureCmd(t, "--progress", "100ms", "--reps", "1000000", "--timeout", "300ms", "--", bin, "1", "100000")
	if code != tortureLowCoverage || !strings.Contains(out, "the --timeout ended the torture") || !strings.Contains(out, "ok: sums 100000") {
		t.Fatalf("exit %d, want %d\n%s\n%s", code, tortureLowCoverage, out, errs)
	}
	if !strings.Contains(errs, "torture:") || !strings.Contains(errs, "/25 points") {
		t.Errorf("no progress lines on stderr: %q\n%s", errs, out)
	}
}

func TestTortureCommandErrors(t *testing.T) {
	if code, _, _ := runTortureCmd(t); code != tortureUsage {
		t.Errorf("no command: exit %d", code)
	}
	if code, _, errs := runTortureCmd(t, "--", "/nonexistent/program"); code != tortureUsage || !strings.Contains(errs, "/nonexistent/program") {
		t.Errorf("missing program: exit %d, %q", code, errs)
	}
	if code, _, _ := runTortureCmd(t, "--reps", "0", "--", "true"); code != tortureUsage {
		t.Errorf("--reps 0: exit %d", code)
	}
	// A program without sections: nothing to cover, and the report says
	// so plainly (no "0/0 (100.0%)").
	code, out, _ := runTortureCmd(t, "--progress", "0", "--", "true")
	if code != tortureLowCoverage || !strings.Contains(out, "coverage: none: the program has no critical sections") || strings.Contains(out, "0/0") {
		t.Errorf("true: exit %d\n%s", code, out)
	}
	if code, _, errs := runTortureCmd(t, "--json", "--", "true"); code != tortureUsage || !strings.Contains(errs, "--json needs a FILE") {
		t.Errorf("--json without a file: exit %d, %q", code, errs)
	}
	if code, _, _ := runTortureCmd(t, "--progress", "0", "--min-coverage", "0", "--", "true"); code != tortureOK {
		t.Errorf("true with --min-coverage 0: exit %d", code)
	}
	if code, _, _ := runTortureCmd(t, "--progress", "0", "--", "false"); code != tortureFailed {
		t.Errorf("false: exit %d", code)
	}
	if code, _, _ := runTortureCmd(t, "--progress", "0", "--expect-exit", "1", "--min-coverage", "0", "--", "false"); code != tortureOK {
		t.Errorf("false with --expect-exit 1: exit %d", code)
	}
}

// TestTortureCommandHung: a program still running at the end of --grace is
// killed, and that is a failure with its own exit status.
func TestTortureCommandHung(t *testing.T) {
	bin := buildPercpu(t, "")
	code, out, errs := runTortureCmd(t, "--progress", "0", "--timeout", "300ms", "--grace", "300ms", "--", bin, "1", "1000000000000")
	if code != tortureHung || !strings.Contains(out, "program: HUNG") || !strings.Contains(out, "result: the program HUNG") {
		t.Fatalf("exit %d, want %d\n%s\n%s", code, tortureHung, out, errs)
	}
}

// TestTortureCommandInterrupted: SIGTERM ends the run; the partial report
// is printed and the exit status says it was interrupted.
func TestTortureCommandInterrupted(t *testing.T) {
	bin := buildPercpu(t, "")
	pr, pw := io.Pipe()
	done := make(chan int, 1)
	var out bytes.Buffer
	go func() {
		done <- run([]string{"torture", "--progress", "50ms", "--", bin, "1", "1000000000000"}, &out, pw)
		pw.Close()
	}()
	// Once a progress line shows, torture runs: send it SIGTERM.
	br := bufio.NewReader(pr)
	if line, err := br.ReadString('\n'); err != nil || !strings.Contains(line, "torture:") {
		t.Fatalf("first line on stderr %q, %v", line, err)
	}
	syscall.Kill(os.Getpid(), syscall.SIGTERM)
	go io.Copy(io.Discard, br)
	select {
	case code := <-done:
		if code != tortureInterrupted || !strings.Contains(out.String(), "result: INTERRUPTED") || !strings.Contains(out.String(), "coverage: ") {
			t.Fatalf("exit %d, want %d\n%s", code, tortureInterrupted, out.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("rseq torture still running 20s after SIGTERM")
	}
}

// TestTortureCommandPartial: with a section never entered and a loop that
// never iterates, the default coverage (entered sections, less the
// unreachable points) is complete; --all-sections counts everything; the
// --json FILE report leaves standard output to the program and the table.
func TestTortureCommandPartial(t *testing.T) {
	bin := buildPercpu(t, "PARTIAL")
	file := filepath.Join(t.TempDir(), "report.json")
	code, out, errs := runTortureCmd(t, "--progress", "0", "--json", file, "--", bin, "1", "2000")
	if code != tortureOK || !strings.Contains(out, "; not counted: 3 point(s) unreachable in this run, 1 section(s) never entered") ||
		!strings.Contains(out, "never entered") || !strings.Contains(out, "unreachable in this run [") || !strings.Contains(out, "ok: sums 2000") {
		t.Fatalf("exit %d\n%s\n%s", code, out, errs)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var rep struct {
		NotEntered  int     `json:"not_entered"`
		Unreachable int     `json:"unreachable"`
		Coverage    float64 `json:"coverage_percent"`
		Of          string  `json:"coverage_of"`
		Status      int     `json:"exit_status"`
	}
	if err := json.Unmarshal(b, &rep); err != nil || rep.NotEntered != 1 || rep.Unreachable != 3 || rep.Coverage != 100 || rep.Of != "entered" || rep.Status != 0 {
		t.Errorf("JSON report %+v, %v:\n%s", rep, err, b)
	}
	code, out, errs = runTortureCmd(t, "--progress", "0", "--all-sections", "--", bin, "1", "2000")
	if code != tortureLowCoverage || !strings.Contains(out, "abort points of all 4 sections") {
		t.Fatalf("--all-sections: exit %d, want %d\n%s\n%s", code, tortureLowCoverage, out, errs)
	}
}
