//go:build linux

// Package idcheck is shared by the test programs under internal/testprog: it
// checks, on locked OS threads, that the rseq package's ids agree with the
// getcpu system call on every CPU the process may run on, and describes the
// outcome as JSON for the parent test (process_test.go in the module root).
package idcheck

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"sync"
	"unsafe"

	"github.com/gorseq/rseq"
	"golang.org/x/sys/unix"
)

// Features is rseq.Support in JSON form, with the errno's name spelled out.
type Features struct {
	Usable           bool     `json:"usable"`
	Reason           string   `json:"reason"`
	Errno            int      `json:"errno"`
	ErrnoName        string   `json:"errno_name"`
	Mode             string   `json:"mode"`
	FeatureSize      int      `json:"feature_size"`
	Alignment        int      `json:"alignment"`
	FromAuxv         bool     `json:"from_auxv"`
	AreaSize         int      `json:"area_size"`
	Signature        uint32   `json:"signature"`
	Fields           []string `json:"fields"`
	Cgo              bool     `json:"cgo"`
	Glibc            bool     `json:"glibc"`
	GlibcOffset      int64    `json:"glibc_offset"`
	GlibcSize        uint32   `json:"glibc_size"`
	Operations       bool     `json:"operations"`
	OperationsReason string   `json:"operations_reason"`
	GoVersion        string   `json:"go_version"`
	RuntimeVerified  bool     `json:"runtime_verified"`
	Notes            []string `json:"notes"`
}

// FeaturesOf converts s.
func FeaturesOf(s rseq.Support) Features {
	f := Features{
		Usable:           s.Usable,
		Reason:           s.Reason,
		Errno:            int(s.Errno),
		Mode:             s.Mode.String(),
		FeatureSize:      s.FeatureSize,
		Alignment:        s.Alignment,
		FromAuxv:         s.FromAuxv,
		AreaSize:         s.AreaSize,
		Signature:        s.Signature,
		Fields:           s.Fields(),
		Cgo:              s.Cgo,
		Glibc:            s.Glibc,
		GlibcOffset:      s.GlibcOffset,
		GlibcSize:        s.GlibcSize,
		Operations:       s.Operations,
		OperationsReason: s.OperationsReason,
		GoVersion:        s.GoVersion,
		RuntimeVerified:  s.RuntimeVerified,
		Notes:            s.Notes,
	}
	if s.Errno != 0 {
		f.ErrnoName = unix.ErrnoName(s.Errno)
	}
	return f
}

// Thread is what one locked OS thread saw.
type Thread struct {
	TID  int  `json:"tid"`
	Main bool `json:"main"` // the process's initial thread
	// Area is rseq.AreaAddress() on the thread: 0 when it uses the fallback.
	Area uint64 `json:"area"`
	// Expected is the area address the program expects (glibc's, computed
	// in C on the same thread), or 0 when it has no expectation.
	Expected uint64 `json:"expected,omitempty"`
	// CPUs lists the CPUs the thread was pinned to, in order.
	CPUs []int `json:"cpus"`
	// Errors lists every disagreement found; empty when all ids agreed.
	Errors []string `json:"errors"`
}

// Report is the whole program's output.
type Report struct {
	Features     Features `json:"features"`
	PossibleCPUs int      `json:"possible_cpus"`
	AllowedCPUs  []int    `json:"allowed_cpus"`
	Threads      []Thread `json:"threads"`
	// C holds what the C side of a cgo program saw (nil without cgo).
	C *CSide `json:"c,omitempty"`
	// Errors lists failures outside any one thread.
	Errors []string `json:"errors"`
}

// CSide is glibc's view of rseq, read by C code in a cgo program.
type CSide struct {
	RseqOffset int64  `json:"rseq_offset"`
	RseqSize   uint32 `json:"rseq_size"`
}

