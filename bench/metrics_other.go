//go:build !linux

package bench

import (
	"runtime"
	"sync"
)

// onEveryCPU runs f from goroutines on every P: without Linux's pinning,
// most CPUs get some calls.
func onEveryCPU(f func()) {
	var wg sync.WaitGroup
	for range 4 * runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f()
		}()
	}
	wg.Wait()
}
