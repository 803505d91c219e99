//go:build cgo && linux && (amd64 || arm64)

package cgo

import (
	"fmt"
	"os"
	"runtime"
	"sync"
	"testing"

	"github.com/gorseq/rseq"
	"github.com/gorseq/rseq/percpu"
)

func TestMain(m *testing.M) {
	f := rseq.Features()
	fmt.Printf("rseq-info: cgo operations=%v mode=%s reason=%q\n", f.Operations, f.Mode, f.OperationsReason)
	os.Exit(m.Run())
}

func TestCounterExact(t *testing.T) {
	c, err := NewCounter()
	if err != nil {
		t.Skip(err)
	}
	defer c.Free()
	var wg sync.WaitGroup
	const G, n = 4, 1_000_000
	for g := 0; g < G; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; k < 10; k++ {
				c.AddLoop(n / 10)
				runtime.Gosched()
			}
		}()
	}
	wg.Wait()
	if got := c.Load(); got != G*n {
		t.Fatalf("C counter reads %d, want %d", got, G*n)
	}
}

// BenchmarkCounter has the same names as the bench package's: "c" is the
// C counter, "rseq-cgo" percpu.Counter in a process with cgo (glibc's
// areas).
func BenchmarkCounter(b *testing.B) {
	c, err := NewCounter()
	if err != nil {
		b.Skip(err)
	}
	defer c.Free()
	b.Run("single/c", func(b *testing.B) {
		before := c.Load()
		c.AddLoop(b.N)
		if got := c.Load() - before; got != int64(b.N) {
			b.Fatalf("counter moved by %d after %d adds", got, b.N)
		}
	})
	b.Run("parallel/c", func(b *testing.B) {
		// The same work as b.RunParallel: GOMAXPROCS goroutines share
		// b.N adds; each runs its share in one C call.
		before := c.Load()
		p := runtime.GOMAXPROCS(0)
		var wg sync.WaitGroup
		for g := 0; g < p; g++ {
			share := b.N / p
			if g == 0 {
				share += b.N % p
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				c.AddLoop(share)
			}()
		}
		wg.Wait()
		if got := c.Load() - before; got != int64(b.N) {
			b.Fatalf("counter moved by %d after %d adds", got, b.N)
		}
	})
	b.Run("single/rseq-cgo", func(b *testing.B) {
		pc := percpu.NewCounter()
		for b.Loop() {
			pc.Add(1)
		}
	})
	b.Run("parallel/rseq-cgo", func(b *testing.B) {
		pc := percpu.NewCounter()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				pc.Add(1)
			}
		})
	})
}
