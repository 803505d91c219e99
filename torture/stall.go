//go:build linux && (amd64 || arm64)

package torture

import (
	"encoding/binary"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/gorseq/rseq/internal/ptrace"
	"golang.org/x/sys/unix"
)

// Stalls and migrating aborts.
//
// Forced aborts at every instruction prove that a section restarts
// correctly where it is interrupted. They cannot show two other bugs,
// which need other threads to run while one thread is held at a chosen
// place:
//
//   - A value used after the commit, outside the section (TakeHandle
//     reading table[h] after its commit, say). A post-commit stall stops a
//     thread at the first instruction after the commit and lets every
//     other thread run on the CPU the commit was made on (their affinity
//     is narrowed to that CPU) for Config.StallTime before the thread
//     resumes: whatever the commit gave up is then taken by another
//     thread, as on a real machine where the thread was preempted there.
//     Stopping a thread outside its section is always legal.
//   - An index read once, before the restart label: a restarted section
//     then uses the slot of the CPU the thread ran on before it was
//     migrated. At a commit (once the commit's point is covered) torture
//     aborts the pass, moves the thread to another CPU of its mask and
//     keeps every other thread off that CPU from then on: the restarted
//     pass runs alone there. When it reaches its commit again it is held
//     there (a commit stall) for Config.StallTime while the others run on
//     the other CPUs, including the one it came from; then it alone makes
//     its commit (a single step, rseq_cs cleared so that the stop itself
//     does not abort it) and everyone gets their affinity back. That is a
//     legal schedule: nothing else ran on the thread's CPU from the start
//     of its pass to its commit, as if that CPU had been slow. A section
//     that reads its index on every pass commits to its own CPU's slot,
//     which nothing touched meanwhile; one that kept the old CPU's index
//     commits over what the others did to that slot during the stall.
//     (The exclusive window closes, without a stall, if the pass leaves
//     the section another way or takes too long to reach its commit.)
//
// One stall (or exclusive window) at a time; while a thread is held, the
// breakpoints of its section are removed (the other threads run it
// freely: a stall is there to let them), no random injection happens and
// no other abort migrates. A commit stall relies on per-CPU slots being
// updated only by sections running on their CPU (and by remote writers
// that fence the CPU, which a stopped thread does not see): it is for
// programs whose sections are indexed by CPU, or by a concurrency id,
// which stays with the CPU while the thread is held there for a few
// milliseconds (a hold never lasts longer than maxHold, well below the
// 100 ms after which Linux 6.x reclaims an unused CPU's concurrency id).

// debugStalls, set by GORSEQ_TORTURE_DEBUG=stalls in the environment,
// traces the stalls on standard error.
var debugStalls = os.Getenv("GORSEQ_TORTURE_DEBUG") == "stalls"

// tracef traces a stall event.
func (t *tracer) tracef(format string, args ...any) {
	if debugStalls {
		fmt.Fprintf(os.Stderr, "torture %8.3fms: "+format+"\n", append([]any{float64(time.Since(t.start).Microseconds()) / 1000}, args...)...)
	}
}

// DefaultStalls is the number of commit stalls and of post-commit stalls
// made in each section when Config.Stalls is 0.
const DefaultStalls = 2

// DefaultStallTime is how long a stall holds a thread when
// Config.StallTime is 0.
const DefaultStallTime = 2 * time.Millisecond

// stall is a stall in progress, or a commit stall's exclusive window.
type stall struct {
	th   *thread
	b    *bp  // the breakpoint: the post-commit one, or the commit's
	post bool // a post-commit stall (else a commit stall)
	cpu  int
	// phase: running (a commit stall's window: the thread runs alone on
	// cpu towards its commit), holding (the thread is stopped at b while
	// the others run), stepping (a commit stall's thread makes its commit).
	phase int
	// until ends the current phase: the window's bound, or the hold's.
	until time.Time
	// saved holds the affinity of every other thread before the stall;
	// threads not in it were created during the stall.
	saved map[int]unix.CPUSet
	// sigs holds the signals that arrived during the commit's step.
	sigs []unix.Signal
	// hold is false for a commit stall's window without a hold: the pass
	// makes its commit alone as soon as it reaches it.
	hold bool
	// ran is the CPU time the other threads had used when the hold
	// began; a hold ends once they have run StallTime/2 more (on a busy
	// machine they may wait for a CPU), or at latest.
	ran    time.Duration
	latest time.Time
}

