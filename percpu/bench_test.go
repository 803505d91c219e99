package percpu

import (
	"sync/atomic"
	"testing"
)

// Benchmarks of each structure alone; the comparisons with other Go
// approaches live in the separate bench module (see `rseq bench`).

func BenchmarkCounterAdd(b *testing.B) {
	c := NewCounter()
	for b.Loop() {
		c.Add(1)
	}
}

func BenchmarkCounterAddParallel(b *testing.B) {
	c := NewCounter()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			c.Add(1)
		}
	})
}

func BenchmarkAtomicAdd(b *testing.B) {
	var c atomic.Int64
	for b.Loop() {
		c.Add(1)
	}
}

func BenchmarkCounterLoad(b *testing.B) {
	c := NewCounter()
	c.Add(1)
	for b.Loop() {
		c.Load()
	}
}

func BenchmarkPoolGetPut(b *testing.B) {
	p, _ := NewPool[[64]byte](64, 0, nil)
	for b.Loop() {
		p.Put(p.Get())
	}
}

func BenchmarkValueUpdate(b *testing.B) {
	v := NewValue[int64](nil)
	for b.Loop() {
		v.Update(func(p *int64) { *p++ })
	}
}

func BenchmarkBufferPushPop(b *testing.B) {
	buf, _ := NewBuffer(64)
	for b.Loop() {
		buf.Push(1)
		buf.Pop()
	}
}

func BenchmarkLogAppend(b *testing.B) {
	for _, size := range []int{0, 32} {
		name := "variable"
		if size > 0 {
			name = "fixed32"
		}
		b.Run(name, func(b *testing.B) {
			l, _ := NewLog(1<<16, size)
			rec := make([]byte, 32)
			for b.Loop() {
				if l.Append(rec) == ErrFull {
					l.Drain(func(int, []byte) {})
				}
			}
		})
	}
}

func BenchmarkRawAdd(b *testing.B) {
	mem, base := words(rseqSlots(), line)
	_ = mem
	for b.Loop() {
		rseqAdd(base)
	}
}
