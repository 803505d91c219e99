package percpu

import (
	"runtime"
	"sync/atomic"
	"testing"
	"unsafe"

	"github.com/gorseq/rseq"
)

// pair is updated in two steps with work between them, so a reader or
// updater that got in while another held the lock would see a != b.
type pair struct {
	a, b  int64
	hist  map[int]int
	calls int64
}

func testValueExact(t *testing.T) {
	v := NewValue(func(p *pair) { p.hist = map[int]int{} })
	const G = 6
	var counts []int
	var moved atomic.Int64 // taken out of the shards by the reader
	var bad atomic.Int64
	stop := make(chan struct{})
	done := make(chan struct{})
	underFire(t, []string{"cmpStoreCPU"}, func() {
		go func() {
			// A reader that checks every shard and empties some.
			defer close(done)
			for k := 0; ; k++ {
				select {
				case <-stop:
					return
				default:
				}
				err := v.Range(func(p *pair) {
					if p.a != p.b {
						bad.Add(1)
					}
					if k%3 == 0 {
						moved.Add(p.a)
						p.a, p.b = 0, 0
					}
				})
				if err != nil {
					t.Error(err)
					return
				}
			}
		}()
		counts = until(G, func(g, i int) bool {
			v.Update(func(p *pair) {
				if p.a != p.b {
					bad.Add(1)
				}
				p.a++
				p.hist[i%7]++
				p.calls++
				p.b++
			})
			return true
		})
		close(stop)
		<-done
	})
	n := total(counts)
	t.Logf("%d updates", n)
	if bad.Load() != 0 {
		t.Errorf("%d times a shard was seen mid-update: the per-CPU lock let two holders in", bad.Load())
	}
	total := mustMerge(t, v, func(acc *pair, p *pair) {
		acc.a += p.a
		acc.calls += p.calls
	})
	if got, want := total.a+moved.Load(), int64(n); got != want {
		t.Fatalf("updates counted %d, want %d", got, want)
	}
	if total.calls != int64(n) {
		t.Fatalf("calls %d, want %d", total.calls, n)
	}
	hist := mustMerge(t, v, func(acc *map[int]int, p *pair) {
		if *acc == nil {
			*acc = map[int]int{}
		}
		for k, c := range p.hist {
			(*acc)[k] += c
		}
	})
	sum := 0
	for _, c := range hist {
		sum += c
	}
	if sum != n {
		t.Fatalf("histogram holds %d entries, want %d", sum, n)
	}
}

func TestValueExact(t *testing.T) {
	testValueExact(t)
	withLocked(t, testValueExact)
}

func TestValueZeroInit(t *testing.T) {
	v := NewValue[int](nil)
	v.Update(func(p *int) { *p += 5 })
	if got := mustMerge(t, v, func(acc *int, p *int) { *acc += *p }); got != 5 {
		t.Fatalf("sum %d, want 5", got)
	}
	shards := 0
	if err := v.Range(func(*int) { shards++ }); err != nil {
		t.Fatal(err)
	}
	if shards != rseqSlots() {
		t.Fatalf("Range visited %d shards, want %d", shards, rseqSlots())
	}
}

// mustMerge is Merge, failing the test on an error.
func mustMerge[T, R any](t *testing.T, v *Value[T], merge func(acc *R, shard *T)) R {
	t.Helper()
	r, err := Merge(v, merge)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestValueRangeRequestsSlice: Range holds each shard's lock under a
// time-slice extension request where the kernel offers them (a nested
// request, which the package refuses while one is pending, fails inside
// f), and under none elsewhere.
func TestValueRangeRequestsSlice(t *testing.T) {
	runtime.LockOSThread() // the request belongs to the thread
	defer runtime.UnlockOSThread()
	avail, _ := rseq.SliceAvailable()
	v := NewValue[int](nil)
	v.Update(func(x *int) { *x++ })
	// The kernel clears a request when it schedules the thread out, so a
	// nested request can succeed now and then where Range made one: one
	// shard seen refusing it is enough.
	refused, made := 0, 0
	for try := 0; try < 20 && refused == 0; try++ {
		if err := v.Range(func(*int) {
			s := rseq.SliceRequest()
			if s.Requested() {
				made++
			} else {
				refused++
			}
			s.End()
		}); err != nil {
			t.Fatal(err)
		}
	}
	if avail && refused == 0 {
		t.Fatalf("inside Range's f a nested slice request was made %d times: Range made no request", made)
	}
	if !avail && made != 0 {
		t.Fatalf("%d slice requests made where SliceAvailable is false", made)
	}
	t.Logf("extension available %v: nested requests refused %d, made %d", avail, refused, made)
}

// TestValueStateOwnLines: the fields every Update loads are a cache line
// away from either end of their allocation, so that no object the
// allocator puts beside it shares their lines (a testing.PB there, which
// another goroutine writes at every iteration, made Update on two
// goroutines cost 16-17 ns instead of 7 in some benchmark runs).
func TestValueStateOwnLines(t *testing.T) {
	var st valueState[pair]
	first, last := unsafe.Offsetof(st.shards), unsafe.Offsetof(st.fenced)
	if first < line || unsafe.Sizeof(st)-(last+1) < line {
		t.Errorf("valueState: shards at %d, fenced at %d, size %d: want %d bytes before and after them", first, last, unsafe.Sizeof(st), line)
	}
}
