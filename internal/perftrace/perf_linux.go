package perftrace

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Sample is one tracepoint hit.
type Sample struct {
	Event    int // index into the formats given to Open
	PID, TID int // the process (thread group) and thread that hit it
	CPU      int
	Time     uint64 // perf clock, nanoseconds
	// Raw is the tracepoint's record, laid out as its Format says. It is
	// valid only during the callback that receives it.
	Raw []byte
}

// Session samples every hit of some tracepoints, on every online CPU, for
// every process on the system (pid -1): one perf event per tracepoint and
// CPU, all of a CPU's events writing into one ring buffer.
type Session struct {
	formats []*Format
	cpus    []int
	fds     []int   // every event
	rings   []*ring // one per CPU
	ids     map[uint64]int
	lost    []uint64 // per event
	buf     []byte
}

type ring struct {
	fd   int
	mem  []byte
	meta *unix.PerfEventMmapPage
	data []byte
}

// sampleType is the layout of every sample: identifier, pid/tid, time,
// cpu, raw.
const sampleType = unix.PERF_SAMPLE_IDENTIFIER | unix.PERF_SAMPLE_TID | unix.PERF_SAMPLE_TIME | unix.PERF_SAMPLE_CPU | unix.PERF_SAMPLE_RAW

// Open opens, disabled, one sampling event per format and online CPU, with
// a ring buffer of pages pages (a power of two) per CPU. Start them with
// Enable.
func Open(formats []*Format, pages int) (*Session, error) {
	if pages < 1 || pages&(pages-1) != 0 {
		return nil, fmt.Errorf("perftrace: %d ring pages: want a power of two", pages)
	}
	cpus, err := onlineCPUs()
	if err != nil {
		return nil, err
	}
	s := &Session{formats: formats, cpus: cpus, ids: map[uint64]int{}, lost: make([]uint64, len(formats))}
	pageSize := os.Getpagesize()
	for _, cpu := range cpus {
		var r *ring
		for ev, f := range formats {
			attr := unix.PerfEventAttr{
				Type:        unix.PERF_TYPE_TRACEPOINT,
				Size:        uint32(unsafe.Sizeof(unix.PerfEventAttr{})),
				Config:      f.ID,
				Sample:      1, // every hit
				Sample_type: sampleType,
				Bits:        unix.PerfBitDisabled | unix.PerfBitWatermark,
				Wakeup:      uint32(pages * pageSize / 4), // bytes, with the watermark bit
			}
			fd, err := unix.PerfEventOpen(&attr, -1, cpu, -1, unix.PERF_FLAG_FD_CLOEXEC)
			if err != nil {
				s.Close()
				return nil, openError(f, cpu, err)
			}
			s.fds = append(s.fds, fd)
			var id uint64 // PERF_EVENT_IOC_ID writes a u64 on every machine
			if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.PERF_EVENT_IOC_ID, uintptr(unsafe.Pointer(&id))); e != 0 {
				s.Close()
				return nil, fmt.Errorf("perf event id of %s:%s: %v", f.System, f.Name, e)
			}
			s.ids[id] = ev
			if r == nil {
				mem, err := unix.Mmap(fd, 0, (1+pages)*pageSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
				if err != nil {
					s.Close()
					if errors.Is(err, unix.EPERM) {
						return nil, fmt.Errorf("%w: mapping the perf ring buffer of CPU %d (%d KiB) exceeds the locked-memory limit (kernel.perf_event_mlock_kb, RLIMIT_MEMLOCK); CAP_IPC_LOCK lifts it: %v", ErrPermission, cpu, pages*pageSize/1024, err)
					}
					return nil, fmt.Errorf("mapping the perf ring buffer of CPU %d: %v", cpu, err)
				}
				r = &ring{fd: fd, mem: mem, meta: (*unix.PerfEventMmapPage)(unsafe.Pointer(&mem[0]))}
				r.data = mem[pageSize:]
				s.rings = append(s.rings, r)
				continue
			}
			if err := unix.IoctlSetInt(fd, unix.PERF_EVENT_IOC_SET_OUTPUT, r.fd); err != nil {
				s.Close()
				return nil, fmt.Errorf("redirecting %s:%s on CPU %d to the CPU's ring buffer: %v", f.System, f.Name, cpu, err)
			}
		}
	}
	return s, nil
}

// openError explains a failed perf_event_open.
func openError(f *Format, cpu int, err error) error {
	what := fmt.Sprintf("perf_event_open(%s:%s, CPU %d, every process)", f.System, f.Name, cpu)
	switch {
	case errors.Is(err, unix.EACCES), errors.Is(err, unix.EPERM):
		return fmt.Errorf("%w: %s: %v: reading tracepoint records of every process needs CAP_PERFMON (or CAP_SYS_ADMIN, or root), or kernel.perf_event_paranoid = -1 (it is %s)", ErrPermission, what, err, paranoid())
	case errors.Is(err, unix.ENOSYS):
		return fmt.Errorf("%s: %v: the kernel has no perf events (CONFIG_PERF_EVENTS), or a seccomp filter forbids the system call", what, err)
	case errors.Is(err, unix.ENOENT), errors.Is(err, unix.EINVAL):
		return fmt.Errorf("%w: %s: %v: the kernel does not offer tracepoint id %d to perf", ErrNoEvent, what, err, f.ID)
	case errors.Is(err, unix.EMFILE):
		return fmt.Errorf("%s: %v: one file per CPU and event is needed; raise the open-file limit (ulimit -n)", what, err)
	}
	return fmt.Errorf("%s: %v", what, err)
}

