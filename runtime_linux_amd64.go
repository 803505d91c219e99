//go:build linux && amd64

package rseq

// The assumptions about the Go runtime that only linux/amd64 makes; the
// shared ones (L1 to L4) are in runtime_linux.go. TestRuntimeAssumptions
// checks both files.
//
//  A1. Without cgo the runtime sets each thread's FS base (arch_prctl
//      ARCH_SET_FS on m0, CLONE_SETTLS for new threads) to &m.tls[1], so
//      that g is at -8(FS) (runtime/sys_linux_amd64.s settls: "ADDQ $8, DI
//      // ELF wants to use -8(FS)"). m.tls[2] is then at 8(FS), one load
//      away: THREAD_SLOT in area_linux_amd64.h. The slot holds the area's
//      offset from the FS base, so that the sections reach the area with
//      FS-relative accesses in own and glibc mode alike; threadSlot and
//      setThreadSlot convert with the FS base they compute from g.m
//      (G_M and M_FS_BASE, checked against the kernel's FS base).
//  A2. With cgo every thread is a pthread and FS is glibc's thread pointer:
//      0(FS) is the TCB's pointer to itself, and glibc's rseq area is at
//      thread pointer + __rseq_offset (a symbol of the dynamic loader).
//      Without cgo 0(FS) is m.tls[1], which the runtime never sets, so the
//      two cases are told apart at run time (processIsCgo).

import (
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// threadSlotOffset is the FS-relative offset of m.tls[2], where the package
// stores the calling thread's area address in own mode. The assembly uses
// the same number (THREAD_SLOT in area_linux_amd64.h).
const threadSlotOffset = mThreadSlotOffset - (mTLSOffset + 8)

// Implemented in tls_linux_amd64.s.
func tlsG() uintptr              // the current g, through the linker's TLS model
func threadSlot() uintptr        // threadSlotOffset(FS)
func setThreadSlot(v uintptr)    // threadSlotOffset(FS) = v
func threadPointer() uintptr     // 0(FS)
func ownFSBase() uintptr         // g.m + M_FS_BASE: the FS base without cgo
func peek64(addr uintptr) uint64 // *(*uint64)(addr) for memory the Go GC does not manage
func peek32(addr uintptr) uint32 // *(*uint32)(addr)
func peek8(addr uintptr) uint8   // *(*uint8)(addr)

// fsBase returns the calling thread's FS base.
func fsBase() (uintptr, error) {
	var base uintptr
	_, _, e := unix.RawSyscall(unix.SYS_ARCH_PRCTL, 0x1003 /* ARCH_GET_FS */, uintptr(unsafe.Pointer(&base)), 0)
	if e != 0 {
		return 0, fmt.Errorf("arch_prctl(ARCH_GET_FS): %w", e)
	}
	return base, nil
}

// processIsCgo reports whether the process runs with cgo (A2): the calling
// thread's FS base belongs to a C library when its first word points to
// itself (glibc's and musl's TCB).
func processIsCgo() (bool, error) {
	base, err := fsBase()
	if err != nil {
		return false, err
	}
	return base != 0 && threadPointer() == base, nil
}

// checkPlatformLayout checks A1 on the calling thread, whose M is m: the FS
// base is &m.tls[1] as the kernel reports it (arch_prctl), which also
// proves the g the linker's TLS model finds (-8(FS)) is m.tls[0].
func checkPlatformLayout(m uintptr) error {
	base, err := fsBase()
	if err != nil {
		return fmt.Errorf("%w (A1): %v", errLayout, err)
	}
	if want := m + mTLSOffset + 8; base != want {
		return fmt.Errorf("%w (A1): FS base is %#x, not &m.tls[1] (%#x): settls changed", errLayout, base, want)
	}
	if base+threadSlotOffset != m+mThreadSlotOffset {
		return fmt.Errorf("%w (A1): THREAD_SLOT(FS) is not m.tls[2]", errLayout)
	}
	if asm := ownFSBase(); asm != base {
		return fmt.Errorf("%w (A1): the assembly finds the FS base at g.m + M_FS_BASE = %#x, not at %#x: G_M or M_FS_BASE (area_linux_amd64.h) disagree with gMOffset or mTLSOffset", errLayout, asm, base)
	}
	return nil
}
