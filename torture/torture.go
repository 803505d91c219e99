//go:build linux && (amd64 || arm64)

package torture

import (
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gorseq/rseq/internal/ptrace"
	"github.com/gorseq/rseq/scan"
	"golang.org/x/sys/unix"
)

// section is the shared state of one section, aggregated over every address
// space it is mapped into.
type section struct {
	rep  *SectionReport
	hits []int // aborts per point
	offs []uint64
	// post is the post-commit offset (the first byte after the commit),
	// where the post-commit stalls stop threads; commit is the index of
	// the commit instruction (the last point), where the commit stalls do.
	post   uint64
	commit int
	// noCommitStalls is set when a commit stall was due but could not be
	// made: the commit point is no longer armed for them.
	noCommitStalls bool
	// movedWindows counts the commit-stall windows opened on another CPU
	// than the thread's.
	movedWindows int
}

func (s *section) complete(i, reps int) bool { return s.hits[i] >= reps }

// bp is one abort point in one address space.
type bp struct {
	addr     uint64
	orig     [bpLen]byte // the instruction bytes under the breakpoint
	armed    bool        // the breakpoint is in memory
	steppers int         // threads stepping over the original instruction
	sec      *section
	idx      int
	desc     uint64 // descriptor address in this space
	abort    uint64
	sigWord  uint32 // the 4 bytes before abort_ip, read at arm time
	sigRead  bool
	// hook marks the breakpoint on the dynamic loader's _dl_debug_state,
	// which it calls whenever dlopen or dlclose change the mappings.
	hook bool
	// post marks the breakpoint at a section's post-commit address (idx
	// is -1): outside the section, where post-commit stalls happen.
	post bool
	// exit marks a breakpoint at one of a section's exits (idx is -1),
	// armed while a commit stall's window is open in the section: a pass
	// that leaves there closes the window.
	exit bool
}

// space is one address space (a process and its vfork children).
type space struct {
	pid   int
	mem   *ptrace.Mem
	bps   map[uint64]*bp
	maps  string
	users int
	// deferred holds the breakpoints back until the program reaches
	// trigger (Go's main.main): a Go package may check its own code during
	// initialization (this module's does), and would see them.
	deferred     bool
	trigger      uint64
	triggerOrig  [bpLen]byte
	triggerArmed bool
	checkedExe   bool
	hook         *bp
}

type thread struct {
	tid      int
	tgid     int
	sp       *space
	stepping *bp
	// expectStop is set for a new task whose initial SIGSTOP is due.
	expectStop bool
	// orphan is set for a task that stopped before its creator's event.
	orphan bool
	// pinned is set while the thread's affinity is narrowed to one CPU
	// (a random injection or a migrating abort); mask is what to restore.
	// moved marks a pin made by a migrating abort, undone at the
	// thread's next breakpoint or a few milliseconds later (movedAt).
	pinned  bool
	moved   bool
	movedAt time.Time
	mask    unix.CPUSet
	// lastSec is the section the thread last stopped inside (an abort),
	// nil once it left it through a breakpoint past its commit or exit:
	// a stop at a commit of another section means a fresh pass, the
	// first of its call as far as torture can tell.
	lastSec *section
}

type event struct {
	pid int
	ws  unix.WaitStatus
}

type tracer struct {
	cfg      Config
	reps     int
	root     int
	threads  map[int]*thread
	sections map[string]*section
	files    map[string]*scan.Object
	order    []string
	rep      Report
	stopped  bool // torture over: breakpoints removed
	rng      *rand.Rand
	lastPin  *thread
	start    time.Time
	// noted holds the keys of the problems already noted once.
	noted map[string]bool
	// stopDue and rescanDue ask the tracer's thread to end the torture
	// and to rescan the address spaces (see periodic and doDue).
	stopDue, rescanDue bool
	// stalls is the number of stalls of each kind wanted per section,
	// migrate whether forced aborts may move threads (see stall.go).
	stalls  int
	migrate bool
	// stall is the stall in progress, if any: one at a time.
	stall *stall
	// stalls2 is set where commit stalls are possible: two CPUs or more.
	stalls2 bool
	// fullMask is the program's CPU affinity when it started.
	fullMask unix.CPUSet
}

// Run runs cfg.Args under torture and returns the report once every traced
// task has exited. The error reports a failure to start or trace the
// program. Run reaps any child of this process (it waits for all children),
// so the caller should have no other child running.
func Run(cfg Config) (*Report, error) {
	if len(cfg.Args) == 0 {
		return nil, errors.New("torture: no command given")
	}
	if cfg.Reps <= 0 {
		cfg.Reps = 1
	}
	if cfg.Grace <= 0 {
		cfg.Grace = 10 * time.Second
	}
	if cfg.ProgressEvery <= 0 {
		cfg.ProgressEvery = time.Second
	}
	if cfg.StallTime <= 0 {
		cfg.StallTime = DefaultStallTime
	}
	type result struct {
		r   *Report
		err error
	}
	ch := make(chan result, 1)
	go func() {
		// Every ptrace request must come from the thread that started the
		// program. The thread is not unlocked: it dies with the goroutine.
		runtime.LockOSThread()
		r, err := run(cfg)
		ch <- result{r, err}
	}()
	res := <-ch
	return res.r, res.err
}

