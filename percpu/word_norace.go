//go:build amd64 && !race

package percpu

// setWord stores v into a word that other threads may read at the same
// time with atomic loads, but that only the calling goroutine writes (a
// node it owns, a lock word it holds). On amd64 an aligned word store is
// atomic and every store is release-ordered, while the atomic exchange Go
// emits for atomic stores costs several times more. Elsewhere, and under
// the race detector (word_atomic.go), it is an atomic store.
func setWord(p *uintptr, v uintptr) { *p = v }
