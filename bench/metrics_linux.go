//go:build linux

package bench

import "github.com/gorseq/rseq/internal/testenv"

// onEveryCPU runs f on a thread pinned to each CPU the process may use
// (once more, unpinned, where pinning failed).
func onEveryCPU(f func()) {
	if testenv.OnEveryCPU(func(int) { f() }) != nil {
		f()
	}
}
