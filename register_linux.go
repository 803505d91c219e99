//go:build linux && (amd64 || arm64)

package rseq

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Auxiliary vector entries the kernel adds from Linux 6.3.
const (
	atRseqFeatureSize = 27
	atRseqAlign       = 28
	atBase            = 7
)

// areaMode selects how the assembly finds a thread's area (LOAD_AREA in
// area_linux_*.h). It is set once, during package initialisation; glibc
// mode needs glibcOffset set first.
var areaMode uint8

// glibcOffset is __rseq_offset in glibc mode.
var glibcOffset int64

// Registration parameters of own mode.
var (
	regLen   uint32 // length passed to rseq(2)
	areaStep uintptr
)

var features Support

func init() {
	initFeatures(&features)
	initOperations(&features, readMemory)
}

// sysRseq makes the rseq system call.
func sysRseq(area uintptr, length uint32, flags int, sig uint32) syscall.Errno {
	_, _, e := unix.RawSyscall6(unix.SYS_RSEQ, area, uintptr(length), uintptr(flags), uintptr(sig), 0, 0)
	return e
}

func auxvValues() (size, align uintptr, haveSize, haveAlign bool, base uintptr) {
	v, err := unix.Auxv()
	if err != nil {
		return
	}
	for _, kv := range v {
		switch kv[0] {
		case atRseqFeatureSize:
			size, haveSize = kv[1], true
		case atRseqAlign:
			align, haveAlign = kv[1], true
		case atBase:
			base = kv[1]
		}
	}
	return
}

// describeErrno names the cause behind a failed probe of rseq(2).
func describeErrno(e syscall.Errno) string {
	switch e {
	case unix.ENOSYS:
		return "the kernel has no rseq system call (ENOSYS: kernel before 4.18, CONFIG_RSEQ off, an emulator such as qemu-user or valgrind, or a seccomp filter)"
	case unix.EPERM:
		return "rseq is refused (EPERM: a seccomp filter or security policy)"
	case unix.EACCES:
		return "rseq is refused (EACCES: a seccomp filter or security policy)"
	}
	return fmt.Sprintf("rseq probe failed with %s (%d), which a kernel with rseq does not return: a seccomp filter or sandbox decides", unix.ErrnoName(e), int(e))
}

