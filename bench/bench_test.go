package bench

import (
	"fmt"
	"os"
	"testing"

	"github.com/gorseq/rseq"
	"github.com/gorseq/rseq/internal/benchpeers"
	"github.com/puzpuzpuz/xsync/v3"
)

func TestMain(m *testing.M) {
	f := rseq.Features()
	// A line for `rseq bench`: which state the library was measured in.
	fmt.Printf("rseq-info: operations=%v mode=%s reason=%q\n", f.Operations, f.Mode, f.OperationsReason)
	os.Exit(m.Run())
}

// Each Benchmark runs the standard-library cases of its structure
// (benchpeers, shared with `rseq bench`'s built-in run), then the peers
// that only this module has.

func runCases(b *testing.B, cases []benchpeers.Case) {
	for _, c := range cases {
		b.Run(c.Name, c.F)
	}
}

// The loops below call each implementation's concrete methods, with no
// interface, generic or closure call in the loop, so that what the
// compiler can inline is inlined as it would be in a real program.

func BenchmarkCounter(b *testing.B) {
	runCases(b, benchpeers.Counter())
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
}

// checkCount fails the benchmark if a counter lost or invented adds.
func checkCount(b *testing.B, got int64) {
	if got != int64(b.N) {
		b.Fatalf("counter reads %d after %d adds", got, b.N)
	}
}

func BenchmarkPool(b *testing.B) {
	runCases(b, benchpeers.Pool())
	b.Run("single/chan", func(b *testing.B) {
		p := NewChanPool(64*rseq.PossibleCPUs()+256, benchpeers.NewObject)
		for b.Loop() {
			o := p.Get()
			o.Buf[0]++
			p.Put(o)
		}
	})
	b.Run("parallel/chan", func(b *testing.B) {
		p := NewChanPool(64*rseq.PossibleCPUs()+256, benchpeers.NewObject)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				o := p.Get()
				o.Buf[0]++
				p.Put(o)
			}
		})
	})
}

func BenchmarkValue(b *testing.B) {
	runCases(b, benchpeers.Value())
	b.Run("single/procpin", func(b *testing.B) {
		v := NewPinValue[benchpeers.Stats]()
		var i int64
		for b.Loop() {
			i++
			v.Update(func(s *benchpeers.Stats) { s.Observe(i) })
		}
	})
	b.Run("parallel/procpin", func(b *testing.B) {
		v := NewPinValue[benchpeers.Stats]()
		b.RunParallel(func(pb *testing.PB) {
			var i int64
			for pb.Next() {
				i++
				v.Update(func(s *benchpeers.Stats) { s.Observe(i) })
			}
		})
	})
}