// Phases of a stall.
const (
	running = iota
	holding
	stepping
)

// wanted reports whether b's breakpoint should be armed: an abort point
// that still needs aborts, a commit point while commit stalls are wanted,
// a post-commit point while post-commit stalls are, and none of the held
// section's while a thread is held.
func (t *tracer) wanted(b *bp) bool {
	if b.hook {
		return true
	}
	sec := b.sec
	s := t.stall
	if s != nil && s.phase != running && s.b.sec == sec {
		return false
	}
	window := s != nil && s.phase == running && s.b.sec == sec
	switch {
	case b.exit:
		return window
	case b.post:
		return sec.rep.PostCommitStalls < t.stalls
	case !sec.complete(b.idx, t.reps):
		return true
	case b.idx != sec.commit:
		return false
	case s != nil:
		// A covered commit point is there for the commit stalls, one at
		// a time: armed for the thread of the window open in its
		// section, and for nobody while another section holds one.
		return window
	}
	return t.stalls2 && !sec.noCommitStalls && (sec.rep.CommitStalls < t.stalls || t.migrate && sec.movedWindows < t.stalls)
}

// reconcileAll reconciles every breakpoint in every space.
func (t *tracer) reconcileAll() {
	for _, sp := range t.spaces() {
		for _, b := range sp.bps {
			t.reconcile(sp, b)
		}
	}
}

// reconcileSection reconciles every breakpoint of sec in every space.
func (t *tracer) reconcileSection(sec *section) {
	for _, sp := range t.spaces() {
		for _, b := range sp.bps {
			if b.sec == sec {
				t.reconcile(sp, b)
			}
		}
	}
}

// stallWaiting reports whether a stall is waiting for its time to pass (a
// window or a hold): the tracer must not block waiting for events then.
func (t *tracer) stallWaiting() bool { return t.stall != nil && t.stall.phase != stepping }

// stallTick ends a window or a hold whose time has come.
func (t *tracer) stallTick() {
	s := t.stall
	now := time.Now()
	if s == nil || s.phase == stepping || now.Before(s.until) {
		return
	}
	if s.phase == running {
		// The pass did not reach its commit in time: close the window
		// (the thread runs on, with everyone else back on its CPU).
		t.finishStall(false)
		return
	}
	if now.Before(s.latest) && t.othersRan(s)-s.ran < t.cfg.StallTime/2 {
		return // the others have not had the CPU long enough yet
	}
	t.endStall()
}

// maxHold bounds every hold. A held thread is stopped, and its CPU runs
// nothing of the process meanwhile; Linux 6.x kernels reclaim the
// concurrency id (mm_cid) of such a CPU once it has gone unused for 100 ms
// (the periodic mm_cid scan) and give it to another thread, so that a
// commit made after a longer hold, with rseq_cs cleared, would write the
// slot of a concurrency id that another thread holds: a lost update no
// real schedule produces. (Seen in an arm64 Linux 6.12 guest, under TCG,
// with holds of up to 150 ms.)
const maxHold = 50 * time.Millisecond

// holdFor starts the hold of s: at least StallTime, and until the other
// threads have run StallTime/2, at most ten times StallTime or maxHold.
func (t *tracer) holdFor(s *stall) {
	now := time.Now()
	s.phase, s.until, s.latest = holding, now.Add(min(t.cfg.StallTime, maxHold)), now.Add(min(10*t.cfg.StallTime, maxHold))
	s.ran = t.othersRan(s)
}

