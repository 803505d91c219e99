//go:build gorseq_hooks

package percpu

import "sync/atomic"

// rwHooks says whether the test hooks are built in: here, yes.
const rwHooks = true

// rlockPeekedHook, when set, runs in rlock between its look at the writer
// word (found 0) and its section: a test holds a reader there while a
// writer locks, which only the section's own check of the writer word can
// then exclude. Built only with the gorseq_hooks tag
// (TestRWMutexReaderHeldBeforeSection).
var rlockPeekedHook atomic.Pointer[func()]

// rlockPeeked runs the hook, if any.
func rlockPeeked() {
	if h := rlockPeekedHook.Load(); h != nil {
		(*h)()
	}
}
