//go:build linux && (amd64 || arm64 || riscv64 || ppc64le || s390x || loong64)

package rseq

// This file is for 64-bit platforms only: the handle headers it checks are
// 64-bit words compared as uintptr.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The check below runs in two processes. The fallbacks run in a child (the
// test binary again), on a region of memory whose pages fault at their
// first touch (userfaultfd); the parent serves those faults, and at each one
// looks at the lock that must be held. A thread stopped in a fault keeps its
// P, and its goroutine cannot be preempted where it stopped (in memclr, for
// instance): had the server been a goroutine of the same process, a garbage
// collection starting then would wait for the faulting thread while the
// server waited for a P, for ever. Here the server's runtime is another
// process's, and the child's faults are always served.
//
// The child tells the parent, over a pair of pipes, where its region lies
// and which descriptors hold its userfaultfd and its shadow of the region
// (a memfd: what the pages hold while they are out). The parent takes both
// descriptors with pidfd_getfd, resolves each fault with UFFDIO_COPY from
// its own mapping of the shadow, and reads the child's lock word through
// /proc/<pid>/mem. Pipes, not a Unix socket: the minimal kernel of the
// 7.3-slice guest has no AF_UNIX.

// faultWatchEnv names the child's two pipe descriptors (requests, replies).
const faultWatchEnv = "GORSEQ_FAULTWATCH_FDS"

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

// The child's requests are four words: the request and three arguments.
// The server's replies are four words too: 0 or an errno, and three results.
const (
	// reqHello: the region lies at a and is b bytes long; c holds the
	// child's descriptors of its userfaultfd (low half) and of its shadow
	// memfd (high half), which the server takes. Reply: nothing.
	reqHello = 1 + iota
	// reqWatch: the sync.Mutex at a must be held at each fault from now
	// on (0: none); the counts start again. Reply: nothing.
	reqWatch
	// reqProbe: reply 1 if the watched mutex reads locked now, else 0.
	reqProbe
	// reqCounts: reply the faults checked and, of them, those that found
	// the mutex free, since the last reqWatch.
	reqCounts
)

// mutexLocked is the locked bit of a sync.Mutex's first word (its state,
// internal/sync.Mutex). The child proves it before each case: it locks
// and unlocks the mutex and has the server read it each time.
const mutexLocked = 1

// faultMsg is a request or a reply.
type faultMsg [4]uint64

// faultLink is one end of the pipes between the child and the server.
type faultLink struct{ r, w *os.File }

func (l faultLink) send(m faultMsg) error {
	_, err := l.w.Write((*[32]byte)(unsafe.Pointer(&m))[:])
	return err
}

// recv returns io.EOF when the other side is gone before a message.
func (l faultLink) recv() (faultMsg, error) {
	var m faultMsg
	_, err := io.ReadFull(l.r, (*[32]byte)(unsafe.Pointer(&m))[:])
	return m, err
}

// faultClient is the child's side: the watched region and its link.
type faultClient struct {
	link   faultLink
	mem    []byte // the watched region (anonymous, private, registered)
	shadow []byte // a shared memfd mapping: the region's contents while out
}

// dialFaultServer sets up a watched region of the given number of pages
// and hands its userfaultfd and shadow to the server.
func dialFaultServer(link faultLink, pages int) (*faultClient, error) {
	uffd, _, e := unix.Syscall(unix.SYS_USERFAULTFD, unix.O_CLOEXEC|unix.O_NONBLOCK|uffdUserModeOnly, 0, 0)
	if e == unix.EINVAL { // before Linux 5.11: no UFFD_USER_MODE_ONLY
		uffd, _, e = unix.Syscall(unix.SYS_USERFAULTFD, unix.O_CLOEXEC|unix.O_NONBLOCK, 0, 0)
	}
	if e != 0 {
		return nil, fmt.Errorf("userfaultfd: %w", e)
	}
	// Once the server has its copy, it holds the only one: should it die,
	// the kernel releases the userfaultfd and the faults resolve by
	// themselves instead of waiting for ever.
	defer unix.Close(int(uffd))
	api := [3]uint64{uffdAPI, 0, 0}
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, uffd, uffdioAPI, uintptr(unsafe.Pointer(&api))); e != 0 {
		return nil, fmt.Errorf("UFFDIO_API: %w", e)
	}
	size := pages * os.Getpagesize()
	mfd, err := unix.MemfdCreate("gorseq-faultwatch-shadow", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("memfd_create: %w", err)
	}
	defer unix.Close(mfd)
	if err := unix.Ftruncate(mfd, int64(size)); err != nil {
		return nil, fmt.Errorf("ftruncate of the shadow memfd: %w", err)
	}
	c := &faultClient{link: link}
	if c.shadow, err = unix.Mmap(mfd, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED); err != nil {
		return nil, fmt.Errorf("mmap of the shadow memfd: %w", err)
	}
	if c.mem, err = unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS); err != nil {
		return nil, fmt.Errorf("mmap of the region: %w", err)
	}
	reg := [4]uint64{uint64(uintptr(unsafe.Pointer(&c.mem[0]))), uint64(size), uffdRegisterMiss, 0}
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, uffd, uffdioRegister, uintptr(unsafe.Pointer(&reg))); e != 0 {
		return nil, fmt.Errorf("UFFDIO_REGISTER: %w", e)
	}
	if _, _, err := c.ask(reqHello, uint64(uintptr(unsafe.Pointer(&c.mem[0]))), uint64(size), uint64(uffd)|uint64(mfd)<<32); err != nil {
		return nil, err
	}
	return c, nil
}

