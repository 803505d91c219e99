package testenv

import (
	"errors"
	"fmt"
	"runtime"

	"golang.org/x/sys/unix"
)

// OnEveryCPU runs f(cpu) on the calling goroutine, its thread pinned to
// each CPU the process may use in turn, and then restores the thread's
// affinity. It reports why it could not read the affinity (f did not run)
// or pin the thread to a CPU (f did not run for that CPU, the others ran).
// Tests use it to reach every CPU's shard; benchmarks to fill them.
func OnEveryCPU(f func(cpu int)) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var orig unix.CPUSet
	if err := unix.SchedGetaffinity(0, &orig); err != nil {
		return fmt.Errorf("sched_getaffinity: %w", err)
	}
	defer unix.SchedSetaffinity(0, &orig)
	var errs []error
	for c := 0; c < len(orig)*64; c++ {
		if !orig.IsSet(c) {
			continue
		}
		var one unix.CPUSet
		one.Set(c)
		if err := unix.SchedSetaffinity(0, &one); err != nil {
			errs = append(errs, fmt.Errorf("sched_setaffinity to CPU %d: %w", c, err))
			continue
		}
		f(c)
	}
	return errors.Join(errs...)
}