func run(cfg Config) (*Report, error) {
	path, err := exec.LookPath(cfg.Args[0])
	if err != nil {
		return nil, fmt.Errorf("torture: %w", err)
	}
	files := []*os.File{cfg.Stdin, cfg.Stdout, cfg.Stderr}
	var null *os.File
	for i, f := range files {
		if f == nil {
			if null == nil {
				null, err = os.OpenFile(os.DevNull, os.O_RDWR, 0)
				if err != nil {
					return nil, err
				}
				defer null.Close()
			}
			files[i] = null
		}
	}
	env := cfg.Env
	if env == nil {
		env = os.Environ()
	}
	start := time.Now()
	proc, err := os.StartProcess(path, cfg.Args, &os.ProcAttr{
		Dir: cfg.Dir, Env: env, Files: files,
		Sys: &syscall.SysProcAttr{Ptrace: true},
	})
	if err != nil {
		return nil, fmt.Errorf("torture: starting %s: %w", cfg.Args[0], err)
	}
	pid := proc.Pid
	proc.Release()

	// The program stops with SIGTRAP after its execve.
	var ws unix.WaitStatus
	for {
		_, err = unix.Wait4(pid, &ws, unix.WALL, nil)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("torture: waiting for %s to start: %w", cfg.Args[0], err)
	}
	if !ws.Stopped() {
		return nil, fmt.Errorf("torture: %s did not start (wait status %#x)", cfg.Args[0], uint32(ws))
	}
	opts := unix.PTRACE_O_TRACECLONE | unix.PTRACE_O_TRACEFORK | unix.PTRACE_O_TRACEVFORK |
		unix.PTRACE_O_TRACEEXEC | unix.PTRACE_O_EXITKILL
	if err := unix.PtraceSetOptions(pid, opts); err != nil {
		unix.Kill(pid, unix.SIGKILL)
		return nil, fmt.Errorf("torture: PTRACE_SETOPTIONS: %w", err)
	}
	if _, err := ptrace.GetRseqConfig(pid); errors.Is(err, ptrace.ErrNoRseqConfig) {
		unix.Kill(pid, unix.SIGKILL)
		return nil, fmt.Errorf("torture: %w", err)
	}

	seed := cfg.Seed
	if seed == 0 {
		seed = time.Now().UnixNano()
	}
	t := &tracer{
		cfg: cfg, reps: cfg.Reps, root: pid,
		threads:  map[int]*thread{},
		sections: map[string]*section{},
		files:    map[string]*scan.Object{},
		rng:      rand.New(rand.NewSource(seed)),
		start:    start,
		noted:    map[string]bool{},
		stalls:   cfg.Stalls,
		migrate:  !cfg.NoMigrate,
	}
	switch {
	case t.stalls == 0:
		t.stalls = DefaultStalls
	case t.stalls < 0:
		t.stalls = 0
	}
	t.rep.Stalls = t.stalls
	if unix.SchedGetaffinity(pid, &t.fullMask) != nil || t.fullMask.Count() < 2 {
		// One CPU: no thread can be moved, and no commit stall (which
		// needs the others kept off a thread's CPU) can happen.
		t.migrate, t.stalls2 = false, false
	} else {
		t.stalls2 = t.stalls > 0
	}
	sp, err := t.newSpace(pid)
	if err != nil {
		unix.Kill(pid, unix.SIGKILL)
		return nil, fmt.Errorf("torture: %w", err)
	}
	t.threads[pid] = &thread{tid: pid, tgid: pid, sp: sp}
	sp.users++
	t.rep.Processes, t.rep.Threads = 1, 1
	t.rescan(sp)

	// This thread waits for the tracees itself (a stop wakes it directly);
	// a second goroutine keeps the time, under mu: it injects the random
	// aborts and kills the program at the end of the grace period (any
	// thread may), and leaves what needs the tracer's thread (the end of
	// the torture, rescans, which write breakpoints) due for this loop. The
	// kernel may let only the tracer force writes to read-only code
	// through /proc/PID/mem (proc_mem.force_override=ptrace, as in
	// Debian's 6.12 and 7.x kernels); ptrace requests must come from it
	// anyway. Due work waits for the next event of any tracee: without
	// one, nothing runs into a breakpoint either.
	var mu sync.Mutex
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t.periodic(&mu, done, start)
	}()
	t.cont(pid, 0)
	for {
		var ws unix.WaitStatus
		// While a stall holds a thread, the loop polls: the stall must
		// end on time even if no tracee has anything to report (the
		// others may all be waiting for the stalled one).
		opts := unix.WALL
		if t.stallWaiting() {
			opts |= unix.WNOHANG
		}
		wpid, err := unix.Wait4(-1, &ws, opts, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			break // ECHILD: every tracee is gone
		}
		mu.Lock()
		t.doDue()
		if wpid > 0 {
			t.handle(event{wpid, ws})
		}
		t.stallTick()
		mu.Unlock()
		if wpid == 0 {
			time.Sleep(200 * time.Microsecond)
		}
	}
	close(done)
	<-finished
	t.rep.Duration = time.Since(start)
	for _, sp := range t.spaces() {
		sp.mem.Close()
	}
	t.totals()
	return &t.rep, nil
}

// periodic keeps the time until done is closed: it makes the end of the
// torture (at the timeout) and rescans of the address spaces for new
// mappings due, kills the program at the end of the grace period, injects
// random aborts and prints progress.
func (t *tracer) periodic(mu *sync.Mutex, done <-chan struct{}, start time.Time) {
	cfg := t.cfg
	period := 20 * time.Millisecond
	if cfg.Inject > 0 && cfg.Inject/2 < period {
		period = max(cfg.Inject/2, 500*time.Microsecond)
	}
	tick := time.NewTicker(period)
	defer tick.Stop()
	var deadline, killAt time.Time
	if cfg.Timeout > 0 {
		deadline = start.Add(cfg.Timeout)
	}
	nextProgress := start.Add(cfg.ProgressEvery)
	nextInject := time.Time{}
	if cfg.Inject > 0 {
		nextInject = start.Add(cfg.Inject)
	}
	nextMaps := start.Add(50 * time.Millisecond)
	for {
		var now time.Time
		select {
		case <-done:
			return
		case now = <-tick.C:
		}
		mu.Lock()
		if !deadline.IsZero() && !t.rep.TimedOut && now.After(deadline) {
			t.rep.TimedOut = true
			t.stopDue = true
			killAt = now.Add(cfg.Grace)
		}
		if !killAt.IsZero() && now.After(killAt) && !t.rep.Killed {
			t.rep.Killed = true
			for tid := range t.threads {
				unix.Kill(tid, unix.SIGKILL)
			}
		}
		if !t.stopped && now.After(nextMaps) {
			nextMaps = now.Add(50 * time.Millisecond)
			t.rescanDue = true
		}
		if t.stall == nil {
			// A thread moved by an abort goes back to its mask soon:
			// left pinned, a thread that hits no more breakpoints
			// would stay on one CPU for good.
			for _, th := range t.threads {
				if th.moved && now.Sub(th.movedAt) > 5*time.Millisecond {
					t.unpin(th)
				}
			}
		}
		if !nextInject.IsZero() && !t.stopped && !t.stopDue && t.stall == nil && now.After(nextInject) {
			t.inject()
			nextInject = now.Add(time.Duration(t.rng.Int63n(int64(2*cfg.Inject) + 1)))
		}
		if cfg.Progress != nil && now.After(nextProgress) {
			nextProgress = now.Add(cfg.ProgressEvery)
			t.totals()
			fmt.Fprintf(cfg.Progress, "torture: %5.1fs  %d/%d points (%.1f%%)  %d aborts  %d+%d stalls  %d sections\n",
				now.Sub(start).Seconds(), t.rep.Covered, t.rep.Points, t.rep.Coverage(), t.rep.Aborts, t.rep.CommitStalls, t.rep.PostCommitStalls, len(t.sections))
		}
		mu.Unlock()
	}
}