// othersRan returns the CPU time used by every traced thread but s's, from
// /proc/TID/schedstat (0 where the kernel does not keep it).
func (t *tracer) othersRan(s *stall) time.Duration {
	var sum time.Duration
	for tid, o := range t.threads {
		if o == s.th {
			continue
		}
		b, err := os.ReadFile("/proc/" + strconv.Itoa(tid) + "/schedstat")
		if err != nil {
			continue
		}
		f := strings.Fields(string(b))
		if len(f) > 0 {
			if ns, err := strconv.ParseInt(f[0], 10, 64); err == nil {
				sum += time.Duration(ns)
			}
		}
	}
	return sum
}

// threadCPU returns the CPU th is on: the cpu_id_start of its rseq area
// (what a section read), else the CPU it last ran on.
func (t *tracer) threadCPU(th *thread, area uint64) int {
	if area != 0 {
		var b [4]byte
		if th.sp.mem.Read(area, b[:]) == nil {
			return int(binary.LittleEndian.Uint32(b[:]))
		}
	}
	return ptrace.LastCPU(th.tid)
}

// moveThread pins th, stopped at an abort, to a CPU of its mask other than
// the one it is on, so that it resumes there, and returns that CPU. A
// thread whose mask holds a single CPU (it inherited a pin of its creator,
// say) is moved among the program's CPUs.
func (t *tracer) moveThread(th *thread, cfg ptrace.RseqConfig) (int, bool) {
	cur := t.threadCPU(th, cfg.Pointer)
	var mask unix.CPUSet
	if th.pinned {
		mask = th.mask
	} else if unix.SchedGetaffinity(th.tid, &mask) != nil {
		return -1, false
	}
	choice := mask
	if choice.Count() < 2 {
		choice = t.fullMask
	}
	var cpus []int
	for c := 0; c < len(choice)*64; c++ {
		if choice.IsSet(c) && c != cur {
			cpus = append(cpus, c)
		}
	}
	if len(cpus) == 0 {
		return -1, false
	}
	cpu := cpus[t.rng.Intn(len(cpus))]
	var one unix.CPUSet
	one.Set(cpu)
	if unix.SchedSetaffinity(th.tid, &one) != nil {
		return -1, false
	}
	if !th.pinned {
		th.pinned, th.mask = true, mask
	}
	return cpu, true
}

// pin narrows th's affinity to cpu, keeping what to restore.
func (t *tracer) pin(th *thread, cpu int) bool {
	var one, mask unix.CPUSet
	one.Set(cpu)
	if !th.pinned && unix.SchedGetaffinity(th.tid, &mask) != nil {
		return false
	}
	if unix.SchedSetaffinity(th.tid, &one) != nil {
		return false
	}
	if !th.pinned {
		th.pinned, th.mask = true, mask
	}
	return true
}

// beginStall narrows the affinity of every thread but th: to cpu alone for
// a post-commit stall, to every CPU but cpu for a commit stall's window.
// It returns false, with everything restored, if a thread cannot be kept
// off cpu.
func (t *tracer) beginStall(th *thread, b *bp, post bool, cpu int) bool {
	s := &stall{th: th, b: b, post: post, cpu: cpu, saved: map[int]unix.CPUSet{}}
	for tid, o := range t.threads {
		if o == th {
			continue
		}
		var m unix.CPUSet
		if unix.SchedGetaffinity(tid, &m) != nil {
			continue // gone
		}
		var n unix.CPUSet
		if post {
			n.Set(cpu)
		} else {
			n = m
			n.Clear(cpu)
			if n.Count() == 0 {
				n = t.fullMask
				n.Clear(cpu)
			}
		}
		if n.Count() == 0 {
			t.restore(s)
			return false
		}
		if err := unix.SchedSetaffinity(tid, &n); err != nil {
			if !post && !gone(tid) {
				t.restore(s)
				return false
			}
			continue
		}
		s.saved[tid] = m
	}
	t.stall = s
	return true
}

