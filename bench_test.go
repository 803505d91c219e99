//go:build linux

package rseq_test

import (
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"unsafe"

	"github.com/gorseq/rseq"
	"golang.org/x/sys/unix"
)

var sink int

// BenchmarkCPU compares the ways Go code can learn its CPU number: the rseq
// area, and the getcpu system call (raw, and through the runtime's
// entersyscall path as syscall.Syscall does).
func BenchmarkCPU(b *testing.B) {
	b.Run("rseq", func(b *testing.B) {
		s := 0
		for b.Loop() {
			s += rseq.CPU()
		}
		sink = s
	})
	b.Run("getcpu-rawsyscall", func(b *testing.B) {
		var c, n uint32
		for b.Loop() {
			unix.RawSyscall(unix.SYS_GETCPU, uintptr(unsafe.Pointer(&c)), uintptr(unsafe.Pointer(&n)), 0)
		}
	})
	b.Run("getcpu-syscall", func(b *testing.B) {
		var c, n uint32
		for b.Loop() {
			unix.Syscall(unix.SYS_GETCPU, uintptr(unsafe.Pointer(&c)), uintptr(unsafe.Pointer(&n)), 0)
		}
	})
}

type paddedCounter struct {
	n int64
	_ [120]byte
}

// BenchmarkAdd compares rseq.Add on per-CPU slots with atomic.AddInt64 on
// one shared word, with one goroutine and with RunParallel.
func BenchmarkAdd(b *testing.B) {
	slots := make([]paddedCounter, rseq.Slots())
	base, stride := unsafe.Pointer(&slots[0]), unsafe.Sizeof(slots[0])
	var shared atomic.Int64
	b.Run("rseq", func(b *testing.B) {
		for b.Loop() {
			rseq.Add(base, stride, rseq.ByCPU, 1)
		}
	})
	b.Run("atomic", func(b *testing.B) {
		for b.Loop() {
			shared.Add(1)
		}
	})
	b.Run("rseq-parallel", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				rseq.Add(base, stride, rseq.ByCPU, 1)
			}
		})
	})
	b.Run("atomic-parallel", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				shared.Add(1)
			}
		})
	})
}

type paddedUintptr struct {
	v uintptr
	_ [120]byte
}