// doDue does, on the tracer's thread, the work periodic made due.
func (t *tracer) doDue() {
	if t.stopDue {
		t.stopDue = false
		t.stop()
	}
	if t.rescanDue {
		t.rescanDue = false
		if !t.stopped {
			for _, sp := range t.spaces() {
				t.rescan(sp)
			}
		}
	}
}

func (t *tracer) cont(tid, sig int) {
	// ESRCH means the task died meanwhile; its exit is reported later.
	_ = unix.PtraceCont(tid, sig)
}

func (t *tracer) spaces() []*space {
	seen := map[*space]bool{}
	var out []*space
	for _, th := range t.threads {
		if th.sp != nil && !seen[th.sp] {
			seen[th.sp] = true
			out = append(out, th.sp)
		}
	}
	return out
}

func (t *tracer) newSpace(pid int) (*space, error) {
	mem, err := ptrace.OpenMem(pid, true)
	if err != nil {
		return nil, fmt.Errorf("opening the memory of process %d: %w", pid, err)
	}
	return &space{pid: pid, mem: mem, bps: map[uint64]*bp{}}, nil
}

func (t *tracer) note(format string, args ...any) {
	if len(t.rep.Notes) < 50 {
		t.rep.Notes = append(t.rep.Notes, fmt.Sprintf(format, args...))
	}
}

// noteOnce notes a problem the first time key is seen.
func (t *tracer) noteOnce(key, format string, args ...any) {
	if t.noted[key] {
		return
	}
	t.noted[key] = true
	t.note(format, args...)
}

// gone reports whether process or thread id has exited (or is exiting):
// requests failing on it need no note.
func gone(id int) bool {
	st := ptrace.ThreadState(id, id)
	return st == 0 || st == 'Z' || st == 'X'
}

// setRegs writes th's registers; a failure on a live thread is noted with
// what it was for (the thread then runs on from where it stopped).
func (t *tracer) setRegs(th *thread, regs *unix.PtraceRegs, what string) error {
	err := unix.PtraceSetRegs(th.tid, regs)
	if err != nil && !gone(th.tid) {
		t.noteOnce("regs "+what+strconv.Itoa(th.tid), "thread %d: setting its registers to %s: %v", th.tid, what, err)
	}
	return err
}

// execMaps returns the executable file mappings of pid, to notice dlopen.
func execMaps(pid int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/maps")
	if err != nil {
		return ""
	}
	var sb strings.Builder
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) >= 6 && strings.Contains(f[1], "x") && strings.HasPrefix(f[5], "/") {
			sb.WriteString(line)
			sb.WriteByte('\n')
		}
	}
	return sb.String()
}

// rescan scans the objects mapped into sp when its executable mappings
// changed and sets breakpoints on the new sections' points.
func (t *tracer) rescan(sp *space) {
	m := execMaps(sp.pid)
	if m == "" || m == sp.maps {
		return
	}
	sp.maps = m
	// The process tells where each object is loaded; the sections are
	// read from the files, which hold neither the breakpoints nor (before
	// the dynamic loader ran) unrelocated descriptors.
	mapped, errs := scan.ScanProcess(sp.pid, scan.Options{})
	for _, err := range errs {
		t.note("scan of process %d: %v", sp.pid, err)
	}
	if !sp.checkedExe {
		sp.checkedExe = true
		t.deferToMain(sp, mapped)
	}
	if sp.hook == nil {
		t.hookLoader(sp, mapped)
	}
	live := map[uint64]bool{}
	var posts []*bp
	for _, m := range mapped {
		if !strings.HasPrefix(m.Path, "/") {
			continue // the vDSO
		}
		o, err := t.scanFile(m.Path)
		if err != nil {
			t.note("scan of %s: %v", m.Path, err)
			continue
		}
		bias := m.Bias
		for i := range o.Sections {
			fs := &o.Sections[i]
			if t.cfg.Filter != nil && !t.cfg.Filter(fs) {
				continue
			}
			s := *fs
			s.Descriptor += bias
			s.Start += bias
			s.Abort += bias
			key := fmt.Sprintf("%s@%#x", o.Path, fs.Descriptor)
			sec := t.sections[key]
			if sec == nil {
				sec = &section{rep: &SectionReport{
					Object: o.Path, Symbol: s.Symbol,
					Start: fs.Start, Abort: fs.Abort,
				}}
				sec.offs, sec.rep.Note = abortPoints(fs)
				sec.hits = make([]int, len(sec.offs))
				sec.rep.Points = len(sec.offs)
				sec.post, sec.commit = fs.PostCommitOffset, len(sec.offs)-1
				t.sections[key] = sec
				t.order = append(t.order, key)
			}
			if len(sec.offs) > 0 {
				posts = append(posts, &bp{addr: s.Start + sec.post, sec: sec, idx: -1, post: true, desc: s.Descriptor, abort: s.Abort})
				for _, x := range fs.Exits {
					posts = append(posts, &bp{addr: x + bias, sec: sec, idx: -1, exit: true, desc: s.Descriptor, abort: s.Abort})
				}
			}
			for i, off := range sec.offs {
				addr := s.Start + off
				live[addr] = true
				if b := sp.bps[addr]; b != nil {
					t.reconcile(sp, b) // again, if setting it failed before
					continue
				}
				b := &bp{addr: addr, sec: sec, idx: i, desc: s.Descriptor, abort: s.Abort}
				if err := sp.mem.Read(addr, b.orig[:]); err != nil {
					t.note("reading %#x in process %d: %v", addr, sp.pid, err)
					continue
				}
				if b.orig == bpInsn {
					// Not an instruction a section should hold, and
					// the tracer's own breakpoint if it lost track of
					// one: taking it for the original would trap
					// forever.
					t.noteOnce(fmt.Sprintf("bpinsn %d %#x", sp.pid, addr), "process %d, section %s: a breakpoint instruction is already at offset %#x; the point is not armed", sp.pid, sectionName(sec.rep), off)
					if sec.rep.Note == "" {
						sec.rep.Note = fmt.Sprintf("a breakpoint instruction is already at offset %#x", off)
					}
					continue
				}
				var sw [4]byte
				if s.Abort >= 4 && sp.mem.Read(s.Abort-4, sw[:]) == nil {
					b.sigWord, b.sigRead = binary.LittleEndian.Uint32(sw[:]), true
				}
				sp.bps[addr] = b
				t.reconcile(sp, b)
			}
		}
	}
	// The post-commit and exit breakpoints, where no abort point (nor
	// anything else) has one.
	for _, b := range posts {
		live[b.addr] = true
		if old := sp.bps[b.addr]; old != nil {
			t.reconcile(sp, old)
			continue
		}
		if err := sp.mem.Read(b.addr, b.orig[:]); err != nil {
			t.note("reading %#x in process %d: %v", b.addr, sp.pid, err)
			continue
		}
		if b.orig == bpInsn {
			continue
		}
		sp.bps[b.addr] = b
		t.reconcile(sp, b)
	}
	// A breakpoint is forgotten only when its code is no longer mapped
	// (nothing to restore). One whose object this scan missed (a scan
	// error, or the dynamic loader halfway through mapping a library)
	// stays: forgotten while armed, it would be found again with the
	// breakpoint instruction read as the original one, and hit forever.
	ranges := execRanges(m)
	for addr := range sp.bps {
		if !live[addr] && !inRanges(ranges, addr) {
			delete(sp.bps, addr)
		}
	}
}