// ask sends a request and returns the server's first two results; a
// failed request returns the errno the server sent.
func (c *faultClient) ask(op, a, b, cc uint64) (uint64, uint64, error) {
	if err := c.link.send(faultMsg{op, a, b, cc}); err != nil {
		return 0, 0, fmt.Errorf("request %d to the fault server: %w", op, err)
	}
	rep, err := c.link.recv()
	switch {
	case err != nil:
		return 0, 0, fmt.Errorf("reply %d of the fault server: %w", op, err)
	case rep[0] != 0:
		return 0, 0, fmt.Errorf("fault server, request %d: %w", op, unix.Errno(rep[0]))
	}
	return rep[1], rep[2], nil
}

// arm takes every page of the region out (their contents kept in the
// shadow), so that the next access to each faults.
func (c *faultClient) arm() error {
	copy(c.shadow, c.mem)
	return unix.Madvise(c.mem, unix.MADV_DONTNEED)
}

// faultServer is the parent's side: it serves the child's faults.
type faultServer struct {
	pid        int
	uffd       int            // the child's userfaultfd (-1: none yet)
	shadow     []byte         // the child's shadow memfd, mapped here
	region     uintptr        // the region's address in the child
	ps         uintptr        // the page size
	childMem   *os.File       // /proc/<pid>/mem of the child
	lock       atomic.Uintptr // the address of the mutex to check (0: none)
	faults     atomic.Int64   // faults checked since the last watch
	violations atomic.Int64   // of them, found the mutex free
	stop       chan struct{}
	done       chan struct{}
	err        atomic.Pointer[error]
}

// serveFaultClient answers the child's requests, and serves its faults
// from its hello on, until the child closes its end of the pipes.
func serveFaultClient(link faultLink, pid int) (err error) {
	s := &faultServer{pid: pid, uffd: -1, ps: uintptr(os.Getpagesize())}
	defer func() { err = errors.Join(err, s.close()) }()
	for {
		req, err := link.recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading the child's request: %w", err)
		}
		var rep faultMsg
		switch req[0] {
		case reqHello:
			if err := s.start(uintptr(req[1]), int(req[2]), int(uint32(req[3])), int(req[3]>>32)); err != nil {
				var errno unix.Errno
				if !errors.As(err, &errno) {
					return err
				}
				rep[0] = uint64(errno) // the child skips or fails, naming it
			}
		case reqWatch:
			s.lock.Store(0)
			s.faults.Store(0)
			s.violations.Store(0)
			s.lock.Store(uintptr(req[1]))
		case reqProbe:
			locked, err := s.locked(s.lock.Load())
			if err != nil {
				return err
			}
			if locked {
				rep[1] = 1
			}
		case reqCounts:
			rep[1], rep[2] = uint64(s.faults.Load()), uint64(s.violations.Load())
		default:
			return fmt.Errorf("the child sent request %d", req[0])
		}
		if err := link.send(rep); err != nil {
			return fmt.Errorf("replying to the child: %w", err)
		}
	}
}