// OK reports whether no check failed.
func (r *Report) OK() bool {
	if len(r.Errors) > 0 {
		return false
	}
	for _, t := range r.Threads {
		if len(t.Errors) > 0 {
			return false
		}
	}
	return true
}

// Options configures Run.
type Options struct {
	// Threads is the number of extra locked threads checked besides the
	// calling one.
	Threads int
	// Expected, if set, returns the area address the calling thread should
	// report; it is called on the thread being checked.
	Expected func() uintptr
	// Hold, if set, is called once every thread has been checked and while
	// all of them are still alive and locked, with the finished report;
	// Run returns after Hold does.
	Hold func(*Report)
}

// Run checks the calling thread, which must be locked (the program's main
// thread when main locked it in an init function), then o.Threads further
// threads at the same time, each locked so that they are distinct OS threads.
func Run(o Options) *Report {
	r := &Report{Features: FeaturesOf(rseq.Features()), PossibleCPUs: rseq.PossibleCPUs()}
	allowed, err := allowedCPUs()
	if err != nil {
		r.Errors = append(r.Errors, err.Error())
		return r
	}
	r.AllowedCPUs = allowed
	r.Threads = append(r.Threads, checkThread(allowed, r.PossibleCPUs, o.Expected))
	r.Threads[0].Main = r.Threads[0].TID == os.Getpid()

	results := make([]Thread, o.Threads)
	var done, exited sync.WaitGroup
	release := make(chan struct{})
	for i := range results {
		done.Add(1)
		exited.Add(1)
		go func() {
			defer exited.Done()
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			results[i] = checkThread(allowed, r.PossibleCPUs, o.Expected)
			done.Done()
			<-release // keep the thread busy so no other checker gets it
		}()
	}
	done.Wait()
	r.Threads = append(r.Threads, results...)
	seen := map[int]bool{}
	for _, t := range r.Threads {
		if seen[t.TID] {
			r.Errors = append(r.Errors, fmt.Sprintf("thread %d checked twice: locked goroutines shared a thread", t.TID))
		}
		seen[t.TID] = true
	}
	areas := map[uint64]int{}
	for _, t := range r.Threads {
		if t.Area == 0 {
			continue
		}
		if other, dup := areas[t.Area]; dup {
			r.Errors = append(r.Errors, fmt.Sprintf("threads %d and %d share the area %#x", other, t.TID, t.Area))
		}
		areas[t.Area] = t.TID
	}
	if o.Hold != nil {
		o.Hold(r)
	}
	close(release)
	exited.Wait()
	return r
}

// Print writes r as one line of JSON and returns the exit status the
// program should end with: 0 when every check passed, 1 otherwise.
func Print(w io.Writer, r *Report) int {
	b, err := json.Marshal(r)
	if err != nil {
		fmt.Fprintln(os.Stderr, "idcheck:", err)
		return 2
	}
	fmt.Fprintf(w, "%s\n", b)
	if !r.OK() {
		return 1
	}
	return 0
}

func allowedCPUs() ([]int, error) {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return nil, fmt.Errorf("sched_getaffinity: %w", err)
	}
	var cpus []int
	for i := 0; i < len(set)*64; i++ {
		if set.IsSet(i) {
			cpus = append(cpus, i)
		}
	}
	if len(cpus) == 0 {
		return nil, fmt.Errorf("sched_getaffinity: empty CPU set")
	}
	return cpus, nil
}

// getcpu is the raw system call, the reference the package is checked against.
func getcpu() (cpu, node int, err error) {
	var c, n uint32
	_, _, e := unix.RawSyscall(unix.SYS_GETCPU, uintptr(unsafe.Pointer(&c)), uintptr(unsafe.Pointer(&n)), 0)
	if e != 0 {
		return 0, 0, fmt.Errorf("getcpu: %w", e)
	}
	return int(c), int(n), nil
}