// execRanges returns the address ranges of the mappings listed in maps
// (execMaps's lines).
func execRanges(maps string) [][2]uint64 {
	var out [][2]uint64
	for _, line := range strings.Split(maps, "\n") {
		lo, rest, ok := strings.Cut(line, "-")
		if !ok {
			continue
		}
		hi, _, _ := strings.Cut(rest, " ")
		a, err1 := strconv.ParseUint(lo, 16, 64)
		b, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 == nil && err2 == nil {
			out = append(out, [2]uint64{a, b})
		}
	}
	return out
}

func inRanges(ranges [][2]uint64, addr uint64) bool {
	for _, r := range ranges {
		if addr >= r[0] && addr < r[1] {
			return true
		}
	}
	return false
}

// maxPoints bounds the abort points of one section on an architecture with
// fixed-size instructions, like the scanner's disassembly: a real section
// is a few dozen instructions.
const maxPoints = 16 << 10

// abortPoints returns the offsets of the instruction boundaries of s (link
// time addresses), or a note saying why it cannot be tortured. With
// variable-length instructions they come from the disassembly; with
// fixed-size ones (arm64) they are every instruction-sized word of the
// section, decodable or not.
func abortPoints(s *scan.Section) ([]uint64, string) {
	var offs []uint64
	if insnSize == 0 {
		for _, in := range s.Instructions {
			offs = append(offs, in.Addr-s.Start)
		}
		if len(offs) == 0 {
			return nil, "instructions could not be decoded; not tortured"
		}
		return offs, ""
	}
	size := uint64(insnSize)
	switch {
	case s.PostCommitOffset == 0:
		return nil, "empty section; not tortured"
	case s.Start%size != 0 || s.PostCommitOffset%size != 0:
		return nil, fmt.Sprintf("start or length not a multiple of the %d-byte instruction size; not tortured", size)
	case s.PostCommitOffset/size > maxPoints:
		return nil, fmt.Sprintf("section of %d instructions (over %d); not tortured", s.PostCommitOffset/size, maxPoints)
	}
	for off := uint64(0); off < s.PostCommitOffset; off += size {
		offs = append(offs, off)
	}
	return offs, ""
}

// scanFile scans (once) the ELF file at path with disassembly; addresses are
// link-time addresses.
func (t *tracer) scanFile(path string) (*scan.Object, error) {
	if o, ok := t.files[path]; ok {
		return o, nil
	}
	o, err := scan.ScanFile(path, scan.Options{Disassemble: true})
	if err != nil {
		return nil, err
	}
	t.files[path] = o
	return o, nil
}

// deferToMain holds sp's breakpoints back until main.main when the program
// is a Go program: its packages' initialization runs untouched.
func (t *tracer) deferToMain(sp *space, mapped []*scan.Object) {
	exe, err := os.Readlink("/proc/" + strconv.Itoa(sp.pid) + "/exe")
	if err != nil {
		return
	}
	for _, m := range mapped {
		if m.Path != exe {
			continue
		}
		addr, ok := goMain(exe)
		if !ok {
			return
		}
		addr += m.Bias
		var orig [bpLen]byte
		if err := sp.mem.Read(addr, orig[:]); err != nil {
			t.note("process %d: reading main.main at %#x: %v; its sections are tortured from the start", sp.pid, addr, err)
			return
		}
		if err := sp.mem.Write(addr, bpInsn[:]); err != nil {
			t.note("process %d: setting the breakpoint on main.main at %#x: %v; its sections are tortured from the start", sp.pid, addr, err)
			return
		}
		sp.deferred, sp.trigger, sp.triggerOrig, sp.triggerArmed = true, addr, orig, true
		return
	}
}

// hookLoader sets the breakpoint on the dynamic loader's _dl_debug_state
// (the debugger interface: called after each change of the loaded objects),
// where a rescan finds the sections of libraries loaded by dlopen before
// their code runs.
func (t *tracer) hookLoader(sp *space, mapped []*scan.Object) {
	for _, m := range mapped {
		if !strings.Contains(m.Path, "/ld-linux") && !strings.Contains(m.Path, "/ld64") {
			continue
		}
		addr, ok := dynSymbol(m.Path, "_dl_debug_state")
		if !ok {
			return
		}
		addr += m.Bias
		h := &bp{addr: addr, hook: true}
		if err := sp.mem.Read(addr, h.orig[:]); err != nil {
			t.note("process %d: reading the dynamic loader's _dl_debug_state at %#x: %v; libraries loaded by dlopen are found by the periodic check only", sp.pid, addr, err)
			return
		}
		sp.hook = h
		t.reconcile(sp, sp.hook)
		return
	}
}