func initFeatures(f *Support) {
	*f = Support{FeatureSize: origFeatureSize, Alignment: origAlign, Signature: Signature, GoVersion: runtime.Version()}
	size, align, haveSize, haveAlign, ldBase := auxvValues()
	if haveSize {
		f.FeatureSize, f.FromAuxv = int(size), true
	}
	if haveAlign {
		f.Alignment = int(align)
	}
	f.NodeID = f.FeatureSize >= offNodeID+4
	f.ConcurrencyID = f.FeatureSize >= offMMCID+4
	if f.Alignment < origAlign || f.Alignment&(f.Alignment-1) != 0 {
		f.Alignment = origAlign
	}

	fail := func(e syscall.Errno, why string) {
		f.Usable, f.Mode, f.Errno, f.Reason = false, ModeNone, e, why
		f.NodeID, f.ConcurrencyID, f.SliceExtension = false, false, false
		areaMode = areaModeNone
	}

	f.RuntimeVerified = runtimeVerified(f.GoVersion)
	switch env := os.Getenv("GORSEQ"); env {
	case "", "unverified":
	case "off":
		fail(0, "disabled by the environment (GORSEQ=off)")
		return
	default:
		f.Notes = append(f.Notes, fmt.Sprintf("GORSEQ=%q is not understood (off: use the fallback; unverified: allow a Go release whose runtime is not verified) and is ignored", env))
	}
	if !f.RuntimeVerified {
		if !unverifiedAllowed() {
			fail(0, fmt.Sprintf("the package's runtime assumptions are not verified for %s (verified: %s); GORSEQ=unverified enables rseq where the live checks of the runtime's layout pass", f.GoVersion, strings.Join(verifiedGoReleases, ", ")))
			return
		}
		f.Notes = append(f.Notes, fmt.Sprintf("%s is not a verified Go release (verified: %s); rseq is enabled by GORSEQ=unverified, subject to the live checks of the runtime's layout", f.GoVersion, strings.Join(verifiedGoReleases, ", ")))
	}

	cgo, err := processIsCgo()
	if err != nil {
		fail(0, "cannot read the thread pointer: "+err.Error())
		return
	}
	f.Cgo = cgo
	g, gerr := findGlibcRseq(ldBase)
	if gerr == nil {
		f.Glibc, f.GlibcOffset, f.GlibcSize = true, g.offset, g.size
	}
	// rseq(NULL, 0, 0, 0) fails with EINVAL wherever the call exists.
	if e := sysRseq(0, 0, 0, 0); e != unix.EINVAL {
		fail(e, describeErrno(e))
		return
	}

	if cgo {
		switch {
		case gerr != nil:
			fail(0, "the process runs with cgo but the C library's rseq area cannot be found: "+gerr.Error())
		case g.size == 0:
			fail(0, "glibc did not register rseq (__rseq_size is 0: GLIBC_TUNABLES=glibc.pthread.rseq=0, or its registration failed)")
		default:
			if err := confirmGlibcArea(g, f); err != nil {
				fail(0, err.Error())
				return
			}
			glibcOffset = g.offset
			areaMode = areaModeGlibc
			f.Usable, f.Mode, f.AreaSize = true, ModeGlibc, int(g.size)
			// glibc registers with RSEQ_SIG, the value of Signature on
			// both platforms.
			f.Signature = Signature
			if currentArea() == 0 {
				f.Notes = append(f.Notes, "glibc's area on the initialising thread is not registered (cpu_id < 0): such threads use the fallback")
			}
			f.SliceExtension = sliceExtensionAvailable()
		}
		return
	}

	if err := checkGoThreadLayout(); err != nil {
		fail(0, err.Error())
		return
	}
	// Register with the original length where the fields fit in it (the
	// kernel then requires 32-byte alignment), else with the feature size
	// rounded up to the kernel's alignment.
	regLen = origAreaSize
	if f.FeatureSize > origAreaSize {
		regLen = uint32((f.FeatureSize + f.Alignment - 1) &^ (f.Alignment - 1))
	}
	// Each area gets cache lines of its own: every operation writes the
	// area's rseq_cs, and two threads' areas in one line slow each other.
	areaStep = 128
	for areaStep < uintptr(regLen) || areaStep < uintptr(f.Alignment) {
		areaStep *= 2
	}
	areaMode = areaModeOwn
	f.Usable, f.Mode, f.AreaSize = true, ModeOwn, int(regLen)

	// Register the initialising thread now, so that a failure common to
	// every thread shows at once in Features.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	_, err = registerThread()
	if err == nil {
		f.SliceExtension = sliceExtensionAvailable()
	} else {
		var e syscall.Errno
		errors.As(err, &e)
		switch {
		case errors.Is(err, errAnotherArea) && unix.Gettid() == unix.Getpid():
			// The dynamic loader of a PIE binary registered glibc's area
			// on the main thread before the runtime took over the thread
			// pointer: the main thread uses the fallback and the others
			// register their own.
			loader := "the dynamic loader, which a PIE binary starts with"
			if gerr == nil && g.size > 0 {
				loader = fmt.Sprintf("the dynamic loader (glibc's __rseq_size is %d)", g.size)
			}
			f.Notes = append(f.Notes, fmt.Sprintf("the main thread already has an rseq area, registered by %s: it uses the fallback, other threads their own areas (%v)", loader, err))
		default:
			fail(e, fmt.Sprintf("registering an rseq area failed: %v", err))
		}
	}
}