func paranoid() string {
	b, err := os.ReadFile("/proc/sys/kernel/perf_event_paranoid")
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(b))
}

// onlineCPUs parses /sys/devices/system/cpu/online ("0-3,8").
func onlineCPUs() ([]int, error) {
	b, err := os.ReadFile("/sys/devices/system/cpu/online")
	if err != nil {
		return nil, fmt.Errorf("listing online CPUs: %v", err)
	}
	return parseCPUList(strings.TrimSpace(string(b)))
}

func parseCPUList(s string) ([]int, error) {
	var cpus []int
	for _, part := range strings.Split(s, ",") {
		if part == "" {
			continue
		}
		lo, hi, isRange := strings.Cut(part, "-")
		a, err1 := strconv.Atoi(lo)
		b := a
		var err2 error
		if isRange {
			b, err2 = strconv.Atoi(hi)
		}
		if err1 != nil || err2 != nil || b < a {
			return nil, fmt.Errorf("bad CPU list %q", s)
		}
		for c := a; c <= b; c++ {
			cpus = append(cpus, c)
		}
	}
	if len(cpus) == 0 {
		return nil, fmt.Errorf("empty CPU list %q", s)
	}
	return cpus, nil
}

// Enable starts every event.
func (s *Session) Enable() error { return s.ioctlAll(unix.PERF_EVENT_IOC_ENABLE) }

// Disable stops every event; what they recorded stays readable.
func (s *Session) Disable() error { return s.ioctlAll(unix.PERF_EVENT_IOC_DISABLE) }

func (s *Session) ioctlAll(req uint) error {
	for _, fd := range s.fds {
		if err := unix.IoctlSetInt(fd, req, 0); err != nil {
			return fmt.Errorf("perf event ioctl %#x: %v", req, err)
		}
	}
	return nil
}

// Wait blocks until a ring buffer is a quarter full or timeout has passed.
func (s *Session) Wait(timeout time.Duration) error {
	pfd := make([]unix.PollFd, len(s.rings))
	for i, r := range s.rings {
		pfd[i] = unix.PollFd{Fd: int32(r.fd), Events: unix.POLLIN}
	}
	ms := int(timeout / time.Millisecond)
	if ms < 0 {
		ms = 0
	}
	_, err := unix.Poll(pfd, ms)
	if err == unix.EINTR {
		return nil
	}
	return err
}

// Lost returns how many records of event ev the kernel dropped because a
// ring buffer was full (0 for an event it did not open).
func (s *Session) Lost(ev int) uint64 {
	if ev < 0 || ev >= len(s.lost) {
		return 0
	}
	return s.lost[ev]
}

// Read passes every sample waiting in the ring buffers to fn, and frees
// their room.
func (s *Session) Read(fn func(Sample)) {
	for _, r := range s.rings {
		s.drain(r, fn)
	}
}

func (s *Session) drain(r *ring, fn func(Sample)) {
	head := atomic.LoadUint64(&r.meta.Data_head)
	tail := r.meta.Data_tail
	size := uint64(len(r.data))
	for tail+8 <= head {
		hdr := s.copyOut(r, tail, 8)
		typ := binary.LittleEndian.Uint32(hdr[0:])
		n := uint64(binary.LittleEndian.Uint16(hdr[6:]))
		if n < 8 || tail+n > head || n > size {
			break // torn; cannot happen with a well-behaved kernel
		}
		rec := s.copyOut(r, tail, n)
		s.record(typ, rec[8:], fn)
		tail += n
	}
	atomic.StoreUint64(&r.meta.Data_tail, tail)
}

// copyOut returns n bytes of the ring at position pos, unwrapped.
func (s *Session) copyOut(r *ring, pos, n uint64) []byte {
	size := uint64(len(r.data))
	off := pos % size
	if off+n <= size {
		return r.data[off : off+n]
	}
	if uint64(cap(s.buf)) < n {
		s.buf = make([]byte, n)
	}
	b := s.buf[:n]
	k := copy(b, r.data[off:])
	copy(b[k:], r.data[:n-uint64(k)])
	return b
}

func (s *Session) record(typ uint32, b []byte, fn func(Sample)) {
	switch typ {
	case unix.PERF_RECORD_SAMPLE:
		// id, pid, tid, time, cpu, res, size, raw
		if len(b) < 8+8+8+8+4 {
			return
		}
		ev, ok := s.ids[binary.LittleEndian.Uint64(b[0:])]
		if !ok {
			return
		}
		smp := Sample{
			Event: ev,
			PID:   int(int32(binary.LittleEndian.Uint32(b[8:]))),
			TID:   int(int32(binary.LittleEndian.Uint32(b[12:]))),
			Time:  binary.LittleEndian.Uint64(b[16:]),
			CPU:   int(binary.LittleEndian.Uint32(b[24:])),
		}
		size := int(binary.LittleEndian.Uint32(b[32:]))
		if 36+size > len(b) {
			return
		}
		smp.Raw = b[36 : 36+size]
		fn(smp)
	case unix.PERF_RECORD_LOST:
		if len(b) < 16 {
			return
		}
		if ev, ok := s.ids[binary.LittleEndian.Uint64(b[0:])]; ok {
			s.lost[ev] += binary.LittleEndian.Uint64(b[8:])
		}
	}
}

// Close releases the events and ring buffers.
func (s *Session) Close() {
	for _, r := range s.rings {
		unix.Munmap(r.mem)
	}
	s.rings = nil
	for _, fd := range s.fds {
		unix.Close(fd)
	}
	s.fds = nil
}