// dynSymbol returns the value of the dynamic symbol name in the ELF file at
// path.
func dynSymbol(path, name string) (uint64, bool) {
	f, err := elf.Open(path)
	if err != nil {
		return 0, false
	}
	defer f.Close()
	syms, err := f.DynamicSymbols()
	if err != nil {
		return 0, false
	}
	for _, s := range syms {
		if s.Name == name && elf.ST_TYPE(s.Info) == elf.STT_FUNC {
			return s.Value, true
		}
	}
	return 0, false
}

// goMain returns the link-time address of main.main in the Go executable at
// path.
func goMain(path string) (uint64, bool) {
	f, err := elf.Open(path)
	if err != nil {
		return 0, false
	}
	defer f.Close()
	if f.Section(".go.buildinfo") == nil {
		return 0, false
	}
	syms, err := f.Symbols()
	if err != nil {
		return 0, false
	}
	for _, s := range syms {
		if s.Name == "main.main" && elf.ST_TYPE(s.Info) == elf.STT_FUNC {
			return s.Value, true
		}
	}
	return 0, false
}

// reached handles a thread stopped at sp's trigger: the breakpoints are
// armed and the thread runs main.main's first instruction.
func (t *tracer) reached(th *thread, regs *unix.PtraceRegs) {
	sp := th.sp
	t.disarmTrigger(sp)
	sp.deferred = false
	for _, b := range sp.bps {
		t.reconcile(sp, b)
	}
	if bpTrapAfter != 0 {
		regs.SetPC(sp.trigger)
		t.setRegs(th, regs, "main.main")
	}
	t.cont(th.tid, 0)
}

// disarmTrigger restores the instruction under sp's breakpoint on main.main.
func (t *tracer) disarmTrigger(sp *space) {
	if !sp.triggerArmed {
		return
	}
	if err := sp.mem.Write(sp.trigger, sp.triggerOrig[:]); err != nil && !gone(sp.pid) {
		t.note("process %d: removing the breakpoint on main.main at %#x: %v", sp.pid, sp.trigger, err)
	}
	sp.triggerArmed = false
}

// reconcile writes or removes b's breakpoint so that it is armed exactly
// when its point still needs aborts and no thread is stepping over it. A
// write that fails in a live process is noted, and on the section too: the
// point it leaves uncovered is not missed silently.
func (t *tracer) reconcile(sp *space, b *bp) {
	want := !t.stopped && b.steppers == 0 && (b.hook || !sp.deferred && t.wanted(b))
	if want == b.armed {
		return
	}
	v, what := b.orig[:], "removing"
	if want {
		v, what = bpInsn[:], "setting"
	}
	if err := sp.mem.Write(b.addr, v); err != nil {
		if sp.users > 0 && !gone(sp.pid) {
			t.writeFailed(sp, b, what, err)
		}
		return
	}
	b.armed = want
}

// writeFailed notes a breakpoint that could not be set or removed.
func (t *tracer) writeFailed(sp *space, b *bp, what string, err error) {
	if b.hook {
		t.noteOnce(fmt.Sprintf("hook %d %s", sp.pid, what), "process %d: %s the breakpoint on the dynamic loader's _dl_debug_state at %#x: %v", sp.pid, what, b.addr, err)
		return
	}
	off := b.sec.post
	if !b.post {
		off = b.sec.offs[b.idx]
	}
	msg := fmt.Sprintf("%s the breakpoint at offset %#x failed: %v", what, off, err)
	if b.sec.rep.Note == "" {
		b.sec.rep.Note = msg
	}
	t.noteOnce(fmt.Sprintf("bp %d %#x %s", sp.pid, b.addr, what), "process %d, section %s: %s", sp.pid, sectionName(b.sec.rep), msg)
}

// sectionName names a section for a note.
func sectionName(r *SectionReport) string {
	if r.Symbol != "" {
		return r.Symbol
	}
	return fmt.Sprintf("%s@%#x", r.Object, r.Start)
}

// stop ends the torture: every breakpoint is removed, a stall in progress
// ends and every thread the torture pinned gets its affinity back.
func (t *tracer) stop() {
	t.stopped = true
	t.endStall()
	t.unpinAll()
	for _, sp := range t.spaces() {
		for _, b := range sp.bps {
			t.reconcile(sp, b)
		}
		if sp.hook != nil {
			t.reconcile(sp, sp.hook)
		}
		if sp.triggerArmed {
			t.disarmTrigger(sp)
			sp.deferred = false
		}
	}
	if t.lastPin != nil {
		t.unpin(t.lastPin)
	}
}

