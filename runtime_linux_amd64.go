//go:build linux && amd64

package rseq

// This file holds every assumption the package makes about the Go runtime's
// internals on linux/amd64, checked for Go 1.26 (go1.26.0 to go1.26.8), and
// nothing else. TestRuntimeAssumptions fails, naming the assumption, when a Go
// release breaks one of them.
//
//  1. Without cgo the runtime sets each thread's FS base (arch_prctl
//     ARCH_SET_FS, or CLONE_SETTLS for new threads) to &m.tls[1], so that g
//     is at -8(FS) (runtime/sys_linux_amd64.s: "ADDQ $8, DI // ELF wants to
//     use -8(FS)"). m.tls has tlsSlots = 6 words (runtime/runtime2.go), and on
//     linux/amd64 the runtime uses only m.tls[0]. The package keeps the
//     address of the thread's rseq area in m.tls[2], at threadSlotOffset(FS).
//     A new M is zeroed, so a thread the package has not seen reads 0 there.
//  2. With cgo every thread is a pthread and FS is glibc's thread pointer:
//     0(FS) is the TCB's pointer to itself, and glibc's rseq area is at
//     thread pointer + __rseq_offset (a symbol of the dynamic loader).
//  3. An assembly function is never asynchronously preempted: the runtime
//     treats assembly code as unsafe points, so a goroutine stays on its
//     thread from the first to the last instruction of one.
//
// On any other Go version the package uses the fallback (ModeNone) rather
// than guess; see runtimeVerified.

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// threadSlotOffset is the FS-relative offset of m.tls[2], where the package
// stores the calling thread's area address in own mode. The assembly uses
// the same number (THREAD_SLOT in area_linux_amd64.h).
const threadSlotOffset = 8

// verifiedGoReleases lists the Go release series whose runtime was checked
// against the assumptions above.
var verifiedGoReleases = []string{"go1.26"}

// runtimeVerified reports whether the runtime version v belongs to a
// verified release series.
func runtimeVerified(v string) bool {
	for _, r := range verifiedGoReleases {
		if v == r || strings.HasPrefix(v, r+".") || strings.HasPrefix(v, r+"rc") {
			return true
		}
	}
	return false
}

// Implemented in tls_linux_amd64.s.
func tlsG() uintptr              // the current g, through the linker's TLS model
func threadSlot() uintptr        // threadSlotOffset(FS)
func setThreadSlot(v uintptr)    // threadSlotOffset(FS) = v
func threadPointer() uintptr     // 0(FS)
func peek64(addr uintptr) uint64 // *(*uint64)(addr) for memory the Go GC does not manage
func peek32(addr uintptr) uint32 // *(*uint32)(addr)

// fsBase returns the calling thread's FS base.
func fsBase() (uintptr, error) {
	var base uintptr
	_, _, e := unix.RawSyscall(unix.SYS_ARCH_PRCTL, 0x1003 /* ARCH_GET_FS */, uintptr(unsafe.Pointer(&base)), 0)
	if e != 0 {
		return 0, fmt.Errorf("arch_prctl(ARCH_GET_FS): %w", e)
	}
	return base, nil
}

// threadPointerIsLibc reports whether the calling thread's FS base belongs to
// a C library: its first word points to itself (glibc's and musl's TCB).
// Without cgo the first word is m.tls[1], which the runtime never sets.
func threadPointerIsLibc() (bool, error) {
	base, err := fsBase()
	if err != nil {
		return false, err
	}
	return base != 0 && threadPointer() == base, nil
}

// errLayout is wrapped by every failure of checkGoThreadLayout.
var errLayout = errors.New("an assumption about the Go runtime's thread layout is broken")

// checkGoThreadLayout checks assumption 1 on the calling thread, which must
// be locked to its goroutine and not be a cgo thread. It returns an error
// naming the first assumption that does not hold.
func checkGoThreadLayout() error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	base, err := fsBase()
	if err != nil {
		return fmt.Errorf("%w: %v", errLayout, err)
	}
	if base == 0 {
		return fmt.Errorf("%w: FS base is 0", errLayout)
	}
	if g, atFS := tlsG(), uintptr(peek64(base-8)); g == 0 || g != atFS {
		return fmt.Errorf("%w: g (%#x) is not at -8(FS) (%#x holds %#x)", errLayout, g, base-8, atFS)
	}
	if v := threadSlot(); v != 0 && !ownsArea(v) {
		return fmt.Errorf("%w: m.tls[2] at %d(FS) holds %#x, which is not an area of this package", errLayout, threadSlotOffset, v)
	}
	return nil
}
