//go:build !linux

package percpu

import (
	"runtime"
	"testing"
)

// Pinning a thread to a CPU (sched_setaffinity) is Linux's: the tests that
// need it are skipped elsewhere.

func onEachCPU(t *testing.T, f func(cpu int)) {
	t.Skipf("pinning threads to CPUs is not supported on %s", runtime.GOOS)
}

func onOneCPU(t *testing.T, f func()) {
	t.Skipf("pinning threads to CPUs is not supported on %s", runtime.GOOS)
}
