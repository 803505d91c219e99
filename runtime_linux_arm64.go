//go:build linux && arm64

package rseq

// The assumptions about the Go runtime that only linux/arm64 makes; the
// shared ones (L1 to L4) are in runtime_linux.go. TestRuntimeAssumptions
// checks both files.
//
//  B1. g is in R28 whenever Go code runs (the assembler calls it g).
//      Without cgo the runtime never uses TPIDR_EL0 (runtime·load_g and
//      save_g return at once when runtime·iscgo is false), and its clone
//      passes no CLONE_SETTLS, so a new thread inherits its creator's
//      TPIDR_EL0: the thread pointer proves nothing about the thread. The
//      package therefore reaches its per-thread slot through g.m (L1),
//      which is the calling thread's own M: g.m.tls[2], two loads.
//  B2. runtime.iscgo says whether the process runs with cgo. It is a
//      variable the runtime exports by linkname ("Do not remove or change
//      the type signature", go.dev/issue/67401). With cgo every thread is
//      a pthread, TPIDR_EL0 is glibc's thread pointer, and glibc's rseq
//      area is at TPIDR_EL0 + __rseq_offset. A PIE binary without cgo has
//      glibc's thread pointer in TPIDR_EL0 on every thread (inherited from
//      the main thread, which the dynamic loader set up): the thread
//      pointer cannot tell cgo apart, iscgo can.

import (
	"errors"
	_ "unsafe" // for go:linkname
)

//go:linkname runtimeIsCgo runtime.iscgo
var runtimeIsCgo bool

// Implemented in tls_linux_arm64.s.
func tlsG() uintptr              // the current g (R28)
func threadSlot() uintptr        // g.m.tls[2]
func setThreadSlot(v uintptr)    // g.m.tls[2] = v
func threadPointer() uintptr     // TPIDR_EL0
func peek64(addr uintptr) uint64 // *(*uint64)(addr) for memory the Go GC does not manage
func peek32(addr uintptr) uint32 // *(*uint32)(addr)
func peek8(addr uintptr) uint8   // *(*uint8)(addr)

// processIsCgo reports whether the process runs with cgo (B2). With cgo
// the thread pointer must be glibc's: a zero TPIDR_EL0 would put the area
// at __rseq_offset from address 0.
func processIsCgo() (bool, error) {
	if runtimeIsCgo && threadPointer() == 0 {
		return true, errors.New("the process runs with cgo but TPIDR_EL0 is 0: no C library thread pointer")
	}
	return runtimeIsCgo, nil
}

// checkPlatformLayout has nothing to add on arm64: the slot is reached
// through g.m alone, which checkMLayout has checked.
func checkPlatformLayout(m uintptr) error { return nil }
