//go:build !gorseq_hooks

package percpu

// rlockPeeked is a test hook between rlock's look at the writer word and
// its section. In normal builds it is true, and compiles to nothing; built
// with the gorseq_hooks tag (rwmutex_hook_on.go), tests can hold a reader
// there.
func rlockPeeked() bool { return true }
