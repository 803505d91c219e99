//go:build linux

package bench

import (
	"runtime"

	"golang.org/x/sys/unix"
)

// onEveryCPU runs f on a thread pinned to each CPU the process may use.
func onEveryCPU(f func()) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var orig unix.CPUSet
	if unix.SchedGetaffinity(0, &orig) != nil {
		f()
		return
	}
	defer unix.SchedSetaffinity(0, &orig)
	for c := 0; c < len(orig)*64; c++ {
		if !orig.IsSet(c) {
			continue
		}
		var one unix.CPUSet
		one.Set(c)
		if unix.SchedSetaffinity(0, &one) == nil {
			f()
		}
	}
}
