package rseq

import (
	"math"
	"sync/atomic"
	"unsafe"
)

// CPUStride is the stride of the per-CPU arrays AddCPU and AddFloat64CPU
// work on: 128 bytes, two cache lines, between the slots.
const CPUStride = 128

// addCPUFallback is AddCPU where the thread has no usable area.
func addCPUFallback(base unsafe.Pointer, n int64) {
	if retryWithSection() {
		AddCPU(base, n)
		return
	}
	countFallback(secAddCPU)
	p := slotWord(base, CPUStride, fallbackSlot(offCPUIDStart))
	mu := fallbackLock(uintptr(p))
	mu.Lock()
	atomic.AddInt64((*int64)(p), n)
	mu.Unlock()
}

// addFloat64CPUFallback is AddFloat64CPU where the thread has no usable area.
func addFloat64CPUFallback(base unsafe.Pointer, x float64) {
	if retryWithSection() {
		AddFloat64CPU(base, x)
		return
	}
	countFallback(secAddFloat64CPU)
	p := (*uint64)(slotWord(base, CPUStride, fallbackSlot(offCPUIDStart)))
	mu := fallbackLock(uintptr(unsafe.Pointer(p)))
	mu.Lock()
	atomic.StoreUint64(p, math.Float64bits(math.Float64frombits(atomic.LoadUint64(p))+x))
	mu.Unlock()
}

// incCPUIfZeroFallback is IncCPUIfZero where the thread has no usable area.
func incCPUIfZeroFallback(base unsafe.Pointer, guard *uintptr) bool {
	if retryWithSection() {
		return IncCPUIfZero(base, guard)
	}
	countFallback(secIncCPUIfZero)
	p := slotWord(base, CPUStride, fallbackSlot(offCPUIDStart))
	mu := fallbackLock(uintptr(p))
	mu.Lock()
	defer mu.Unlock()
	if atomic.LoadUintptr(guard) != 0 {
		return false
	}
	atomic.AddInt64((*int64)(p), 1)
	return true
}

// cmpStoreCPUFallback is CompareAndStoreCPU where the thread has no usable
// area: CompareAndStore's fallback (commitUnderLock, under the word's lock,
// which CompareAndStoreRemote takes too) on the slot the fallback uses.
func cmpStoreCPUFallback(base unsafe.Pointer, stride, expect, new uintptr) (slot int, ok bool) {
	if retryWithSection() {
		return CompareAndStoreCPU(base, stride, expect, new)
	}
	slot = fallbackSlot(offCPUIDStart)
	p := (*uintptr)(slotWord(base, stride, slot))
	return slot, commitUnderLock(secCmpStoreCPU, slot, p, expect, nil, nil, new) == Committed
}
