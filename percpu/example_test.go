package percpu_test

import (
	"expvar"
	"fmt"
	"sort"
	"sync"

	"github.com/gorseq/rseq/percpu"
)

func ExampleCounter() {
	requests := percpu.NewCounter()
	if expvar.Get("example_requests") == nil { // publish once per process
		expvar.Publish("example_requests", requests) // served at /debug/vars
	}

	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 1000; i++ {
				requests.Inc()
			}
		}()
	}
	wg.Wait()
	fmt.Println(requests.Load())
	fmt.Println(requests.Reset(), requests.Load())
	// Output:
	// 4000
	// 4000 0
}

func ExampleValue() {
	// A latency histogram: each CPU updates its own buckets under a
	// per-CPU lock; a reader merges them.
	type histogram struct{ buckets [4]int }
	h := percpu.NewValue[histogram](nil)

	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 100; i++ {
				h.Update(func(s *histogram) { s.buckets[i%4]++ })
			}
		}()
	}
	wg.Wait()
	total, err := percpu.Merge(h, func(acc *histogram, s *histogram) {
		for i, n := range s.buckets {
			acc.buckets[i] += n
		}
	})
	if err != nil {
		fmt.Println(err) // membarrier refused after h was made
	}
	fmt.Println(total.buckets)
	// Output: [100 100 100 100]
}

func ExamplePool() {
	// Buffers that stay pooled across garbage collections.
	type buffer struct{ b []byte }
	pool, err := percpu.NewPool(64, 256, func() *buffer {
		return &buffer{b: make([]byte, 0, 4096)}
	})
	if err != nil {
		panic(err)
	}
	buf := pool.Get()
	buf.b = append(buf.b[:0], "hello"...)
	fmt.Println(string(buf.b), cap(buf.b))
	pool.Put(buf)
	// Output: hello 4096
}

func ExampleBuffer() {
	b, err := percpu.NewBuffer(128)
	if err != nil {
		panic(err)
	}
	for i := uintptr(1); i <= 5; i++ {
		if err := b.Push(i * 10); err != nil {
			fmt.Println(err) // percpu.ErrFull: drain and retry
		}
	}
	got, err := b.Drain(nil)
	if err != nil {
		fmt.Println(err) // membarrier refused after b was made
	}
	sort.Slice(got, func(i, j int) bool { return got[i] < got[j] })
	fmt.Println(got)
	// Output: [10 20 30 40 50]
}

func ExampleLog() {
	l, err := percpu.NewLog(4096, 0) // variable-size records
	if err != nil {
		panic(err)
	}
	for _, ev := range []string{"open", "read", "close"} {
		if err := l.Append([]byte(ev)); err != nil {
			fmt.Println(err)
		}
	}
	var events []string
	err = l.Drain(func(cpu int, rec []byte) {
		events = append(events, string(rec)) // rec is only valid here
	})
	if err != nil {
		panic(err)
	}
	sort.Strings(events)
	fmt.Println(events)
	// Output: [close open read]
}

func ExampleUint64Counter() {
	bytesSent := percpu.NewUint64Counter()
	for _, n := range []uint64{512, 1024, 2048} {
		bytesSent.Add(n)
	}
	fmt.Println(bytesSent.Load())
	// Output: 3584
}

func ExampleFloat64Counter() {
	seconds := percpu.NewFloat64Counter()
	seconds.Add(0.25)
	seconds.Add(1.5)
	fmt.Println(seconds.Load(), seconds.Swap(0), seconds.Load())
	// Output: 1.75 1.75 0
}

func ExampleHistogram() {
	// Request latencies in seconds, in Prometheus' default buckets.
	latency, err := percpu.NewHistogram([]float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10})
	if err != nil {
		panic(err)
	}
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, d := range []float64{0.003, 0.02, 0.02, 0.3, 12} {
				latency.Observe(d) // one restartable section, no atomic instruction
			}
		}()
	}
	wg.Wait()
	s, err := latency.Snapshot() // one membarrier fence per CPU that observed
	if err != nil {
		fmt.Println(err) // membarrier refused after latency was made
	}
	fmt.Println(s.Count, s.Counts)
	fmt.Println(s.Cumulative())
	fmt.Printf("%.2f\n", s.Sum)
	// Output:
	// 20 [4 0 8 0 0 0 4 0 0 0 0 4]
	// [4 4 12 12 12 12 16 16 16 16 16 20]
	// 49.37
}
