//go:build !amd64 || race

package percpu

import "sync/atomic"

// setWord is an atomic store; see word_norace.go.
func setWord(p *uintptr, v uintptr) { atomic.StoreUintptr(p, v) }
