//go:build linux && (amd64 || arm64 || riscv64 || ppc64le || s390x || loong64)

package rseq

// This file is for 64-bit platforms only: the handle headers it checks are
// 64-bit words compared as uintptr.

import (
	"errors"
	"fmt"
	"math"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// faultWatch serves the page faults of a memory region with userfaultfd,
// and checks at each one that a given lock is held: a thread that touches
// the region stops in the kernel until a goroutine of the test resolves
// its fault, which is when the lock is looked at. The first access to each
// page of the region after arm faults, so every page an operation touches
// is checked at the first touch.
type faultWatch struct {
	fd     int
	mem    []byte // the watched region (anonymous, registered)
	shadow []byte // what the region holds while its pages are out
	ps     int
	// lock is the mutex that must be held at every fault (nil: none).
	lock       atomic.Pointer[sync.Mutex]
	faults     atomic.Int64 // faults checked
	violations atomic.Int64 // of them, found the lock free
	stop       chan struct{}
	done       chan struct{}
	err        atomic.Pointer[error]
}

// userfaultfd ABI (include/uapi/linux/userfaultfd.h).
const (
	uffdUserModeOnly  = 1
	uffdAPI           = 0xaa
	uffdioAPI         = 0xc018aa3f // _IOWR(0xAA, 0x3F, struct uffdio_api)
	uffdioRegister    = 0xc020aa00 // _IOWR(0xAA, 0x00, struct uffdio_register)
	uffdioCopy        = 0xc028aa03 // _IOWR(0xAA, 0x03, struct uffdio_copy)
	uffdRegisterMiss  = 1          // UFFDIO_REGISTER_MODE_MISSING
	uffdEventPagefult = 0x12       // UFFD_EVENT_PAGEFAULT
)

func newFaultWatch(pages int) (*faultWatch, error) {
	fd, _, e := unix.Syscall(unix.SYS_USERFAULTFD, unix.O_CLOEXEC|unix.O_NONBLOCK|uffdUserModeOnly, 0, 0)
	if e == unix.EINVAL { // before Linux 5.11: no UFFD_USER_MODE_ONLY
		fd, _, e = unix.Syscall(unix.SYS_USERFAULTFD, unix.O_CLOEXEC|unix.O_NONBLOCK, 0, 0)
	}
	if e != 0 {
		return nil, fmt.Errorf("userfaultfd: %w", e)
	}
	w := &faultWatch{fd: int(fd), ps: os.Getpagesize(), stop: make(chan struct{}), done: make(chan struct{})}
	api := [3]uint64{uffdAPI, 0, 0}
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, fd, uffdioAPI, uintptr(unsafe.Pointer(&api))); e != 0 {
		unix.Close(w.fd)
		return nil, fmt.Errorf("UFFDIO_API: %w", e)
	}
	mem, err := unix.Mmap(-1, 0, pages*w.ps, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		unix.Close(w.fd)
		return nil, err
	}
	w.mem, w.shadow = mem, make([]byte, len(mem))
	reg := [4]uint64{uint64(uintptr(unsafe.Pointer(&mem[0]))), uint64(len(mem)), uffdRegisterMiss, 0}
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, fd, uffdioRegister, uintptr(unsafe.Pointer(&reg))); e != 0 {
		unix.Munmap(mem)
		unix.Close(w.fd)
		return nil, fmt.Errorf("UFFDIO_REGISTER: %w", e)
	}
	go w.serve()
	return w, nil
}

// serve resolves the faults until stop is closed.
func (w *faultWatch) serve() {
	defer close(w.done)
	fail := func(err error) { w.err.Store(&err) }
	var msg [32]byte
	for {
		select {
		case <-w.stop:
			return
		default:
		}
		pfd := []unix.PollFd{{Fd: int32(w.fd), Events: unix.POLLIN}}
		if _, err := unix.Poll(pfd, 50); err != nil && err != unix.EINTR {
			fail(fmt.Errorf("poll: %w", err))
			return
		}
		for {
			n, err := unix.Read(w.fd, msg[:])
			if err == unix.EAGAIN || err == unix.EINTR {
				break
			}
			if err != nil || n != len(msg) {
				fail(fmt.Errorf("reading the userfaultfd: %d bytes, %v", n, err))
				return
			}
			if msg[0] != uffdEventPagefult {
				continue
			}
			addr := *(*uint64)(unsafe.Pointer(&msg[16]))
			w.check()
			page := uintptr(addr) &^ uintptr(w.ps-1)
			off := page - uintptr(unsafe.Pointer(&w.mem[0]))
			cp := [5]uint64{uint64(page), uint64(uintptr(unsafe.Pointer(&w.shadow[off]))), uint64(w.ps), 0, 0}
			if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(w.fd), uffdioCopy, uintptr(unsafe.Pointer(&cp))); e != 0 && e != unix.EEXIST {
				fail(fmt.Errorf("UFFDIO_COPY at %#x: %w", page, e))
				return
			}
		}
	}
}

