//go:build linux && (amd64 || arm64)

package rseq

// This file and runtime_linux_GOARCH.go hold every assumption the package
// makes about the Go runtime's internals, and nothing else. This file has
// what linux/amd64 and linux/arm64 share: the Go releases checked, and the
// layout of the runtime's g and m structures that own mode relies on.
// TestRuntimeAssumptions reads the runtime's sources (of the toolchain that
// built the test) and the live structures of the running threads, and fails
// naming the assumption that a Go release breaks.
//
// Verified for Go 1.26 (go1.26.0 to go1.26.8) and Go 1.27 (go1.27.0 to
// go1.27.3), on linux/amd64 and linux/arm64:
//
//  L1. g.m, the M a goroutine runs on, is the sixth word of runtime.g
//      (after stack.lo, stack.hi, stackguard0, stackguard1, _panic and
//      _defer): gMOffset.
//  L2. runtime.m starts g0 *g, morebuf gobuf (6 words), divmod uint32,
//      procid uint64, gsignal *g, goSigStack gsignalStack (5 words),
//      sigmask sigset ([2]uint32 on linux/amd64 and linux/arm64),
//      tls [tlsSlots]uintptr with tlsSlots = 6, mstartfn func(), curg *g;
//      so procid, gsignal, tls and curg are at the offsets below.
//  L3. An M is one OS thread for its whole life, and a new M is zeroed
//      (allocm: new(m)): m.tls[2] of a thread the package has not seen
//      reads 0. Nothing in the runtime reads or writes m.tls[2] on these
//      platforms (amd64 uses m.tls[0] alone; arm64 uses none of m.tls
//      without cgo). The package keeps the thread's area address there.
//  L4. An assembly function is never asynchronously preempted: the runtime
//      treats assembly as unsafe points, so a goroutine stays on its thread
//      (and g.m stays its M) from the first to the last instruction of one.
//
// On a Go release not listed in verifiedGoReleases the package uses the
// fallback (ModeNone) rather than guess, unless the environment sets
// GORSEQ=unverified: then own mode is used if the live checks of
// checkGoThreadLayout pass on the initialising thread. Release candidates
// of a verified series count as verified; devel toolchains never do.
// checkGoThreadLayout also runs on every thread the package registers, so a
// thread whose layout is not as assumed falls back alone.

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"
)

// Offsets in the runtime's structures (L1, L2), the same on both platforms.
// The assembly uses gMOffset and mThreadSlotOffset under the names G_M and
// M_THREAD_SLOT (area_linux_arm64.h), and on amd64 gMOffset and
// mTLSOffset+8 under the names G_M and M_FS_BASE (area_linux_amd64.h: FS =
// &m.tls[1], which checkPlatformLayout compares with the kernel's FS base).
const (
	gMOffset          = 48  // g.m
	mProcidOffset     = 64  // m.procid
	mGsignalOffset    = 72  // m.gsignal
	mTLSOffset        = 128 // m.tls[0]
	mThreadSlotOffset = mTLSOffset + 2*8
	runtimeTLSSlots   = 6
	mCurgOffset       = mTLSOffset + runtimeTLSSlots*8 + 8 // after tls and mstartfn
)

// verifiedGoReleases lists the Go release series whose runtime was checked
// against the assumptions above.
var verifiedGoReleases = []string{"go1.26", "go1.27"}

// runtimeVerified reports whether the runtime version v belongs to a
// verified release series (a release or a release candidate of it).
func runtimeVerified(v string) bool {
	for _, r := range verifiedGoReleases {
		if v == r || strings.HasPrefix(v, r+".") || strings.HasPrefix(v, r+"rc") {
			return true
		}
	}
	return false
}

// unverifiedAllowed reports whether the environment asks for own mode on a
// runtime not in verifiedGoReleases, subject to the live checks.
func unverifiedAllowed() bool { return os.Getenv("GORSEQ") == "unverified" }

// errLayout is wrapped by every failure of checkGoThreadLayout.
var errLayout = errors.New("an assumption about the Go runtime's thread layout is broken")

// checkMLayout checks L1 and L2 on the calling thread, which must be locked
// to its goroutine: g.m is an M whose procid is the thread's id, whose
// gsignal's m points back to it, and whose curg is the calling g; and
// m.tls[2] holds 0 or one of the package's areas. It returns the M.
func checkMLayout() (m uintptr, err error) {
	g := tlsG()
	if g == 0 {
		return 0, fmt.Errorf("%w: no current g", errLayout)
	}
	m = uintptr(peek64(g + gMOffset))
	if m == 0 {
		return 0, fmt.Errorf("%w (L1): g.m at g+%d is nil", errLayout, gMOffset)
	}
	if tid := unix.Gettid(); peek64(m+mProcidOffset) != uint64(tid) {
		return 0, fmt.Errorf("%w (L1/L2): m.procid at m+%d is %d, not the thread id %d: g.m or m.procid moved", errLayout, mProcidOffset, peek64(m+mProcidOffset), tid)
	}
	if gs := uintptr(peek64(m + mGsignalOffset)); gs == 0 || uintptr(peek64(gs+gMOffset)) != m {
		return 0, fmt.Errorf("%w (L2): m.gsignal at m+%d (%#x) is not a g of this M", errLayout, mGsignalOffset, gs)
	}
	if curg := uintptr(peek64(m + mCurgOffset)); curg != g {
		return 0, fmt.Errorf("%w (L2): m.curg at m+%d is %#x, not the running g %#x: tlsSlots or the fields around m.tls changed", errLayout, mCurgOffset, curg, g)
	}
	if v := threadSlot(); v > threadFallback && !ownsArea(v) {
		return 0, fmt.Errorf("%w (L3): m.tls[2] at m+%d holds %#x, which is not an area of this package", errLayout, mThreadSlotOffset, v)
	}
	return m, nil
}

// checkGoThreadLayout checks L1 to L3 and the platform's own assumptions on
// the calling thread, which must not be a cgo thread. It returns an error
// naming the first assumption that does not hold.
func checkGoThreadLayout() error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	m, err := checkMLayout()
	if err != nil {
		return err
	}
	return checkPlatformLayout(m)
}
