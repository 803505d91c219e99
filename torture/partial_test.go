//go:build linux && (amd64 || arm64)

package torture

import (
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// loopOffsets are the offsets of the 3 instructions of loopn's loop in
// testdata/percpu.c -DPARTIAL.
func loopOffsets() []uint64 {
	if runtime.GOARCH == "arm64" {
		return []uint64{0x14, 0x18, 0x1c}
	}
	return []uint64{0x13, 0x17, 0x1a}
}

// TestPartialCoverage: a section the program never enters is reported as
// such, not as missed; the points of a loop that never iterates are
// unreachable in this run, not missed; and the coverage of the entered
// sections is complete.
func TestPartialCoverage(t *testing.T) {
	bin := cprog(t, "PARTIAL")
	out, read := output(t)
	r, err := Run(Config{Args: []string{bin, "2", "2000", "0"}, Stdout: out, Stderr: out, Timeout: 50 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Log(describe(r))
	if !r.Exited || r.ExitCode != 0 || !strings.Contains(read(), "ok: sums 4000") {
		t.Fatalf("program failed: output %q", read())
	}
	if len(r.Sections) != 4 || r.Entered != 3 || r.NotEntered != 1 || r.Unreachable != 3 {
		t.Fatalf("%d sections, %d entered, %d not entered, %d unreachable points; want 4, 3, 1, 3", len(r.Sections), r.Entered, r.NotEntered, r.Unreachable)
	}
	for _, s := range r.Sections {
		switch {
		case strings.HasPrefix(s.Symbol, "never"):
			if s.Entered || s.Covered != 0 || len(s.Missed) != s.Points || len(s.Unreachable) != 0 {
				t.Errorf("never: %+v", s)
			}
			for _, why := range s.Reasons {
				if why != "the section was never entered" {
					t.Errorf("never: reason %q", why)
				}
			}
		case strings.HasPrefix(s.Symbol, "loopn"):
			if !s.Entered || len(s.Missed) != 0 || !slices.Equal(s.Unreachable, loopOffsets()) || s.Covered != s.Points-3 {
				t.Errorf("loopn: entered %v, %d/%d covered, missed %#x, unreachable %#x; want the loop's %#x unreachable", s.Entered, s.Covered, s.Points, s.Missed, s.Unreachable, loopOffsets())
			}
		default:
			if !s.Entered || s.Covered != s.Points {
				t.Errorf("%s: entered %v, %d/%d covered", s.Symbol, s.Entered, s.Covered, s.Points)
			}
		}
	}
	wantPoints := -3 // the loop's
	for _, s := range r.Sections {
		if s.Entered {
			wantPoints += s.Points
		}
	}
	if r.EnteredCoverage() != 100 || r.EnteredPoints != wantPoints {
		t.Errorf("entered coverage %.1f%% (%d/%d), want 100%% of %d", r.EnteredCoverage(), r.EnteredCovered, r.EnteredPoints, wantPoints)
	}
	if r.Coverage() == 100 {
		t.Errorf("coverage over every point is 100%%, with a section never entered")
	}

	// With the loop iterating, every point of loopn is reached and covered.
	r, err = Run(Config{Args: []string{bin, "1", "2000", "2"}, Stdout: out, Stderr: out, Timeout: 50 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range r.Sections {
		if strings.HasPrefix(s.Symbol, "loopn") && (s.Covered != s.Points || len(s.Unreachable) != 0) {
			t.Errorf("loopn with 2 loops: %d/%d covered, unreachable %#x", s.Covered, s.Points, s.Unreachable)
		}
	}
}

// TestMissedReasons: when the torture ends before every point is covered,
// every missed point says why, and none is taken for unreachable.
func TestMissedReasons(t *testing.T) {
	bin := cprog(t, "PARTIAL")
	out, _ := output(t)
	r, err := Run(Config{Args: []string{bin, "1", "20000", "1"}, Stdout: out, Stderr: out, Reps: 1000000, Timeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Log(describe(r))
	if !r.TimedOut || r.Unreachable != 0 {
		t.Fatalf("timed out %v, %d unreachable points", r.TimedOut, r.Unreachable)
	}
	missed := 0
	for _, s := range r.Sections {
		if len(s.Reasons) != len(s.Missed) {
			t.Fatalf("section %s: %d missed points, %d reasons", s.Symbol, len(s.Missed), len(s.Reasons))
		}
		for i, why := range s.Reasons {
			missed++
			if why == "" {
				t.Errorf("section %s: point %#x missed without a reason", s.Symbol, s.Missed[i])
			}
		}
	}
	if missed == 0 {
		t.Errorf("no point missed with a million aborts wanted at each")
	}
}

// TestStop: closing Config.Stop ends the run at once: the program is
// killed and the partial report says so.
func TestStop(t *testing.T) {
	out, _ := output(t)
	bin := cprog(t, "")
	stop := make(chan struct{})
	var once sync.Once
	closeStop := func() { once.Do(func() { close(stop) }) }
	// Stop once the progress shows aborts (emulated machines take their
	// time to start the program), or after 20s.
	time.AfterFunc(20*time.Second, closeStop)
	progress := writerFunc(func(b []byte) {
		if !strings.Contains(string(b), "  0 aborts") {
			closeStop()
		}
	})
	start := time.Now()
	r, err := Run(Config{Args: []string{bin, "2", "1000000000"}, Stdout: out, Stderr: out, Stop: stop, Progress: progress, ProgressEvery: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Log(describe(r))
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("Run returned %v after the start, long after Stop was closed", d)
	}
	if !r.Interrupted || r.Exited || r.Signal != "killed" || r.Aborts == 0 || len(r.Sections) != 2 {
		t.Errorf("interrupted %v, exited %v, signal %q, %d aborts, %d sections", r.Interrupted, r.Exited, r.Signal, r.Aborts, len(r.Sections))
	}
}

// writerFunc is an io.Writer calling a function with each write.
type writerFunc func([]byte)

func (f writerFunc) Write(b []byte) (int, error) {
	f(b)
	return len(b), nil
}