// confirmGlibcArea asks the kernel whether thread pointer + __rseq_offset
// is the calling thread's registered area before the package reads it: a
// registration of the same area, length and signature fails with EBUSY, and
// any other area with EINVAL (the thread has one already, since glibc's
// __rseq_size is not 0), without touching memory. glibc registers 32 bytes
// (2.35 to 2.39) or its feature size rounded up to the alignment.
func confirmGlibcArea(g glibcRseq, f *Support) error {
	area := threadPointer() + uintptr(g.offset)
	lengths := []uint32{origAreaSize}
	if n := uint32((f.FeatureSize + f.Alignment - 1) &^ (f.Alignment - 1)); n > origAreaSize {
		lengths = append(lengths, n)
	}
	if n := (g.size + origAlign - 1) &^ (origAlign - 1); n > origAreaSize && n != lengths[len(lengths)-1] {
		lengths = append(lengths, n)
	}
	var errs []string
	for _, n := range lengths {
		switch e := sysRseq(area, n, 0, Signature); e {
		case unix.EBUSY:
			return nil
		case unix.EPERM:
			return fmt.Errorf("glibc's rseq area (thread pointer %#x + __rseq_offset %d, from %s) is registered with another signature than %#x", threadPointer(), g.offset, g.file, Signature)
		default:
			errs = append(errs, fmt.Sprintf("length %d: %v", n, e))
		}
	}
	return fmt.Errorf("the kernel does not know thread pointer %#x + __rseq_offset %d (from %s) as this thread's rseq area (%s): glibc's symbols were misread", threadPointer(), g.offset, g.file, strings.Join(errs, "; "))
}

// sliceExtensionAvailable reports whether the kernel offers the time-slice
// extension (Linux 7.0+, CONFIG_RSEQ_SLICE_EXTENSION, and an area longer
// than 32 bytes) to the calling thread: the kernel says so in the area's
// flags when it registers it. The feature size alone does not tell: kernels
// built without the extension report 33 bytes too.
func sliceExtensionAvailable() bool {
	v, ok := areaField(offFlags)
	return ok && v&flagSliceExtAvailable != 0
}

// Thread-area bookkeeping for own mode. Areas live in memory from mmap, which
// the Go GC neither scans nor moves. A thread's area is never handed to
// another thread while the first one lives: areas are recycled only after
// tgkill(pid, tid, 0) reports that their thread is gone.
var areas struct {
	mu    sync.Mutex
	all   []areaRecord
	byPtr map[uintptr]int // area address → index in all
	free  []int
}

type areaRecord struct {
	addr uintptr
	mem  []byte // the area's bytes, within a chunk from mmap
	tid  int
	used bool
}

const areaChunkSize = 64 << 10

// ownsArea reports whether v is the address of one of the package's areas.
func ownsArea(v uintptr) bool {
	areas.mu.Lock()
	defer areas.mu.Unlock()
	_, ok := areas.byPtr[v]
	return ok
}

// allocArea returns an unused area for thread tid.
func allocArea(tid int) (uintptr, error) {
	areas.mu.Lock()
	defer areas.mu.Unlock()
	if len(areas.free) == 0 {
		sweepAreas()
	}
	if n := len(areas.free); n > 0 {
		i := areas.free[n-1]
		areas.free = areas.free[:n-1]
		r := &areas.all[i]
		r.used, r.tid = true, tid
		clear(r.mem)
		return r.addr, nil
	}
	mem, err := unix.Mmap(-1, 0, areaChunkSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return 0, fmt.Errorf("mmap of rseq areas: %w", err)
	}
	if areas.byPtr == nil {
		areas.byPtr = make(map[uintptr]int)
	}
	base := uintptr(unsafe.Pointer(&mem[0]))
	for off := uintptr(0); off+areaStep <= areaChunkSize; off += areaStep {
		areas.byPtr[base+off] = len(areas.all)
		areas.free = append(areas.free, len(areas.all))
		areas.all = append(areas.all, areaRecord{addr: base + off, mem: mem[off : off+areaStep : off+areaStep]})
	}
	// Hand out the lowest address first.
	i := areas.free[0]
	areas.free = areas.free[1:]
	areas.all[i].used, areas.all[i].tid = true, tid
	return areas.all[i].addr, nil
}