// admit gives a new thread, about to run its first instruction, the
// affinity the stall in progress imposes on every other thread: it may have
// inherited its creator's mask from before the stall, and must not run on
// a commit stall's CPU.
func (t *tracer) admit(th *thread) {
	s := t.stall
	if s == nil || th == s.th {
		return
	}
	if _, ok := s.saved[th.tid]; ok {
		return
	}
	var m unix.CPUSet
	if unix.SchedGetaffinity(th.tid, &m) != nil {
		return
	}
	var n unix.CPUSet
	if s.post {
		n.Set(s.cpu)
	} else {
		n = t.fullMask
		n.Clear(s.cpu)
	}
	if unix.SchedSetaffinity(th.tid, &n) == nil {
		s.saved[th.tid] = m
	} else if !s.post && !gone(th.tid) {
		// It cannot be kept off the CPU: the pass held there is no
		// longer alone. End the window, or hold, without a stall.
		t.noteOnce("admit", "thread %d: cannot be kept off CPU %d for a commit stall", th.tid, s.cpu)
		t.abandonStall()
	}
}

// restore gives the threads s narrowed their affinity back; threads created
// meanwhile get the program's.
func (t *tracer) restore(s *stall) {
	for tid, m := range s.saved {
		_ = unix.SchedSetaffinity(tid, &m)
	}
	for tid, o := range t.threads {
		if _, ok := s.saved[tid]; !ok && o != s.th && t.fullMask.Count() > 0 {
			_ = unix.SchedSetaffinity(tid, &t.fullMask)
		}
	}
}

// openWindow starts a commit stall's exclusive window: th, stopped at an
// abort of b's section and about to resume on cpu, is pinned there and
// every other thread is kept off it. It reports false if that cannot be.
// Without hold, the pass makes its commit as soon as it reaches it.
func (t *tracer) openWindow(th *thread, b *bp, cpu int, hold bool) bool {
	if cpu < 0 || !t.pin(th, cpu) {
		return false
	}
	th.moved = false
	if !t.beginStall(th, b, false, cpu) {
		t.unpin(th)
		return false
	}
	// Enough for the restarted pass to reach its commit through the
	// abort points still armed on its way.
	t.tracef("window: thread %d, %s, CPU %d, hold %v", th.tid, sectionName(b.sec.rep), cpu, hold)
	t.stall.phase, t.stall.hold = running, hold
	t.stall.until = time.Now().Add(max(10*t.cfg.StallTime, 50*time.Millisecond))
	t.reconcileAll()
	return true
}

// holdCommit starts the hold of a commit stall if th, stopped at the commit
// b with rseq_cs covering it, is the thread of the open window: the pass
// ran alone on its CPU since the window opened. In a window without a
// hold, the thread makes its commit at once.
func (t *tracer) holdCommit(th *thread, b *bp, cfg ptrace.RseqConfig, regs *unix.PtraceRegs) bool {
	s := t.stall
	if s == nil || s.post || s.phase != running || s.th != th || s.b.sec != b.sec {
		return false
	}
	// Cleared, so that no kernel aborts the pass when the thread resumes
	// from this stop: nothing else ran on its CPU since it was armed.
	var zero [8]byte
	if err := th.sp.mem.Write(cfg.Pointer+ptrace.OffRseqCS, zero[:]); err != nil {
		t.noteOnce(fmt.Sprintf("stall rseq_cs %d", th.tid), "thread %d: clearing rseq_cs for a commit stall: %v", th.tid, err)
		t.finishStall(false)
		return false
	}
	s.b = b
	if !s.hold {
		s.phase = stepping
		t.stepOver(th, b, regs)
		if th.stepping == nil {
			t.finishStall(false)
		}
		return true
	}
	t.holdFor(s)
	t.reconcileSection(b.sec)
	t.tracef("commit stall: thread %d, %s, CPU %d", th.tid, sectionName(b.sec.rep), s.cpu)
	return true
}

