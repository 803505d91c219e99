//go:build linux

package percpu

import (
	"runtime"
	"testing"

	"github.com/gorseq/rseq"
	"github.com/gorseq/rseq/internal/testenv"
	"golang.org/x/sys/unix"
)

// onEachCPU runs f on a thread pinned to each CPU the process may use,
// checking that the thread runs where it was pinned.
func onEachCPU(t *testing.T, f func(cpu int)) {
	t.Helper()
	err := testenv.OnEveryCPU(func(c int) {
		if got := rseq.CPU(); got != c {
			t.Fatalf("pinned to CPU %d, running on %d", c, got)
		}
		f(c)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// onOneCPU runs f on a thread pinned to the CPU it runs on now.
func onOneCPU(t *testing.T, f func()) {
	t.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var orig, one unix.CPUSet
	if err := unix.SchedGetaffinity(0, &orig); err != nil {
		t.Fatal(err)
	}
	one.Set(rseq.CPU())
	if err := unix.SchedSetaffinity(0, &one); err != nil {
		t.Fatal(err)
	}
	defer unix.SchedSetaffinity(0, &orig)
	f()
}
