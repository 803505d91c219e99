//go:build linux && (amd64 || arm64)

package torture

import (
	"errors"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"runtime"
	"sync"
	"syscall"
	"time"

	"github.com/gorseq/rseq/internal/ptrace"
	"github.com/gorseq/rseq/scan"
	"golang.org/x/sys/unix"
)

// Process lifecycle: the tracees (threads, forks, vforks and execs) as they
// appear and exit, the events of the wait loop, and the clock that ends the
// torture, kills the program at the end of the grace period and makes the
// periodic work due.

// The clock of the torture.
const (
	// tickPeriod is how often periodic runs; minTickPeriod bounds it
	// below when a shorter --inject interval asks for more.
	tickPeriod    = 20 * time.Millisecond
	minTickPeriod = 500 * time.Microsecond
	// mapsCheckEvery is the interval of the periodic check of the
	// executable mappings, which finds libraries mapped without the
	// dynamic loader's notice.
	mapsCheckEvery = 50 * time.Millisecond
	// movedFor is how long a thread moved by a migrating abort stays
	// pinned to its new CPU when it hits no breakpoint to undo it.
	movedFor = 5 * time.Millisecond
	// stallPoll is the wait loop's sleep between polls while a stall
	// holds a thread.
	stallPoll = 200 * time.Microsecond
)

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

// periodic keeps the time until done is closed: it makes the end of the
// torture (at the timeout) and rescans of the address spaces for new
// mappings due, kills the program at the end of the grace period, injects
// random aborts and prints progress.
func (t *tracer) periodic(mu *sync.Mutex, done <-chan struct{}, start time.Time) {
	cfg := t.cfg
	period := tickPeriod
	if cfg.Inject > 0 && cfg.Inject/2 < period {
		period = max(cfg.Inject/2, minTickPeriod)
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
	nextMaps := start.Add(mapsCheckEvery)
	stop := cfg.Stop
	for {
		var now time.Time
		select {
		case <-done:
			return
		case <-stop:
			// Interrupted: the torture ends and the program dies now
			// (handle kills any task that shows up later).
			stop = nil
			mu.Lock()
			t.rep.Interrupted = true
			t.stopDue = true
			t.killAll()
			mu.Unlock()
			continue
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
			t.killAll()
		}
		if !t.stopped && now.After(nextMaps) {
			nextMaps = now.Add(mapsCheckEvery)
			t.rescanDue = true
		}
		if t.stall == nil {
			// A thread moved by an abort goes back to its mask soon:
			// left pinned, a thread that hits no more breakpoints
			// would stay on one CPU for good.
			for _, th := range t.threads {
				if th.moved && now.Sub(th.movedAt) > movedFor {
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
			fmt.Fprintf(cfg.Progress, "torture: %5.1fs  %d/%d points (%.1f%%)  %d aborts  %d+%d stalls  %d of %d sections entered\n",
				now.Sub(start).Seconds(), t.rep.Covered, t.rep.Points, t.rep.Coverage(), t.rep.Aborts, t.rep.CommitStalls, t.rep.PostCommitStalls, t.rep.Entered, len(t.sections))
		}
		mu.Unlock()
	}
}

// killAll kills every task followed. A task created meanwhile, whose
// creator's event is still to come, is killed when it shows up (see
// handle).
func (t *tracer) killAll() {
	for tid := range t.threads {
		unix.Kill(tid, unix.SIGKILL)
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
	if t.rep.Killed || t.rep.Interrupted {
		// The program is being killed: so is any task that stops,
		// including one created after killAll ran.
		unix.Kill(tid, unix.SIGKILL)
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
			time.Sleep(stallPoll)
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