// start takes the child's descriptors and starts serving its faults.
func (s *faultServer) start(region uintptr, size, uffd, mfd int) error {
	pidfd, err := unix.PidfdOpen(s.pid, 0)
	if err != nil {
		return fmt.Errorf("pidfd_open of the child: %w", err)
	}
	defer unix.Close(pidfd)
	if s.uffd, err = unix.PidfdGetfd(pidfd, uffd, 0); err != nil {
		s.uffd = -1
		return fmt.Errorf("pidfd_getfd of the child's userfaultfd: %w", err)
	}
	shadow, err := unix.PidfdGetfd(pidfd, mfd, 0)
	if err != nil {
		return fmt.Errorf("pidfd_getfd of the child's shadow: %w", err)
	}
	defer unix.Close(shadow)
	if s.shadow, err = unix.Mmap(shadow, 0, size, unix.PROT_READ, unix.MAP_SHARED); err != nil {
		return fmt.Errorf("mapping the child's shadow: %w", err)
	}
	if s.childMem, err = os.Open(fmt.Sprintf("/proc/%d/mem", s.pid)); err != nil {
		return fmt.Errorf("opening the child's memory to read its locks: %w", err)
	}
	s.region = region
	s.stop, s.done = make(chan struct{}), make(chan struct{})
	go s.serve()
	return nil
}

// locked reads the child's mutex at addr.
func (s *faultServer) locked(addr uintptr) (bool, error) {
	var state [4]byte
	if _, err := s.childMem.ReadAt(state[:], int64(addr)); err != nil {
		return false, fmt.Errorf("reading the child's lock at %#x: %w", addr, err)
	}
	return *(*uint32)(unsafe.Pointer(&state))&mutexLocked != 0, nil
}

// serve resolves the faults until stop is closed.
func (s *faultServer) serve() {
	defer close(s.done)
	fail := func(err error) { s.err.Store(&err) }
	var msg [32]byte
	for {
		select {
		case <-s.stop:
			return
		default:
		}
		pfd := []unix.PollFd{{Fd: int32(s.uffd), Events: unix.POLLIN}}
		if _, err := unix.Poll(pfd, 50); err != nil && err != unix.EINTR {
			fail(fmt.Errorf("poll: %w", err))
			return
		}
		for {
			n, err := unix.Read(s.uffd, msg[:])
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
			if lock := s.lock.Load(); lock != 0 {
				locked, err := s.locked(lock)
				if err != nil {
					fail(err)
				}
				s.faults.Add(1)
				if !locked {
					s.violations.Add(1)
				}
			}
			page := uintptr(addr) &^ (s.ps - 1)
			off := page - s.region
			cp := [5]uint64{uint64(page), uint64(uintptr(unsafe.Pointer(&s.shadow[off]))), uint64(s.ps), 0, 0}
			if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(s.uffd), uffdioCopy, uintptr(unsafe.Pointer(&cp))); e != 0 && e != unix.EEXIST {
				fail(fmt.Errorf("UFFDIO_COPY at %#x: %w", page, e))
				return
			}
		}
	}
}

// close stops serving, releases what start took (as far as it got), and
// returns the first error the serving met.
func (s *faultServer) close() error {
	if s.stop != nil {
		close(s.stop)
		<-s.done
	}
	if s.childMem != nil {
		s.childMem.Close()
	}
	if s.shadow != nil {
		unix.Munmap(s.shadow)
	}
	if s.uffd >= 0 {
		unix.Close(s.uffd)
	}
	if p := s.err.Load(); p != nil {
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
// shared slot). They run in a child process, whose faults this test serves
// (see faultServer).
func TestFallbackHoldsLock(t *testing.T) {
	if fds := os.Getenv(faultWatchEnv); fds != "" {
		var req, rep int
		if _, err := fmt.Sscanf(fds, "%d,%d", &req, &rep); err != nil {
			t.Fatalf("%s=%q: %v", faultWatchEnv, fds, err)
		}
		fallbackHoldsLockChild(t, faultLink{r: os.NewFile(uintptr(rep), "replies"), w: os.NewFile(uintptr(req), "requests")})
		return
	}
	reqR, reqW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	repR, repW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer reqR.Close()
	defer repW.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestFallbackHoldsLock$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), faultWatchEnv+"=3,4")
	cmd.ExtraFiles = []*os.File{reqW, repR}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	reqW.Close()
	repR.Close()
	serveErr := serveFaultClient(faultLink{r: reqR, w: repW}, cmd.Process.Pid)
	if serveErr != nil {
		cmd.Process.Kill()
	}
	waitErr := cmd.Wait()
	text := out.String()
	if m := regexp.MustCompile(`(?m)^\s+\S+\.go:\d+: (.*)\n--- SKIP: TestFallbackHoldsLock`).FindStringSubmatch(text); waitErr == nil && m != nil {
		t.Skipf("the child skipped: %s", m[1])
	}
	for _, m := range regexp.MustCompile(`(?m)^\s+\S+\.go:\d+: (.* faults checked, .*)$`).FindAllStringSubmatch(text, -1) {
		t.Log("child: " + m[1])
	}
	switch {
	case ctx.Err() != nil:
		t.Fatalf("the child did not finish in time; its output:\n%s", text)
	case waitErr != nil || serveErr != nil:
		// The cause first and last: a crash's reason heads a dump that
		// a log's tail may not show.
		t.Fatalf("the child: %v, the server: %v\nthe child's output:\n%s\n(the child: %v; %s)", waitErr, serveErr, text, waitErr, crashReason(text))
	case !strings.Contains(text, "--- PASS: TestFallbackHoldsLock"):
		t.Fatalf("the child did not run the test:\n%s", text)
	}
}