// check looks at the lock for a fault.
func (w *faultWatch) check() {
	mu := w.lock.Load()
	if mu == nil {
		return
	}
	w.faults.Add(1)
	if mu.TryLock() {
		mu.Unlock()
		w.violations.Add(1)
	}
}

// arm takes every page of the region out (their contents kept in the
// shadow), so that the next access to each faults.
func (w *faultWatch) arm() error {
	copy(w.shadow, w.mem)
	return unix.Madvise(w.mem, unix.MADV_DONTNEED)
}

func (w *faultWatch) close() error {
	close(w.stop)
	<-w.done
	unix.Munmap(w.mem)
	unix.Close(w.fd)
	if p := w.err.Load(); p != nil {
		return *p
	}
	return nil
}

// TestFallbackHoldsLock checks that each fallback operation reads and
// writes the memory it works on only while it holds the fallback lock of
// its commit word: that is what makes a fallback atomic against the other
// fallbacks and CompareAndStoreRemote on the same word. A fallback that
// forgets its lock, or reads what it gives up after unlocking (TakeHandle's
// table entry, which the next claimer overwrites), is caught at its first
// access outside the lock, deterministically: the memory lies in a region
// whose pages fault into the test (userfaultfd) at their first touch.
//
// The fallbacks are called directly, on a thread with an area, as a thread
// without one would run them (in a process that runs sections, on the
// shared slot).
func TestFallbackHoldsLock(t *testing.T) {
	w, err := newFaultWatch(4)
	if errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EPERM) {
		t.Skipf("no userfaultfd here (%v): the check needs it (root, or vm.unprivileged_userfaultfd=1)", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := w.close(); err != nil {
			t.Error(err)
		}
	}()
	// The faulting thread waits for a goroutine of this test to serve it.
	if runtime.GOMAXPROCS(0) < 2 {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	ensureArea() // registered where the package registers: no retry with a section

	ps := uintptr(w.ps)
	base := unsafe.Pointer(&w.mem[0])
	slotsMem := base                // page 0: the per-slot words and handle arrays
	other := unsafe.Add(base, ps)   // page 1: targets, nodes, second words, copies
	table := unsafe.Add(base, 2*ps) // page 2: a handle table
	src := unsafe.Add(base, 3*ps)   // page 3: copy sources
	const stride = 8 + 4*4          // a handle slot: header and 4 handles
	if uintptr(Slots())*stride > ps {
		t.Skipf("%d slots do not fit a page", Slots())
	}
	field := ByCPU.field()
	slot := fallbackSlot(field)
	word := func(p unsafe.Pointer, off uintptr) *uintptr { return (*uintptr)(unsafe.Add(p, off)) }
	slotWord := word(slotsMem, uintptr(slot)*stride)
	handles := NewHandleArray(slotsMem, stride, ByCPU, table, 4)
	objs := [4]uintptr{uintptr(unsafe.Add(src, 512)), uintptr(unsafe.Add(src, 520)), uintptr(unsafe.Add(src, 528)), uintptr(unsafe.Add(src, 536))}

	// The per-CPU counters' word of this thread's fallback slot lies in
	// page 2, at cpuWord, whatever the slot.
	cpuSlot := fallbackSlot(offCPUIDStart)
	cpuBase := unsafe.Add(table, 64-cpuSlot*CPUStride)
	cpuWord := (*uint64)(unsafe.Add(table, 64))

	cases := []struct {
		name   string
		commit unsafe.Pointer // the commit word, whose lock must be held
		setup  func()
		op     func()
		check  func() error
	}{
		{"Add", unsafe.Pointer(slotWord), func() { *slotWord = 40 },
			func() { addFallback(slotsMem, stride, field, 2) },
			func() error { return want("slot", *slotWord, 42) }},
		{"AddCPU", unsafe.Pointer(cpuWord), func() { *cpuWord = 40 },
			func() { addCPUFallback(cpuBase, 2) },
			func() error { return want("counter", uintptr(*cpuWord), 42) }},
		{"AddFloat64CPU", unsafe.Pointer(cpuWord), func() { *cpuWord = math.Float64bits(1.5) },
			func() { addFloat64CPUFallback(cpuBase, 2) },
			func() error { return want("counter", uintptr(*cpuWord), uintptr(math.Float64bits(3.5))) }},
		{"AddIndirect", unsafe.Pointer(slotWord), func() { *slotWord = uintptr(other); *word(other, 16) = 5 },
			func() { addIndirectFallback(slotsMem, stride, field, 16, 3) },
			func() error { return want("target", *word(other, 16), 8) }},
		{"Pop", unsafe.Pointer(slotWord), func() {
			*slotWord = uintptr(other)
			*word(other, 8) = uintptr(unsafe.Add(other, 64))
		}, func() {
			if _, head, ok := popFallback(slotsMem, stride, field, 0, 8); !ok || head != uintptr(other) {
				t.Errorf("Pop = %#x, %v", head, ok)
			}
		}, func() error { return want("head", *slotWord, uintptr(unsafe.Add(other, 64))) }},
		{"CompareAndStore", unsafe.Pointer(slotWord), func() { *slotWord = 1 },
			func() { wantStatus(t, cmpStoreFallback(field, slot, slotWord, 1, 2)) },
			func() error { return want("word", *slotWord, 2) }},
		{"CompareBothAndStore", unsafe.Pointer(slotWord), func() { *slotWord = 1; *word(other, 0) = 7 },
			func() { wantStatus(t, cmp2StoreFallback(field, slot, slotWord, 1, word(other, 0), 7, 3)) },
			func() error { return want("word", *slotWord, 3) }},
		{"StoreThenCommit", unsafe.Pointer(slotWord), func() { *slotWord = 1 },
			func() { wantStatus(t, storeCommitFallback(field, slot, slotWord, 1, word(other, 24), 99, 2)) },
			func() error { return errors.Join(want("word", *slotWord, 2), want("entry", *word(other, 24), 99)) }},
		{"CopyThenCommit", unsafe.Pointer(slotWord), func() { *slotWord = 1; *word(src, 0) = 0x1234 },
			func() { wantStatus(t, copyCommitFallback(field, slot, slotWord, 1, unsafe.Add(other, 32), src, 8, 2)) },
			func() error { return errors.Join(want("word", *slotWord, 2), want("copy", *word(other, 32), 0x1234)) }},
		{"TakeHandle", unsafe.Pointer(slotWord), func() {
			// Two full handles (0 and 1), two free ones.
			*(*uint64)(unsafe.Pointer(slotWord)) = 2 | 4<<32
			for k := range 4 {
				*(*uint32)(unsafe.Add(unsafe.Pointer(slotWord), 8+4*k)) = uint32(k)
				*word(table, uintptr(8*k)) = objs[k]
			}
		}, func() {
			if v := takeHandleFallback(&handles); uintptr(v) != objs[1] {
				t.Errorf("TakeHandle = %p; want %#x (handle 1's)", v, objs[1])
			}
		}, func() error { return want("header", *slotWord, 1|3<<32) }},
		{"ClaimHandle", unsafe.Pointer(slotWord), func() {
			*(*uint64)(unsafe.Pointer(slotWord)) = 1 | 3<<32
			for k := range 4 {
				*(*uint32)(unsafe.Add(unsafe.Pointer(slotWord), 8+4*k)) = uint32(k)
			}
		},
			func() {
				if _, h, ok := claimHandleFallback(&handles); !ok || h != 3 {
					t.Errorf("ClaimHandle = %d, %v; want 3, true", h, ok)
				}
			}, func() error { return want("header", *slotWord, 1|4<<32) }},
		{"PutHandle", unsafe.Pointer(slotWord), func() { *(*uint64)(unsafe.Pointer(slotWord)) = 1 | 4<<32 },
			func() {
				if _, ok := putHandleFallback(&handles, 3); !ok {
					t.Error("PutHandle failed")
				}
			}, func() error { return want("header", *slotWord, 2|4<<32) }},
		{"RestoreHandle", unsafe.Pointer(slotWord), func() {
			// One full handle (0), a hole, two free ones (2, 3).
			*(*uint64)(unsafe.Pointer(slotWord)) = 1 | 2<<32
			for k := range 4 {
				*(*uint32)(unsafe.Add(unsafe.Pointer(slotWord), 8+4*k)) = uint32(k)
				*word(table, uintptr(8*k)) = objs[k]
			}
		}, func() {
			if !restoreHandleFallback(&handles, *(*unsafe.Pointer)(unsafe.Pointer(&objs[2]))) {
				t.Error("RestoreHandle failed")
			}
		}, func() error {
			return errors.Join(want("header", *slotWord, 2|3<<32),
				want("handle", uintptr(*(*uint32)(unsafe.Add(unsafe.Pointer(slotWord), 8+4))), 2))
		}},
	}
	for _, c := range cases {
		clear(w.mem) // faults, served unchecked
		c.setup()
		if err := w.arm(); err != nil {
			t.Fatal(err)
		}
		f0, v0 := w.faults.Load(), w.violations.Load()
		w.lock.Store(fallbackLock(uintptr(c.commit)))
		start := time.Now()
		c.op()
		w.lock.Store(nil)
		f, v := w.faults.Load()-f0, w.violations.Load()-v0
		if err := c.check(); err != nil {
			t.Errorf("%s: %v", c.name, err)
		}
		t.Logf("%s: %d faults checked, %d without the lock (%v)", c.name, f, v, time.Since(start).Round(time.Microsecond))
		if f == 0 {
			t.Errorf("%s: the fallback touched no watched page: nothing was checked", c.name)
		}
		if v != 0 {
			t.Errorf("%s: %d of %d first touches of a page happened without the fallback lock of the commit word", c.name, v, f)
		}
	}
}

func want(what string, got, want uintptr) error {
	if got != want {
		return fmt.Errorf("%s = %#x, want %#x", what, got, want)
	}
	return nil
}

func wantStatus(t *testing.T, s Status) {
	t.Helper()
	if s != Committed {
		t.Errorf("status %v, want committed", s)
	}
}
