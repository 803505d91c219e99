package rseq_test

import (
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