// sweepAreas returns to the free list the areas of threads that have exited.
// Called with areas.mu held.
func sweepAreas() {
	pid := unix.Getpid()
	for i := range areas.all {
		r := &areas.all[i]
		if r.used && unix.Tgkill(pid, r.tid, 0) == unix.ESRCH {
			r.used = false
			areas.free = append(areas.free, i)
		}
	}
}

// releaseArea returns an area whose registration failed.
func releaseArea(addr uintptr) {
	areas.mu.Lock()
	defer areas.mu.Unlock()
	if i, ok := areas.byPtr[addr]; ok && areas.all[i].used {
		areas.all[i].used = false
		areas.free = append(areas.free, i)
	}
}

// threadFallback marks a thread whose registration failed (own mode).
const threadFallback = 1

// The causes of an EINVAL or EBUSY from registering: the length or alignment
// the package took from the kernel's auxiliary vector was refused, or the
// thread already has an area (the dynamic loader's, on the main thread of a
// PIE binary).
var (
	errLengthOrAlignment = errors.New("the kernel refused the area's length or alignment")
	errAnotherArea       = errors.New("another rseq area is registered on this thread")
)

// registerThread registers an area for the calling thread, which must be
// locked to its goroutine, and records it in the thread's slot. It returns
// the area, or 0 and why the thread now uses the fallback for good (an
// error wrapping the rseq errno where the system call failed).
func registerThread() (uintptr, error) {
	if v := threadSlot(); v > threadFallback {
		return v, nil
	} else if v == threadFallback {
		return 0, fmt.Errorf("registration failed on this thread before: %w", unix.EALREADY)
	}
	// The slot is about to be written: check once per thread that it is
	// where the runtime's layout says (runtime_linux.go).
	if _, err := checkMLayout(); err != nil {
		return 0, err
	}
	tid := unix.Gettid()
	a, err := allocArea(tid)
	if err != nil {
		setThreadSlot(threadFallback)
		return 0, err
	}
	if e := sysRseq(a, regLen, 0, Signature); e != 0 {
		err := describeRegistrationError(a, regLen, e) // probes a, so before releasing it
		releaseArea(a)
		setThreadSlot(threadFallback)
		return 0, err
	}
	setThreadSlot(a)
	return a, nil
}

// describeRegistrationError says why rseq(area, length, 0, Signature)
// failed with e on the calling thread.
func describeRegistrationError(area uintptr, length uint32, e syscall.Errno) error {
	if e == unix.EINVAL || e == unix.EBUSY {
		// The kernel answers EINVAL both for a length or alignment it
		// refuses and for a thread that already has another area (EBUSY:
		// this very area). Tell them apart with a probe that only a
		// thread without a registration accepts: the same area, which is
		// aligned for any length, with the original 32-byte length.
		if e == unix.EINVAL && length != origAreaSize {
			if pe := sysRseq(area, origAreaSize, 0, Signature); pe == 0 {
				sysRseq(area, origAreaSize, 1, Signature) // undo the probe
				return fmt.Errorf("rseq(len %d, alignment %d): %w: %w", length, areaStep, errLengthOrAlignment, e)
			}
		}
		return fmt.Errorf("rseq(len %d): %w: %w", length, errAnotherArea, e)
	}
	return fmt.Errorf("rseq(len %d): %w", length, e)
}

// ensureArea returns the calling thread's area, registering one in own mode
// if the thread has none yet; 0 means the thread uses the fallback.
func ensureArea() uintptr {
	if a := currentArea(); a != 0 || areaMode != areaModeOwn {
		return a
	}
	runtime.LockOSThread()
	a, _ := registerThread()
	runtime.UnlockOSThread()
	return a
}

// AreaAddress returns the address of the calling thread's struct rseq,
// registering one first where the package registers its own areas, or 0
// when the thread uses the fallback. The goroutine may move to another
// thread as soon as it returns; lock it with runtime.LockOSThread to get an
// answer that stays true.
func AreaAddress() uintptr { return ensureArea() }

// Implemented in tls_linux_amd64.s.
func currentArea() uintptr
func areaField(off uintptr) (v uint32, ok bool)
