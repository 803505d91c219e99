//go:build !linux || !(amd64 || arm64)

package rseq

import (
	"fmt"
	"runtime"
	"unsafe"
)

// On every platform but linux/amd64 and linux/arm64 the package runs its fallback: ids from
// getcpu (Linux) and per-CPU operations under the fallback's locks.

var features = Support{
	Reason:           fmt.Sprintf("restartable sequences are implemented for linux/amd64 and linux/arm64; %s/%s uses the fallback", runtime.GOOS, runtime.GOARCH),
	FeatureSize:      20,
	Alignment:        32,
	Signature:        Signature,
	OperationsReason: "rseq is not usable on " + runtime.GOOS + "/" + runtime.GOARCH,
	GoVersion:        runtime.Version(),
}

func currentArea() uintptr             { return 0 }
func ensureArea() uintptr              { return 0 }
func areaField(uintptr) (uint32, bool) { return 0, false }
func slotOf(field uintptr) int         { return slotSlow(field) }

// AreaAddress returns 0: no thread has an rseq area on this platform.
func AreaAddress() uintptr { return 0 }

// Sections returns nil: the package has no restartable sections on this
// platform.
func Sections() []Section { return nil }

func addSection(base unsafe.Pointer, stride, field uintptr, n int64) int {
	return addFallback(base, stride, field, n)
}
func addIndirectSection(base unsafe.Pointer, stride, field, off uintptr, n int64) int {
	return addIndirectFallback(base, stride, field, off, n)
}
func popSection(base unsafe.Pointer, stride, field, empty, nextOff uintptr) (int, uintptr, bool) {
	return popFallback(base, stride, field, empty, nextOff)
}
func cmpStoreSection(field uintptr, slot int, v *uintptr, expect, new uintptr) Status {
	return cmpStoreFallback(field, slot, v, expect, new)
}
func cmp2StoreSection(field uintptr, slot int, v *uintptr, expect uintptr, v2 *uintptr, expect2, new uintptr) Status {
	return cmp2StoreFallback(field, slot, v, expect, v2, expect2, new)
}
func storeCommitSection(field uintptr, slot int, v *uintptr, expect uintptr, v2 *uintptr, new2, new uintptr) Status {
	return storeCommitFallback(field, slot, v, expect, v2, new2, new)
}
func copyCommitSection(field uintptr, slot int, v *uintptr, expect uintptr, dst, src unsafe.Pointer, n uintptr, new uintptr) Status {
	return copyCommitFallback(field, slot, v, expect, dst, src, n, new)
}

// TakeHandle is documented in handles_linux_asm.go; here it is the
// fallback.
func TakeHandle(a *HandleArray) (v unsafe.Pointer) { return takeHandleFallback(a) }

// ClaimHandle is documented in handles_linux_asm.go; here it is the
// fallback.
func ClaimHandle(a *HandleArray) (slot int, h uint32, ok bool) { return claimHandleFallback(a) }

// PutHandle is documented in handles_linux_asm.go; here it is the
// fallback.
func PutHandle(a *HandleArray, h uint32) (slot int, ok bool) { return putHandleFallback(a, h) }

// AddCPU is documented in ops_cpu_asm.go; here it is the fallback.
func AddCPU(base unsafe.Pointer, n int64) { addCPUFallback(base, n) }

// AddFloat64CPU is documented in ops_cpu_asm.go; here it is the fallback.
func AddFloat64CPU(base unsafe.Pointer, x float64) { addFloat64CPUFallback(base, x) }

// IncCPUIfZero is documented in ops_cpu_asm.go; here it is the fallback.
func IncCPUIfZero(base unsafe.Pointer, guard *uintptr) bool {
	return incCPUIfZeroFallback(base, guard)
}

// CompareAndStoreCPU is documented in ops_cpu_asm.go; here it is the
// fallback.
func CompareAndStoreCPU(base unsafe.Pointer, stride, expect, new uintptr) (slot int, ok bool) {
	return cmpStoreCPUFallback(base, stride, expect, new)
}

// RestoreHandle is documented in handles_linux_asm.go; here it is the
// fallback.
func RestoreHandle(a *HandleArray, v unsafe.Pointer) (ok bool) { return restoreHandleFallback(a, v) }
