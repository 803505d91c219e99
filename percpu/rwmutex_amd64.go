//go:build amd64

package percpu

import "github.com/gorseq/rseq"

// acquireAfterRLock orders the reader's critical section after RLock's
// load of the writer word. Nothing to do on amd64: loads are not reordered
// with older loads.
func acquireAfterRLock(*uintptr) {}

// runlockSection decrements the count of the CPU the thread runs on, after
// the critical section: rseq.Add, whose commit is a plain store, which is
// a release on amd64 (stores are not reordered with older loads or stores).
func runlockSection(st *rwState) { rseq.Add(st.counts, line, rseq.ByCPU, -1) }
