package percpu

import (
	"errors"
	"runtime"
	"sync"
	"testing"
)

// gShift places the goroutine number above the push count in the pushed
// values: bit 40 with 64-bit words, bit 24 with 32-bit ones.
const gShift = 24 + 16*(^uintptr(0)>>63)

func testBufferExact(t *testing.T) {
	b, err := NewBuffer(64)
	if err != nil {
		t.Fatal(err)
	}
	const G = 6
	var counts []int
	var mu sync.Mutex
	seen := make(map[uintptr]int)
	collect := func(vals []uintptr) {
		mu.Lock()
		for _, v := range vals {
			seen[v]++
		}
		mu.Unlock()
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	// Pop's section (cmp2Store) runs too, but seldom gets far enough to
	// be interrupted while the drainer keeps the buffers empty; the root
	// package's scenarios prove its restart path.
	underFire(t, []string{"storeCommit"}, func() {
		go func() {
			defer close(done)
			var out []uintptr
			for {
				select {
				case <-stop:
					return
				default:
				}
				var err error
				if out, err = b.Drain(out[:0]); err != nil {
					t.Error(err)
				}
				collect(out)
				runtime.Gosched()
			}
		}()
		popped := make([][]uintptr, G)
		counts = until(G, func(g, i int) bool {
			v := uintptr(g)<<gShift | uintptr(i) + 1
			for {
				err := b.Push(v)
				if err == nil {
					break
				}
				if !errors.Is(err, ErrFull) {
					t.Errorf("Push: %v", err)
					return false
				}
				runtime.Gosched()
			}
			if i%2 == 0 {
				if e, ok := b.Pop(); ok {
					popped[g] = append(popped[g], e)
				}
			}
			return true
		})
		for _, p := range popped {
			collect(p)
		}
		close(stop)
		<-done
	})
	collect(mustDrain(t, b))
	n := total(counts)
	t.Logf("%d pushes", n)
	if len(seen) != n {
		t.Errorf("%d distinct entries came out, want %d", len(seen), n)
	}
	for v, c := range seen {
		if c != 1 {
			t.Fatalf("entry %#x came out %d times", v, c)
		}
		if g, i := v>>gShift, v&(1<<gShift-1); g >= G || i == 0 || i > uintptr(counts[g]) {
			t.Fatalf("entry %#x was never pushed", v)
		}
	}
	if b.Len() != 0 {
		t.Errorf("Len = %d after the last Drain", b.Len())
	}
}

func TestBufferExact(t *testing.T) {
	testBufferExact(t)
	withLocked(t, testBufferExact)
}

func TestBufferFullAndOrder(t *testing.T) {
	for _, locked := range []bool{false, true} {
		forceLocked.Store(locked)
		b, err := NewBuffer(4)
		forceLocked.Store(false)
		if err != nil {
			t.Fatal(err)
		}
		runtime.LockOSThread()
		// Without other load the thread rarely moves: every Push lands
		// on one CPU's buffer, but a move is possible, so count fulls
		// rather than expect the fifth Push to fail.
		full := 0
		for i := 1; i <= 4*rseqSlots()+1; i++ {
			if err := b.Push(uintptr(i)); errors.Is(err, ErrFull) {
				full++
			} else if err != nil {
				t.Fatal(err)
			}
		}
		runtime.UnlockOSThread()
		if full == 0 {
			t.Errorf("locked=%v: %d pushes into %d buffers of 4 never reported full", locked, 4*rseqSlots()+1, rseqSlots())
		}
		out := mustDrain(t, b)
		if len(out)+full != 4*rseqSlots()+1 {
			t.Errorf("locked=%v: drained %d + %d full, want %d", locked, len(out), full, 4*rseqSlots()+1)
		}
		for i := 1; i < len(out); i++ {
			// One CPU's entries come out in push order; with few moves
			// that holds within runs.
			if out[i] < out[i-1] && i%4 != 0 {
				t.Logf("locked=%v: order %v (the thread moved)", locked, out)
				break
			}
		}
		if _, ok := b.Pop(); ok {
			t.Errorf("locked=%v: Pop after Drain found an entry", locked)
		}
	}
	if _, err := NewBuffer(0); err == nil {
		t.Error("NewBuffer(0) did not fail")
	}
}

// mustDrain drains b, failing the test on an error.
func mustDrain(t *testing.T, b *Buffer) []uintptr {
	t.Helper()
	out, err := b.Drain(nil)
	if err != nil {
		t.Fatal(err)
	}
	return out
}
