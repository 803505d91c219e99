package bench

import (
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"unsafe"

	"github.com/gorseq/rseq"
	"github.com/gorseq/rseq/percpu"
	"github.com/puzpuzpuz/xsync/v3"
)

func TestMain(m *testing.M) {
	f := rseq.Features()
	// A line for `rseq bench`: which state the library was measured in.
	fmt.Printf("rseq-info: operations=%v mode=%s reason=%q\n", f.Operations, f.Mode, f.OperationsReason)
	os.Exit(m.Run())
}

// The benchmark loops call each implementation's concrete methods, with
// no interface, generic or closure call in the loop, so that what the
// compiler can inline is inlined as it would be in a real program.

func BenchmarkCounter(b *testing.B) {
	b.Run("single/rseq", func(b *testing.B) {
		c := percpu.NewCounter()
		for b.Loop() {
			c.Add(1)
		}
		checkCount(b, c.Load())
	})
	b.Run("parallel/rseq", func(b *testing.B) {
		c := percpu.NewCounter()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				c.Add(1)
			}
		})
		checkCount(b, c.Load())
	})
	b.Run("single/atomic", func(b *testing.B) {
		var c atomic.Int64
		for b.Loop() {
			c.Add(1)
		}
		checkCount(b, c.Load())
	})
	b.Run("parallel/atomic", func(b *testing.B) {
		var c atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				c.Add(1)
			}
		})
		checkCount(b, c.Load())
	})
	b.Run("single/procpin", func(b *testing.B) {
		c := NewPinCounter()
		for b.Loop() {
			c.Add(1)
		}
		checkCount(b, c.Load())
	})
	b.Run("parallel/procpin", func(b *testing.B) {
		c := NewPinCounter()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				c.Add(1)
			}
		})
		checkCount(b, c.Load())
	})
	b.Run("single/xsync", func(b *testing.B) {
		c := xsync.NewCounter()
		for b.Loop() {
			c.Add(1)
		}
		checkCount(b, c.Value())
	})
	b.Run("parallel/xsync", func(b *testing.B) {
		c := xsync.NewCounter()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				c.Add(1)
			}
		})
		checkCount(b, c.Value())
	})
	// Not a counter: an empty assembly function of Counter.Add's call
	// shape (rseq.AddCPU's: base and n, no result), called in the same
	// loops. It is the least that Counter.Add can cost.
	var slots [2][128]byte
	base := unsafe.Pointer(&slots[0])
	b.Run("single/asmcall", func(b *testing.B) {
		for b.Loop() {
			asmFloorAddCPU(base, 1)
		}
	})
	b.Run("parallel/asmcall", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				asmFloorAddCPU(base, 1)
			}
		})
	})
	// The shape of rseq.Add (four arguments and a result), for comparison.
	b.Run("single/asmcall-add", func(b *testing.B) {
		for b.Loop() {
			asmFloor(base, 128, 4, 1)
		}
	})
}

// checkCount fails the benchmark if a counter lost or invented adds.
func checkCount(b *testing.B, got int64) {
	if got != int64(b.N) {
		b.Fatalf("counter reads %d after %d adds", got, b.N)
	}
}

type object struct {
	buf [64]byte
}

func BenchmarkPool(b *testing.B) {
	newObj := func() *object { return new(object) }
	b.Run("single/rseq", func(b *testing.B) {
		p, err := percpu.NewPool(64, 256, newObj)
		if err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			o := p.Get()
			o.buf[0]++
			p.Put(o)
		}
	})
	b.Run("parallel/rseq", func(b *testing.B) {
		p, err := percpu.NewPool(64, 256, newObj)
		if err != nil {
			b.Fatal(err)
		}
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				o := p.Get()
				o.buf[0]++
				p.Put(o)
			}
		})
	})
	b.Run("single/syncpool", func(b *testing.B) {
		p := &sync.Pool{New: func() any { return newObj() }}
		for b.Loop() {
			o := p.Get().(*object)
			o.buf[0]++
			p.Put(o)
		}
	})
	b.Run("parallel/syncpool", func(b *testing.B) {
		p := &sync.Pool{New: func() any { return newObj() }}
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				o := p.Get().(*object)
				o.buf[0]++
				p.Put(o)
			}
		})
	})
	// Not a pool: empty assembly functions of the call shapes of Get's
	// section and Put's two (TakeHandle, ClaimHandle, PutHandle), called in
	// the same loops: the least a Get+Put of three sections can cost.
	var slots [2][128]byte
	base := unsafe.Pointer(&slots[0])
	table := unsafe.Pointer(&slots[1])
	floorGetPut := func() {
		asmFloorTake(base, 128, 0, table)
		_, h, _ := asmFloorClaim(base, 128, 0, 64)
		asmFloorPut(base, 128, 0, h)
	}
	b.Run("single/asmcall", func(b *testing.B) {
		for b.Loop() {
			floorGetPut()
		}
	})
	b.Run("parallel/asmcall", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				floorGetPut()
			}
		})
	})
	b.Run("single/chan", func(b *testing.B) {
		p := NewChanPool(64*rseq.PossibleCPUs()+256, newObj)
		for b.Loop() {
			o := p.Get()
			o.buf[0]++
			p.Put(o)
		}
	})
	b.Run("parallel/chan", func(b *testing.B) {
		p := NewChanPool(64*rseq.PossibleCPUs()+256, newObj)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				o := p.Get()
				o.buf[0]++
				p.Put(o)
			}
		})
	})
}

// stats is the T of the Value benchmarks: a few counters updated
// together, as a histogram or an accumulator would be.
type stats struct {
	n, sum, max int64
}

func (s *stats) observe(v int64) {
	s.n++
	s.sum += v
	if v > s.max {
		s.max = v
	}
}

func BenchmarkValue(b *testing.B) {
	b.Run("single/rseq", func(b *testing.B) {
		v := percpu.NewValue[stats](nil)
		var i int64
		for b.Loop() {
			i++
			v.Update(func(s *stats) { s.observe(i) })
		}
	})
	b.Run("parallel/rseq", func(b *testing.B) {
		v := percpu.NewValue[stats](nil)
		b.RunParallel(func(pb *testing.PB) {
			var i int64
			for pb.Next() {
				i++
				v.Update(func(s *stats) { s.observe(i) })
			}
		})
	})
	b.Run("single/mutex", func(b *testing.B) {
		var v MutexValue[stats]
		var i int64
		for b.Loop() {
			i++
			v.Update(func(s *stats) { s.observe(i) })
		}
	})
	b.Run("parallel/mutex", func(b *testing.B) {
		var v MutexValue[stats]
		b.RunParallel(func(pb *testing.PB) {
			var i int64
			for pb.Next() {
				i++
				v.Update(func(s *stats) { s.observe(i) })
			}
		})
	})
	b.Run("single/procpin", func(b *testing.B) {
		v := NewPinValue[stats]()
		var i int64
		for b.Loop() {
			i++
			v.Update(func(s *stats) { s.observe(i) })
		}
	})
	b.Run("parallel/procpin", func(b *testing.B) {
		v := NewPinValue[stats]()
		b.RunParallel(func(pb *testing.PB) {
			var i int64
			for pb.Next() {
				i++
				v.Update(func(s *stats) { s.observe(i) })
			}
		})
	})
}
