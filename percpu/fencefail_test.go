//go:build linux

package percpu

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strings"
	"syscall"
	"testing"

	"github.com/gorseq/rseq"
	"github.com/gorseq/rseq/internal/seccomp"
	"golang.org/x/sys/unix"
)

var errNoFence = errors.New("fence refused (test)")

// failFences makes every fence fail until the test ends.
func failFences(t *testing.T) {
	t.Helper()
	saved := fenceCPU
	fenceCPU = func(int) error { return errNoFence }
	t.Cleanup(func() { fenceCPU = saved })
}

// filled returns a Value, a Buffer and a Log with entries on the CPUs the
// test runs on, made while fences still work, and what went into them.
type filledStructures struct {
	v       *Value[int]
	b       *Buffer
	l       *Log
	updates int
	pushed  []uintptr
	records map[string]bool
}

func fill(t *testing.T) *filledStructures {
	t.Helper()
	b, err := NewBuffer(64)
	if err != nil {
		t.Fatal(err)
	}
	l, err := NewLog(4096, 0)
	if err != nil {
		t.Fatal(err)
	}
	s := &filledStructures{v: NewValue[int](nil), b: b, l: l, records: map[string]bool{}}
	onEachCPU(t, func(cpu int) {
		for i := 0; i < 5; i++ {
			s.v.Update(func(p *int) { *p++ })
			s.updates++
			e := uintptr(cpu)<<16 | uintptr(i) + 1
			if err := b.Push(e); err != nil {
				t.Fatal(err)
			}
			s.pushed = append(s.pushed, e)
			rec := fmt.Sprintf("cpu %d record %d", cpu, i)
			if err := l.Append([]byte(rec)); err != nil {
				t.Fatal(err)
			}
			s.records[rec] = true
		}
	})
	return s
}

// check drains the structures with working fences and compares with what
// went in: nothing lost, nothing twice.
func (s *filledStructures) check(t *testing.T, drainedBefore []uintptr, logBefore []string) {
	t.Helper()
	sum, err := Merge(s.v, func(acc *int, p *int) { *acc += *p })
	if err != nil || sum != s.updates {
		t.Errorf("Value: sum %d (%v), want %d", sum, err, s.updates)
	}
	got, err := s.b.Drain(drainedBefore)
	if err != nil {
		t.Fatal(err)
	}
	sort.Slice(got, func(i, j int) bool { return got[i] < got[j] })
	want := append([]uintptr(nil), s.pushed...)
	sort.Slice(want, func(i, j int) bool { return want[i] < want[j] })
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Buffer: drained %v, pushed %v", got, want)
	}
	recs := append([]string(nil), logBefore...)
	if err := s.l.Drain(func(_ int, r []byte) { recs = append(recs, string(r)) }); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, r := range recs {
		if !s.records[r] || seen[r] {
			t.Errorf("Log: record %q unknown or drained twice", r)
		}
		seen[r] = true
	}
	if len(seen) != len(s.records) {
		t.Errorf("Log: %d of %d records drained", len(seen), len(s.records))
	}
}

// TestFenceFailureKeepsData: when fences start failing after the structures
// were made, Range, Merge and the Drains return the error instead of
// panicking, lose nothing, and the structures keep working; once fences
// work again everything comes out exactly once.
func TestFenceFailureKeepsData(t *testing.T) {
	s := fill(t)
	if !s.v.state().fenced {
		t.Skip("locked mode (no sections or no membarrier): no fence to fail")
	}
	var drained []uintptr
	var logged []string
	t.Run("failing", func(t *testing.T) {
		failFences(t)
		if err := s.v.Range(func(*int) {}); !errors.Is(err, errNoFence) {
			t.Errorf("Value.Range: %v, want the fence's error", err)
		}
		if _, err := Merge(s.v, func(*int, *int) {}); !errors.Is(err, errNoFence) {
			t.Errorf("Merge: %v, want the fence's error", err)
		}
		var err error
		if drained, err = s.b.Drain(nil); !errors.Is(err, errNoFence) {
			t.Errorf("Buffer.Drain: %v, want the fence's error", err)
		}
		if err := s.l.Drain(func(_ int, r []byte) { logged = append(logged, string(r)) }); !errors.Is(err, errNoFence) {
			t.Errorf("Log.Drain: %v, want the fence's error", err)
		}
		// Still usable: updates, pushes and appends go on.
		onEachCPU(t, func(cpu int) {
			s.v.Update(func(p *int) { *p++ })
			s.updates++
			e := uintptr(cpu)<<16 | 0xfff
			if err := s.b.Push(e); err != nil {
				t.Fatal(err)
			}
			s.pushed = append(s.pushed, e)
			rec := fmt.Sprintf("cpu %d after the failure", cpu)
			if err := s.l.Append([]byte(rec)); err != nil {
				t.Fatal(err)
			}
			s.records[rec] = true
		})
	})
	s.check(t, drained, logged)
}

// TestFenceRefusedBySeccomp does it for real in a child process: a seccomp
// filter installed after the structures were made refuses membarrier.
func TestFenceRefusedBySeccomp(t *testing.T) {
	if os.Getenv("GORSEQ_FENCE_CHILD") == "1" {
		fenceRefusedChild(t)
		return
	}
	if !rseq.Features().Operations {
		t.Skip("no sections: structures run in locked mode, without fences")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^TestFenceRefusedBySeccomp$", "-test.v")
	cmd.Env = append(os.Environ(), "GORSEQ_FENCE_CHILD=1")
	out, err := cmd.CombinedOutput()
	if strings.Contains(string(out), "SKIP: cannot install") {
		t.Skipf("the child cannot install a seccomp filter:\n%s", out)
	}
	if err != nil || !strings.Contains(string(out), "--- PASS: TestFenceRefusedBySeccomp") {
		t.Fatalf("child: %v\n%s", err, out)
	}
}

func fenceRefusedChild(t *testing.T) {
	s := fill(t)
	if !s.v.state().fenced {
		t.Fatal("structures made in locked mode although the parent runs sections")
	}
	if err := seccomp.Refuse(unix.SYS_MEMBARRIER, syscall.EPERM); err != nil {
		t.Skipf("SKIP: cannot install the filter: %v", err)
	}
	if err := s.v.Range(func(*int) {}); !errors.Is(err, syscall.EPERM) {
		t.Errorf("Value.Range under the filter: %v, want EPERM", err)
	}
	drained, err := s.b.Drain(nil)
	if !errors.Is(err, syscall.EPERM) {
		t.Errorf("Buffer.Drain under the filter: %v, want EPERM", err)
	}
	var logged []string
	if err := s.l.Drain(func(_ int, r []byte) { logged = append(logged, string(r)) }); !errors.Is(err, syscall.EPERM) {
		t.Errorf("Log.Drain under the filter: %v, want EPERM", err)
	}
	// Nothing is lost: what was not drained is still there (only the
	// shared slot, which needs no fence, may have been drained).
	if n := s.b.Len() + len(drained); n != len(s.pushed) {
		t.Errorf("Buffer holds %d and %d came out, %d were pushed", s.b.Len(), len(drained), len(s.pushed))
	}
	// The structures still work on the CPU side.
	s.v.Update(func(p *int) { *p++ })
	if err := s.b.Push(1); err != nil {
		t.Errorf("Push after the filter: %v", err)
	}
	if err := s.l.Append([]byte("after")); err != nil {
		t.Errorf("Append after the filter: %v", err)
	}
}