// crashReason returns the lines of a Go program's output that say why it
// died (a panic, a fatal error, a signal), or says there are none.
func crashReason(out string) string {
	lines := regexp.MustCompile(`(?m)^(panic: |fatal error: |unexpected fault address|\[signal |SIG[A-Z]+: |runtime: ).*$`).FindAllString(out, 4)
	if len(lines) == 0 {
		return "no panic, fatal error or signal in its output"
	}
	return fmt.Sprintf("why it died: %q", lines)
}

// fallbackHoldsLockChild is TestFallbackHoldsLock's child: it runs the
// fallbacks on the watched region and asks the server what it saw.
func fallbackHoldsLockChild(t *testing.T, link faultLink) {
	w, err := dialFaultServer(link, 4)
	if errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EPERM) {
		t.Skipf("%v: the check needs userfaultfd (root, or vm.unprivileged_userfaultfd=1), and pidfd_getfd of a child (Linux 5.6)", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	ensureArea() // registered where the package registers: no retry with a section
	// Without an area (GORSEQ=off) the fallbacks use the slot of the CPU
	// they run on, which must stay the one this test computes below: the
	// thread sleeps at each request, and would wake up anywhere.
	var cpus, here unix.CPUSet
	if err := unix.SchedGetaffinity(0, &cpus); err != nil {
		t.Fatal(err)
	}
	here.Set(CPU())
	if err := unix.SchedSetaffinity(0, &here); err != nil {
		t.Fatal(err)
	}
	defer unix.SchedSetaffinity(0, &cpus)

	ps := uintptr(os.Getpagesize())
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
		{"CompareAndStoreCPU", unsafe.Pointer(cpuWord), func() { *cpuWord = 1 },
			func() {
				if s, ok := cmpStoreCPUFallback(cpuBase, CPUStride, 1, 5); s != cpuSlot || !ok {
					t.Errorf("CompareAndStoreCPU = %d, %v; want %d, true", s, ok, cpuSlot)
				}
			}, func() error { return want("word", uintptr(*cpuWord), 5) }},
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
		if _, _, err := w.ask(reqWatch, 0, 0, 0); err != nil {
			t.Fatal(err)
		}
		clear(w.mem) // faults, served unchecked
		c.setup()
		if err := w.arm(); err != nil {
			t.Fatal(err)
		}
		lock := fallbackLock(uintptr(c.commit))
		if _, _, err := w.ask(reqWatch, uint64(uintptr(unsafe.Pointer(lock))), 0, 0); err != nil {
			t.Fatal(err)
		}
		// The server must tell a held lock from a free one.
		lock.Lock()
		held, _, err1 := w.ask(reqProbe, 0, 0, 0)
		lock.Unlock()
		free, _, err2 := w.ask(reqProbe, 0, 0, 0)
		if err := errors.Join(err1, err2); err != nil {
			t.Fatal(err)
		}
		if held != 1 || free != 0 {
			t.Fatalf("%s: the server reads the lock word as %d when held and %d when free: sync.Mutex's state is no longer its first word, with bit 0 for locked", c.name, held, free)
		}
		start := time.Now()
		c.op()
		f, v, err := w.ask(reqCounts, 0, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
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