// postCommitStall starts a post-commit stall of th, stopped at b, if one is
// wanted. It reports whether it did (else the caller steps th over b).
func (t *tracer) postCommitStall(th *thread, b *bp) bool {
	if t.stall != nil || b.sec.rep.PostCommitStalls >= t.stalls {
		return false
	}
	var area uint64
	if cfg, err := ptrace.GetRseqConfig(th.tid); err == nil {
		area = cfg.Pointer
	}
	cpu := t.threadCPU(th, area)
	if cpu < 0 || !t.beginStall(th, b, true, cpu) {
		return false
	}
	t.holdFor(t.stall)
	t.reconcileSection(b.sec)
	t.tracef("post-commit stall: thread %d, %s, CPU %d", th.tid, sectionName(b.sec.rep), cpu)
	return true
}

// abandonStall ends a commit stall whose pass can no longer be known to
// run alone on its CPU: a window closes; a held thread is aborted (moved to
// abort_ip, as the kernel would for a preemption) instead of committing.
func (t *tracer) abandonStall() {
	s := t.stall
	if s == nil || s.post || s.phase == stepping {
		return
	}
	if s.phase == holding {
		var regs unix.PtraceRegs
		if err := unix.PtraceGetRegs(s.th.tid, &regs); err == nil {
			regs.SetPC(s.b.abort)
			if t.setRegs(s.th, &regs, "abort_ip") == nil {
				s.b.sec.rep.Aborts++
				t.rep.Aborts++
			}
		}
		t.finishStall(false)
		t.cont(s.th.tid, 0)
		return
	}
	t.finishStall(false)
}

// endStall ends the stall in progress: a window at once; a post-commit
// stall at once too (the thread steps over its breakpoint); a commit stall
// by letting the thread make its commit alone (finishStall follows when
// the step is done).
func (t *tracer) endStall() {
	s := t.stall
	if s == nil || s.phase == stepping {
		return
	}
	if s.phase == running {
		t.finishStall(false)
		return
	}
	th := s.th
	var regs unix.PtraceRegs
	if err := unix.PtraceGetRegs(th.tid, &regs); err != nil {
		t.finishStall(false)
		if !gone(th.tid) {
			t.noteOnce(fmt.Sprintf("stallregs %d", th.tid), "thread %d: reading its registers at the end of a stall: %v", th.tid, err)
			t.cont(th.tid, 0)
		}
		return
	}
	if s.post {
		t.finishStall(true)
		t.stepOver(th, s.b, &regs)
		return
	}
	s.phase = stepping
	t.stepOver(th, s.b, &regs)
	if th.stepping == nil {
		t.noteOnce(fmt.Sprintf("stallstep %d", th.tid), "thread %d: the step of a commit stall failed", th.tid)
		t.finishStall(false)
	}
}

// finishStall restores the affinities a stall changed and counts it when
// done; the held thread is left as it is (stopped, stepping or running).
func (t *tracer) finishStall(done bool) {
	s := t.stall
	if s == nil {
		return
	}
	t.stall = nil
	t.tracef("end: thread %d, %s, post %v, phase %d, counted %v, others ran %v", s.th.tid, sectionName(s.b.sec.rep), s.post, s.phase, done, t.othersRan(s)-s.ran)
	t.restore(s)
	th := s.th
	if !s.post && s.phase == stepping {
		th.lastSec = nil // it made its commit
	}
	if !s.post && th.pinned {
		t.unpin(th)
		if t.lastPin == th {
			t.lastPin = nil
		}
	}
	if done {
		if s.post {
			s.b.sec.rep.PostCommitStalls++
		} else {
			s.b.sec.rep.CommitStalls++
		}
	}
	t.reconcileAll()
	if t.stopped {
		t.unpinAll()
	}
	for _, sig := range s.sigs {
		_ = unix.Tgkill(th.tgid, th.tid, sig)
	}
}