func (t *tracer) handle(ev event) {
	tid, ws := ev.pid, ev.ws
	th := t.threads[tid]
	if ws.Exited() || ws.Signaled() {
		if tid == t.root {
			t.rep.Exited = ws.Exited()
			if ws.Exited() {
				t.rep.ExitCode = ws.ExitStatus()
			} else {
				t.rep.Signal = ws.Signal().String()
			}
		}
		if th != nil {
			if th.stepping != nil {
				th.stepping.steppers--
				t.reconcile(th.sp, th.stepping)
			}
			t.dropThread(th)
		}
		return
	}
	if !ws.Stopped() {
		return
	}
	sig := ws.StopSignal()
	if th == nil {
		// A new task that stopped before its creator's event arrived: keep
		// it stopped until we know its address space.
		t.threads[tid] = &thread{tid: tid, orphan: true}
		return
	}
	if sig == unix.SIGTRAP && ws.TrapCause() > 0 {
		t.ptraceEvent(th, ws.TrapCause())
		return
	}
	if th.expectStop && sig == unix.SIGSTOP {
		th.expectStop = false
		t.admit(th)
		t.cont(tid, 0)
		return
	}
	if sig == unix.SIGTRAP && th.sp != nil {
		if t.trap(th) {
			return
		}
	}
	if th.stepping != nil && sig != unix.SIGTRAP && t.stall != nil && t.stall.th == th && t.stall.phase == stepping {
		// A signal arrived during the step of a commit stall: hold it
		// back until the commit is made (a handler would run between
		// the stop and the commit, after the other threads are allowed
		// back on this CPU), then send it again.
		t.stall.sigs = append(t.stall.sigs, sig)
		if _, _, e := unix.Syscall6(unix.SYS_PTRACE, unix.PTRACE_SINGLESTEP, uintptr(tid), 0, 0, 0, 0); e != 0 && !gone(tid) {
			t.noteOnce("stallstep", "thread %d: resuming the step of a commit stall: %v", tid, e)
		}
		return
	}
	if th.stepping != nil && sig != unix.SIGTRAP {
		// A signal arrived during a step: deliver it and keep stepping;
		// the step ends at the handler's first instruction, and the
		// original instruction runs again after the handler returns.
		if _, _, e := unix.Syscall6(unix.SYS_PTRACE, unix.PTRACE_SINGLESTEP, uintptr(tid), 0, uintptr(sig), 0, 0); e != 0 {
			t.cont(tid, int(sig))
		}
		return
	}
	if th.sp != nil && sig != unix.SIGTRAP && sig != unix.SIGSTOP {
		t.countSignalAbort(th, sig)
	}
	switch sig {
	case unix.SIGSTOP, unix.SIGTSTP, unix.SIGTTIN, unix.SIGTTOU:
		if _, _, err := ptrace.SigInfo(tid); err == unix.EINVAL {
			// A group-stop of a tracee attached without PTRACE_SEIZE:
			// let it run on (it cannot be held in a group-stop).
			t.cont(tid, 0)
			return
		}
	}
	t.cont(tid, int(sig))
}

func (t *tracer) dropThread(th *thread) {
	if t.stall != nil && t.stall.th == th {
		t.finishStall(false)
	}
	delete(t.threads, th.tid)
	if t.lastPin == th {
		t.lastPin = nil
	}
	if sp := th.sp; sp != nil {
		sp.users--
		if sp.users == 0 {
			sp.mem.Close()
		}
	}
}

func (t *tracer) ptraceEvent(th *thread, cause int) {
	switch cause {
	case unix.PTRACE_EVENT_CLONE, unix.PTRACE_EVENT_FORK, unix.PTRACE_EVENT_VFORK:
		msg, err := unix.PtraceGetEventMsg(th.tid)
		if err != nil {
			t.cont(th.tid, 0)
			return
		}
		child := int(msg)
		sp := th.sp
		tgid := th.tgid
		if cause != unix.PTRACE_EVENT_CLONE {
			tgid = child
		}
		if cause == unix.PTRACE_EVENT_FORK && th.sp != nil {
			// The child has a copy of the memory, breakpoints included.
			nsp, err := t.newSpace(child)
			if err != nil {
				t.note("fork child %d: %v", child, err)
			} else {
				for a, b := range th.sp.bps {
					c := *b
					c.steppers = 0
					nsp.bps[a] = &c
				}
				nsp.maps = th.sp.maps
				if h := th.sp.hook; h != nil {
					c := *h
					c.steppers = 0
					nsp.hook = &c
					t.reconcile(nsp, nsp.hook)
				}
				nsp.checkedExe = true
				nsp.deferred, nsp.trigger = th.sp.deferred, th.sp.trigger
				nsp.triggerOrig, nsp.triggerArmed = th.sp.triggerOrig, th.sp.triggerArmed
				for _, b := range nsp.bps {
					t.reconcile(nsp, b)
				}
			}
			sp = nsp
			t.rep.Processes++
		} else if cause == unix.PTRACE_EVENT_VFORK {
			t.rep.Processes++
		}
		t.rep.Threads++
		if sp != nil {
			sp.users++
		}
		c := t.threads[child]
		if c != nil && c.orphan {
			// Without a space (memory not accessible) it runs untortured.
			c.orphan, c.sp, c.tgid = false, sp, tgid
			t.admit(c)
			t.cont(child, 0)
		} else {
			c = &thread{tid: child, tgid: tgid, sp: sp, expectStop: true}
			t.threads[child] = c
		}
		if th.pinned && !c.pinned {
			// It inherited its creator's pin: undone with the
			// creator's at the end.
			c.pinned, c.mask = true, th.mask
		}
		t.cont(th.tid, 0)
	case unix.PTRACE_EVENT_EXEC:
		// The task now has a fresh address space, and the thread id of
		// the thread group leader; the other threads are gone.
		if msg, err := unix.PtraceGetEventMsg(th.tid); err == nil && int(msg) != th.tid {
			if old := t.threads[int(msg)]; old != nil {
				t.dropThread(old)
			}
		}
		old := th.sp
		for _, o := range t.threads {
			if o != th && o.tgid == th.tgid {
				t.dropThread(o)
			}
		}
		if old != nil {
			old.users--
			if old.users == 0 {
				old.mem.Close()
			}
		}
		th.sp, th.stepping = nil, nil
		if sp, err := t.newSpace(th.tid); err == nil {
			sp.users = 1
			th.sp = sp
			if !t.stopped {
				t.rescan(sp)
			}
		} else {
			t.note("after exec in %d: %v", th.tid, err)
		}
		t.cont(th.tid, 0)
	default:
		t.cont(th.tid, 0)
	}
}

