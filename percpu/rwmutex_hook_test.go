//go:build gorseq_hooks

package percpu

import (
	"sync"
	"testing"
	"time"

	"github.com/gorseq/rseq"
)

// TestRWMutexReaderHeldBeforeSection holds a reader between rlock's look at
// the writer word, which finds no writer, and its section, while a writer
// locks: the writer's fence finds no reader in a section and its sum no
// reader counted, so it holds the lock at once. When the reader goes on,
// its section must see the writer word and fail, and the reader must wait
// for Unlock. A section that checked some other word (or none) would
// commit the reader's count and return from RLock with the writer inside.
//
// The window is a few instructions wide, which no run under fire hits
// reliably; the gorseq_hooks build tag puts a hook there (rlockPeeked).
func TestRWMutexReaderHeldBeforeSection(t *testing.T) {
	if !fenced() || !rseq.Features().Operations {
		t.Skip("fast mode needs sections and fences; in locked mode no reader looks at the writer word before a section")
	}
	setRWMode(t, "fast")
	for round := range 3 {
		var m RWMutex
		m.state()
		peeked, resume := make(chan struct{}), make(chan struct{})
		var once sync.Once
		hook := func() { once.Do(func() { close(peeked); <-resume }) }
		rlockPeekedHook.Store(&hook)
		locked := make(chan struct{})
		unlocked := make(chan struct{})
		go func() {
			m.RLock()
			close(locked)
			<-unlocked
			m.RUnlock()
		}()
		select {
		case <-peeked:
		case <-time.After(10 * time.Second):
			t.Fatal("the reader never reached its section")
		}
		rlockPeekedHook.Store(nil)
		m.Lock()
		close(resume)
		select {
		case <-locked:
			t.Fatalf("round %d: RLock returned while the writer held the lock: the reader's section committed without seeing the writer word", round)
		case <-time.After(50 * time.Millisecond):
		}
		m.Unlock()
		select {
		case <-locked:
		case <-time.After(10 * time.Second):
			t.Fatalf("round %d: the reader did not get the lock after Unlock", round)
		}
		close(unlocked)
		m.Lock()
		//lint:ignore SA2001 the Lock only waits for the reader's RUnlock.
		m.Unlock()
	}
}
