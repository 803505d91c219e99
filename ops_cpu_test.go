//go:build linux

package rseq_test

import (
	"math"
	"sync/atomic"
	"testing"
	"unsafe"

	"github.com/gorseq/rseq"
)

// TestParamAddCPU is the per-CPU increment scenario for the specialised
// sections of per-CPU counters: AddCPU (int64) and AddFloat64CPU (float64,
// integer-valued so that the sum is exact), under fire, exact.
func TestParamAddCPU(t *testing.T) {
	if lineSize != rseq.CPUStride {
		t.Fatalf("lineSize %d, CPUStride %d", lineSize, rseq.CPUStride)
	}
	t.Run("int64", func(t *testing.T) {
		slots := make([]paddedInt, rseq.Slots())
		var want int64
		batches := scenario(t, []string{"addCPU"}, func(workers, n int) {
			parallel(workers, func(w int) {
				for i := range n {
					rseq.AddCPU(unsafe.Pointer(&slots[0]), int64(1+i&1))
				}
			})
			want += int64(workers * (n + n/2))
		})
		var got int64
		for i := range slots {
			got += atomic.LoadInt64(&slots[i].n)
		}
		if got != want {
			t.Fatalf("sum %d after %d batches, want %d (lost or doubled %d)", got, batches, want, want-got)
		}
	})
	t.Run("float64", func(t *testing.T) {
		slots := make([]paddedInt, rseq.Slots())
		var want float64
		batches := scenario(t, []string{"addFloat64CPU"}, func(workers, n int) {
			parallel(workers, func(w int) {
				for i := range n {
					rseq.AddFloat64CPU(unsafe.Pointer(&slots[0]), 0.5+float64(i&1))
				}
			})
			want += float64(workers * n) // 0.5 and 1.5 alternate
		})
		var got float64
		for i := range slots {
			got += math.Float64frombits(uint64(atomic.LoadInt64(&slots[i].n)))
		}
		if got != want {
			t.Fatalf("sum %v after %d batches, want %v", got, batches, want)
		}
	})
}