// trap handles a SIGTRAP: the end of a step over a breakpoint, or a
// breakpoint hit. It returns false for a SIGTRAP that is the program's own.
func (t *tracer) trap(th *thread) bool {
	sp := th.sp
	if b := th.stepping; b != nil {
		th.stepping = nil
		b.steppers--
		t.reconcile(sp, b)
		if t.stall != nil && t.stall.th == th && t.stall.phase == stepping {
			// The commit of a commit stall (or of a window without
			// one) is made.
			t.finishStall(t.stall.hold)
		}
		t.cont(th.tid, 0)
		return true
	}
	var regs unix.PtraceRegs
	if err := unix.PtraceGetRegs(th.tid, &regs); err != nil {
		return false
	}
	addr := regs.PC() - bpTrapAfter
	if addr == sp.trigger && sp.trigger != 0 && (sp.triggerArmed || !sp.deferred) {
		if isBreakpointStop(th.tid) {
			t.reached(th, &regs)
			return true
		}
	}
	b := sp.bps[addr]
	if b == nil && sp.hook != nil && sp.hook.addr == addr {
		b = sp.hook
	}
	if b == nil {
		return false
	}
	if !b.armed {
		// The breakpoint was removed after this thread hit it: run the
		// original instruction. It is written again first: qemu's TCG
		// (full-system emulation, several virtual CPUs) can go on
		// running a stale translation of the breakpoint after it was
		// removed, when the removal raced with the translation; every
		// pass then traps here forever. A write to the code drops
		// that translation; on hardware it changes nothing.
		if !isBreakpointStop(th.tid) {
			return false
		}
		if err := sp.mem.Write(b.addr, b.orig[:]); err != nil && !gone(sp.pid) {
			t.writeFailed(sp, b, "rewriting the instruction under", err)
		}
		// The thread stopped inside a section, if it is one: the kernel
		// would abort it for a stop there, and so does torture (going
		// on would run the rest of the pass unprotected).
		if b.idx >= 0 && t.abort(th, b, &regs, false) {
			return true
		}
		if bpTrapAfter != 0 {
			regs.SetPC(addr)
			if t.setRegs(th, &regs, "a removed breakpoint's address") != nil {
				return true // gone, or left stopped: noted
			}
		}
		t.cont(th.tid, 0)
		return true
	}
	if checkHitCode && !isBreakpointStop(th.tid) {
		return false
	}
	if th.moved && t.stall == nil {
		// Affinities change only between stalls: a stall has saved
		// what to restore.
		t.unpin(th)
	}
	if b.hook {
		// The loaded objects changed: find their sections now, before
		// any of their code runs.
		t.rescan(sp)
	} else if b.post || b.exit {
		if th.lastSec == b.sec {
			th.lastSec = nil
		}
		if s := t.stall; s != nil && s.th == th && s.phase == running && s.b.sec == b.sec {
			// The window's pass left the section another way, or
			// committed without being held: close the window.
			t.finishStall(false)
		}
		if b.post && t.postCommitStall(th, b) {
			return true
		}
	} else if t.abort(th, b, &regs, true) {
		return true
	} else {
		// Not inside a registered section.
		b.sec.rep.Unprotected++
	}
	t.stepOver(th, b, &regs)
	return true
}

// isBreakpointStop reports whether the SIGTRAP that stopped tid was raised
// by a breakpoint instruction.
func isBreakpointStop(tid int) bool {
	_, code, err := ptrace.SigInfo(tid)
	return err == nil && code == bpTrapCode
}

// stepOver runs the original instruction under b with the breakpoint
// removed (for this and every other thread until the step ends).
func (t *tracer) stepOver(th *thread, b *bp, regs *unix.PtraceRegs) {
	sp := th.sp
	b.steppers++
	t.reconcile(sp, b)
	regs.SetPC(b.addr)
	if err := t.setRegs(th, regs, "the breakpoint's address"); err != nil {
		b.steppers--
		t.reconcile(sp, b)
		return
	}
	th.stepping = b
	if err := unix.PtraceSingleStep(th.tid); err != nil {
		th.stepping = nil
		b.steppers--
		t.reconcile(sp, b)
	}
}

// countSignalAbort counts a signal about to be delivered to a handler while
// th is inside a section with rseq_cs set: the kernel aborts the section.
func (t *tracer) countSignalAbort(th *thread, sig unix.Signal) {
	if len(th.sp.bps) == 0 || ptrace.CaughtSignals(th.sp.pid)&(1<<(uint(sig)-1)) == 0 {
		return
	}
	var regs unix.PtraceRegs
	if unix.PtraceGetRegs(th.tid, &regs) != nil {
		return
	}
	// A stopped thread is at an instruction boundary: inside a section
	// exactly when its address is one of the section's points.
	b := th.sp.bps[regs.PC()]
	if b == nil {
		return
	}
	cfg, err := ptrace.GetRseqConfig(th.tid)
	if err != nil || cfg.Pointer == 0 {
		return
	}
	if cs, err := th.sp.mem.Uint64(cfg.Pointer + ptrace.OffRseqCS); err == nil && cs != 0 {
		b.sec.rep.SignalAborts++
	}
}