// checkThread pins the calling (locked) thread to each allowed CPU in turn
// and compares the package's ids with getcpu's, then restores the thread's
// affinity.
func checkThread(allowed []int, possible int, expected func() uintptr) Thread {
	t := Thread{TID: unix.Gettid(), CPUs: []int{}, Errors: []string{}}
	fail := func(format string, args ...any) {
		t.Errors = append(t.Errors, fmt.Sprintf(format, args...))
	}
	t.Area = uint64(areaAddress())
	if expected != nil {
		t.Expected = uint64(expected())
		if t.Area != t.Expected {
			fail("AreaAddress() = %#x, expected %#x", t.Area, t.Expected)
		}
	}
	var orig unix.CPUSet
	if err := unix.SchedGetaffinity(0, &orig); err != nil {
		fail("sched_getaffinity: %v", err)
		return t
	}
	defer func() {
		if err := unix.SchedSetaffinity(0, &orig); err != nil {
			fail("restoring the affinity: %v", err)
		}
	}()
	for _, cpu := range allowed {
		var one unix.CPUSet
		one.Set(cpu)
		if err := unix.SchedSetaffinity(0, &one); err != nil {
			fail("sched_setaffinity to CPU %d: %v", cpu, err)
			continue
		}
		t.CPUs = append(t.CPUs, cpu)
		c, n, err := getcpu()
		if err != nil {
			fail("%v", err)
			continue
		}
		if c != cpu {
			fail("getcpu says CPU %d after pinning to CPU %d", c, cpu)
		}
		if got := rseq.CPU(); got != c {
			fail("on CPU %d: rseq.CPU() = %d", c, got)
		}
		if got := rseq.NodeID(); got != n {
			fail("on CPU %d: rseq.NodeID() = %d, getcpu's node is %d", c, got, n)
		}
		if got := rseq.ConcurrencyID(); got < 0 || got >= possible {
			fail("on CPU %d: rseq.ConcurrencyID() = %d, outside [0, %d)", c, got, possible)
		}
		if t.Area != 0 {
			// The kernel keeps cpu_id (offset 4) of the thread's
			// registered area current: reading it directly shows the
			// area really is this thread's registration.
			if got := int32(loadUint32(uintptr(t.Area) + 4)); int(got) != c {
				fail("on CPU %d: cpu_id in the area at %#x is %d", c, t.Area, got)
			}
			if rseq.Features().Operations {
				checkSections(c, fail)
			}
		}
	}
	return t
}

// checkSections runs two sections on the thread, pinned to CPU c: rseq.Add
// and rseq.AddCPU must both update slot c, as sections and not through
// their fallbacks. That proves the sections found the thread's area (the
// one AreaAddress reports: glibc's in a cgo program) and read c from it.
func checkSections(c int, fail func(format string, args ...any)) {
	const words = rseq.CPUStride / 8
	cells := make([]int64, rseq.Slots()*words)
	fallbacks := func() (add, addCPU uint64) {
		for _, s := range rseq.Stats() {
			switch s.Name {
			case "add":
				add = s.Fallbacks
			case "addCPU":
				addCPU = s.Fallbacks
			}
		}
		return add, addCPU
	}
	add0, addCPU0 := fallbacks()
	if s := rseq.Add(unsafe.Pointer(&cells[0]), rseq.CPUStride, rseq.ByCPU, 1); s != c {
		fail("on CPU %d: rseq.Add updated slot %d", c, s)
	}
	rseq.AddCPU(unsafe.Pointer(&cells[0]), 2)
	for s := range rseq.Slots() {
		want := int64(0)
		if s == c {
			want = 3
		}
		if got := cells[s*words]; got != want {
			fail("on CPU %d: after rseq.Add(1) and rseq.AddCPU(2), slot %d holds %d, want %d", c, s, got, want)
		}
	}
	if add1, addCPU1 := fallbacks(); add1 != add0 || addCPU1 != addCPU0 {
		fail("on CPU %d: rseq.Add and rseq.AddCPU took their fallbacks (%d and %d times) on a thread with an area", c, add1-add0, addCPU1-addCPU0)
	}
}