// BenchmarkOps measures each operation against its closest atomic
// equivalent, on one goroutine and with RunParallel (one shared word for the
// atomic peers, the per-CPU slot for the operations).
func BenchmarkOps(b *testing.B) {
	words := make([]paddedUintptr, rseq.Slots())
	gates := make([]paddedUintptr, rseq.Slots())
	var shared, shared2 atomic.Uintptr
	targets := make([]paddedCounter, rseq.Slots())
	ptrs := make([]paddedUintptr, rseq.Slots())
	for i := range ptrs {
		ptrs[i].v = uintptr(unsafe.Pointer(&targets[i]))
	}
	var sharedTarget atomic.Int64
	sharedPtr := &sharedTarget

	incr := func(ix rseq.Index) {
		for {
			s := ix.Slot()
			old := words[s].v
			if rseq.CompareAndStore(ix, s, &words[s].v, old, old+1) == rseq.Committed {
				return
			}
		}
	}
	incr2 := func() {
		for {
			s := rseq.ByCPU.Slot()
			old := words[s].v
			if rseq.CompareBothAndStore(rseq.ByCPU, s, &words[s].v, old, &gates[s].v, 0, old+1) == rseq.Committed {
				return
			}
		}
	}
	var spec [128]paddedUintptr
	store := func() {
		for {
			s := rseq.ByCPU.Slot()
			old := words[s].v
			if rseq.StoreThenCommit(rseq.ByCPU, s, &words[s].v, old, &spec[s&127].v, old, old+1) == rseq.Committed {
				return
			}
		}
	}
	var src, dst [64]byte
	copy64 := func() {
		for {
			s := rseq.ByCPU.Slot()
			old := words[s].v
			if rseq.CopyThenCommit(rseq.ByCPU, s, &words[s].v, old, unsafe.Pointer(&dst), unsafe.Pointer(&src), 64, old+1) == rseq.Committed {
				return
			}
		}
	}
	var mu sync.Mutex
	cases := []struct {
		name string
		op   func()
	}{
		{"AddIndirect/rseq", func() { rseq.AddIndirect(unsafe.Pointer(&ptrs[0]), 128, rseq.ByCPU, 0, 1) }},
		{"AddIndirect/atomic", func() { sharedPtr.Add(1) }},
		{"CompareAndStore/rseq", func() { incr(rseq.ByCPU) }},
		{"CompareAndStore/rseq-cid", func() { incr(rseq.ByConcurrencyID) }},
		{"CompareAndStore/atomic-cas", func() {
			for {
				old := shared.Load()
				if shared.CompareAndSwap(old, old+1) {
					return
				}
			}
		}},
		{"CompareBothAndStore/rseq", incr2},
		{"CompareBothAndStore/atomic", func() {
			for {
				old := shared.Load()
				if shared2.Load() == 0 && shared.CompareAndSwap(old, old+1) {
					return
				}
			}
		}},
		{"StoreThenCommit/rseq", store},
		{"StoreThenCommit/atomic", func() {
			for {
				old := shared.Load()
				shared2.Store(old)
				if shared.CompareAndSwap(old, old+1) {
					return
				}
			}
		}},
		{"CopyThenCommit64/rseq", copy64},
		{"CopyThenCommit64/mutex", func() {
			mu.Lock()
			dst = src
			shared.Store(shared.Load() + 1)
			mu.Unlock()
		}},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				c.op()
			}
		})
		b.Run(c.name+"-parallel", func(b *testing.B) {
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					c.op()
				}
			})
		})
	}
	// Pop then push back: the per-CPU list against a mutex-protected list.
	type node struct {
		next uintptr
		_    [56]byte
	}
	nodes := make([]node, 64*rseq.Slots())
	heads := make([]paddedUintptr, rseq.Slots())
	for i := range nodes {
		s := i % rseq.Slots()
		nodes[i].next = heads[s].v
		heads[s].v = uintptr(unsafe.Pointer(&nodes[i]))
	}
	popPush := func() {
		_, h, ok := rseq.Pop(unsafe.Pointer(&heads[0]), 128, rseq.ByCPU, 0, 0)
		if !ok {
			return
		}
		n := (*node)(unsafe.Add(unsafe.Pointer(&nodes[0]), h-uintptr(unsafe.Pointer(&nodes[0]))))
		for {
			s := rseq.ByCPU.Slot()
			old := heads[s].v
			n.next = old
			if rseq.CompareAndStore(rseq.ByCPU, s, &heads[s].v, old, h) == rseq.Committed {
				return
			}
		}
	}
	var list []int
	for i := range 64 {
		list = append(list, i)
	}
	mutexPopPush := func() {
		mu.Lock()
		x := list[len(list)-1]
		list = list[:len(list)-1]
		mu.Unlock()
		mu.Lock()
		list = append(list, x)
		mu.Unlock()
	}
	// A handle cycle, what percpu.Pool does for Get and Put: take a full
	// handle and its object, claim a free one, store the object, put it.
	const handleCap = 64
	handleStride := uintptr(8 + handleCap*4 + 56)
	handleMem := make([]uint64, uintptr(rseq.Slots())*handleStride/8)
	handleBase := unsafe.Pointer(&handleMem[0])
	objects := make([]*node, handleCap*rseq.Slots())
	for s := 0; s < rseq.Slots(); s++ {
		hs := unsafe.Slice((*uint32)(unsafe.Add(handleBase, uintptr(s)*handleStride+8)), handleCap)
		for k := range hs {
			h := s*handleCap + k
			hs[k] = uint32(h)
			objects[h] = &nodes[h]
		}
		*(*uint64)(unsafe.Add(handleBase, uintptr(s)*handleStride)) = handleCap | handleCap<<32 // all full
	}
	handles := rseq.NewHandleArray(handleBase, handleStride, rseq.ByCPU, unsafe.Pointer(&objects[0]), handleCap)
	handleCycle := func() {
		v := rseq.TakeHandle(&handles)
		if v == nil {
			return
		}
		_, h, ok := rseq.ClaimHandle(&handles)
		if !ok {
			return // moved to a CPU with no free handle: v is lost here
		}
		objects[h] = (*node)(v)
		rseq.PutHandle(&handles, h)
	}
	for _, c := range []struct {
		name string
		op   func()
	}{{"PopPush/rseq", popPush}, {"PopPush/mutex", mutexPopPush}, {"TakeClaimPut/rseq", handleCycle}} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				c.op()
			}
		})
		b.Run(c.name+"-parallel", func(b *testing.B) {
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					c.op()
				}
			})
		})
	}
	runtime.KeepAlive(nodes)
	runtime.KeepAlive(targets)
}