// abort does what the kernel does to a thread preempted at b.addr: if the
// thread's rseq_cs holds a descriptor whose range covers the address, check
// the signature before abort_ip, then clear rseq_cs and resume at abort_ip.
//
// With stalls true the hit may instead start a commit stall (the thread is
// due one in this section and stopped at its commit), and the abort may
// move the thread to another CPU first (see stall.go).
func (t *tracer) abort(th *thread, b *bp, regs *unix.PtraceRegs, stalls bool) bool {
	if b.idx < 0 {
		return false // not an abort point
	}
	sp := th.sp
	cfg, err := ptrace.GetRseqConfig(th.tid)
	if err != nil || cfg.Pointer == 0 {
		return false
	}
	cs, err := sp.mem.Uint64(cfg.Pointer + ptrace.OffRseqCS)
	if err != nil || cs == 0 {
		return false
	}
	abortIP := b.abort
	sigWord, sigOK := b.sigWord, b.sigRead
	if cs != b.desc {
		var d [32]byte
		if sp.mem.Read(cs, d[:]) != nil {
			return false
		}
		start := binary.LittleEndian.Uint64(d[8:])
		pco := binary.LittleEndian.Uint64(d[16:])
		abortIP = binary.LittleEndian.Uint64(d[24:])
		if b.addr < start || b.addr-start >= pco {
			return false
		}
		var sw [4]byte
		sigOK = sp.mem.Read(abortIP-4, sw[:]) == nil
		sigWord = binary.LittleEndian.Uint32(sw[:])
	}
	sec := b.sec
	if !sigOK || sigWord != cfg.Signature {
		// The kernel kills the thread with SIGSEGV.
		sec.rep.BadSignature++
		if bpTrapAfter != 0 {
			regs.SetPC(b.addr)
			t.setRegs(th, regs, "the faulting address")
		}
		t.cont(th.tid, int(unix.SIGSEGV))
		return true
	}
	commit := stalls && cs == b.desc && b.idx == sec.commit
	if commit && t.holdCommit(th, b, cfg, regs) {
		return true
	}
	fresh := th.lastSec != sec
	th.lastSec = sec
	var zero [8]byte
	if err := sp.mem.Write(cfg.Pointer+ptrace.OffRseqCS, zero[:]); err != nil {
		if !gone(sp.pid) {
			t.noteOnce(fmt.Sprintf("rseq_cs %d", th.tid), "thread %d: clearing rseq_cs at %#x: %v; the hit was stepped over without an abort", th.tid, cfg.Pointer+ptrace.OffRseqCS, err)
		}
		return false
	}
	// Sometimes the thread resumes on another CPU: a restart must read
	// its index again. At a commit whose point is covered (the
	// breakpoint is there for the commit stalls) it always does, and its
	// restarted pass runs alone on its CPU up to the commit, where it is
	// held (see stall.go).
	//
	// A commit stall's window is opened for a fresh pass only (see
	// lastSec): in it the thread has run from its call on, on the CPU
	// it stopped on, so a section that read its index before the
	// restart label has that CPU's, and the move makes it stale. The
	// first windows of a section move the thread, the later ones leave
	// it where it is, so that its pass surely reaches its commit again.
	// A pass that is not fresh gets a window without a hold: it makes
	// its commit alone, and the thread's next call is fresh.
	due := commit && sec.complete(b.idx, t.reps)
	cpu, moved, hold := -1, false, false
	if stalls && t.stall == nil {
		switch {
		case due && fresh && t.migrate && sec.movedWindows < t.stalls:
			cpu, moved = t.moveThread(th, cfg)
			hold = true
		case due && fresh && sec.rep.CommitStalls < t.stalls:
			hold = true
		case !due && t.migrate && t.rng.Intn(2) == 0:
			cpu, moved = t.moveThread(th, cfg)
		}
		if moved {
			sec.rep.MigratedAborts++
			th.moved, th.movedAt = !due, time.Now()
		} else if due {
			cpu = t.threadCPU(th, cfg.Pointer)
		}
	}
	regs.SetPC(abortIP)
	if err := t.setRegs(th, regs, "abort_ip"); err != nil {
		// rseq_cs is clear: the thread runs on unprotected from the
		// instruction, as after a ptrace stop on Linux 6.18. The point
		// stays armed for the next pass.
		return false
	}
	if due && t.stall == nil && t.openWindow(th, b, cpu, hold) {
		if moved {
			sec.movedWindows++
		}
	} else if due && t.stall == nil {
		// The others cannot be kept off a CPU: stop wanting commit
		// stalls here (aborting every pass at the commit would stop
		// the program).
		sec.noCommitStalls = true
		t.noteOnce("nocommitstall "+sectionName(sec.rep), "section %s: no commit stall possible (the other threads could not be kept off CPU %d)", sectionName(sec.rep), cpu)
		t.reconcile(sp, b)
	}
	sec.hits[b.idx]++
	sec.rep.Aborts++
	t.rep.Aborts++
	t.rep.LastAbort = time.Since(t.start)
	t.reconcile(sp, b)
	t.cont(th.tid, 0)
	return true
}

// inject forces a real abort at random: it pins a random thread to a CPU
// other than its current one (a migration aborts a section in progress),
// undoing the previous pin, and sends SIGURG where the program catches it.
func (t *tracer) inject() {
	if t.lastPin != nil {
		t.unpin(t.lastPin)
		t.lastPin = nil
	}
	var cands []*thread
	for _, th := range t.threads {
		if !th.orphan && !th.expectStop && th.stepping == nil && th.sp != nil {
			cands = append(cands, th)
		}
	}
	if len(cands) == 0 {
		return
	}
	sort.Slice(cands, func(i, j int) bool { return cands[i].tid < cands[j].tid })
	th := cands[t.rng.Intn(len(cands))]
	var mask unix.CPUSet
	if unix.SchedGetaffinity(th.tid, &mask) == nil && mask.Count() > 1 {
		cur := ptrace.LastCPU(th.tid)
		var cpus []int
		for c := 0; c < len(mask)*64; c++ {
			if mask.IsSet(c) && c != cur {
				cpus = append(cpus, c)
			}
		}
		if len(cpus) > 0 {
			var one unix.CPUSet
			one.Set(cpus[t.rng.Intn(len(cpus))])
			if unix.SchedSetaffinity(th.tid, &one) == nil {
				if !th.pinned {
					th.pinned, th.mask = true, mask
				}
				t.lastPin = th
				t.rep.Migrations++
			}
		}
	}
	const sigurgBit = 1 << (unix.SIGURG - 1)
	if ptrace.CaughtSignals(th.sp.pid)&sigurgBit != 0 {
		if unix.Tgkill(th.sp.pid, th.tid, unix.SIGURG) == nil {
			t.rep.Signals++
		}
	}
}

// unpinAll gives every thread torture pinned its affinity back, unless a
// stall is in progress (finishStall calls it again when it ends).
func (t *tracer) unpinAll() {
	if t.stall != nil {
		return
	}
	for _, th := range t.threads {
		t.unpin(th)
	}
	t.lastPin = nil
}

func (t *tracer) unpin(th *thread) {
	if th.pinned {
		unix.SchedSetaffinity(th.tid, &th.mask)
		th.pinned, th.moved = false, false
	}
}

// totals fills the report's per-section and overall figures.
func (t *tracer) totals() {
	t.rep.Sections = t.rep.Sections[:0]
	t.rep.Points, t.rep.Covered = 0, 0
	t.rep.CommitStalls, t.rep.PostCommitStalls = 0, 0
	for _, key := range t.order {
		sec := t.sections[key]
		r := *sec.rep
		r.Covered, r.Missed = 0, nil
		for i, h := range sec.hits {
			if h >= t.reps {
				r.Covered++
			} else {
				r.Missed = append(r.Missed, sec.offs[i])
			}
		}
		t.rep.Points += r.Points
		t.rep.Covered += r.Covered
		t.rep.CommitStalls += r.CommitStalls
		t.rep.PostCommitStalls += r.PostCommitStalls
		t.rep.Sections = append(t.rep.Sections, r)
	}
}
