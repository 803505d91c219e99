//go:build linux && (amd64 || arm64)

package torture

import (
	"fmt"
	"strconv"

	"github.com/gorseq/rseq/internal/ptrace"
	"golang.org/x/sys/unix"
)

// The breakpoint engine: writing and removing the breakpoints of each
// address space (reconcile), telling a breakpoint stop from any other
// SIGTRAP, and stepping a thread over the instruction under a breakpoint.

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
		if err := t.setRegs(th, regs, "main.main"); err != nil && !gone(th.tid) {
			// Its IP is past the breakpoint, inside main.main's first
			// instruction: running on would run garbage.
			t.note("process %d: thread %d cannot be moved back to main.main (%v): it is killed", sp.pid, th.tid, err)
			unix.Kill(th.tid, unix.SIGKILL)
		}
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
	if b.idx >= 0 {
		b.sec.why[b.idx] = msg
	}
	t.noteOnce(fmt.Sprintf("bp %d %#x %s", sp.pid, b.addr, what), "process %d, section %s: %s", sp.pid, sectionName(b.sec.rep), msg)
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
		if b.idx >= 0 {
			b.sec.reached[b.idx]++
			if t.abort(th, b, &regs, false) == aborted {
				return true
			}
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
	} else {
		b.sec.reached[b.idx]++
		switch t.abort(th, b, &regs, true) {
		case aborted:
			return true
		case unprotected:
			// Not inside a registered section.
			b.sec.rep.Unprotected++
			b.sec.unprot[b.idx]++
		}
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
		// Noted by setRegs; the thread stays stopped (a live thread
		// whose registers cannot be set cannot run on correctly).
		b.steppers--
		t.reconcile(sp, b)
		return
	}
	th.stepping = b
	if err := unix.PtraceSingleStep(th.tid); err != nil {
		th.stepping = nil
		b.steppers--
		t.reconcile(sp, b)
		if !gone(th.tid) {
			t.noteOnce("step "+strconv.Itoa(th.tid), "thread %d: stepping over the breakpoint at %#x: %v; the thread stays stopped", th.tid, b.addr, err)
		}
	}
}
