//go:build !gorseq_hooks

package percpu

// rwHooks says whether the test hooks are built in (the gorseq_hooks build
// tag; rwmutex_hook_on.go). Here they are not: rlock's "if rwHooks" is
// constant, and the compiler drops it with the hook's call (rlock's code
// is the same as with no hook at all).
const rwHooks = false

// rlockPeeked is the hook between rlock's look at the writer word and its
// section; without the tag it is never called.
func rlockPeeked() {}
