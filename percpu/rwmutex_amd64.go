//go:build amd64

package percpu

import (
	"unsafe"

	"github.com/gorseq/rseq"
)

// acquireAfterRLock orders the reader's critical section after RLock's
// load of the writer word. Nothing to do on amd64: loads are not reordered
// with older loads.
func acquireAfterRLock(*uintptr) {}

// runlockSection decrements the count of the CPU the thread runs on, after
// the critical section: rseq.AddCPU (the counts are its slots: line bytes
// apart, by CPU), whose commit is one ADDQ to memory, a release on amd64
// (stores are not reordered with older loads or stores). Its fallback takes
// the same slot lock as rseq.Add's, which RLock's fallback takes too.
func runlockSection(counts unsafe.Pointer) { rseq.AddCPU(counts, -1) }
