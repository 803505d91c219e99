//go:build linux && (amd64 || arm64)

package torture

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"time"

	"github.com/gorseq/rseq/internal/ptrace"
	"golang.org/x/sys/unix"
)

// Abort emulation: what the kernel does to a thread preempted inside a
// critical section, done by the tracer at a breakpoint.

// setRegs writes th's registers; a failure on a live thread is noted with
// what it was for (the thread then runs on from where it stopped).
func (t *tracer) setRegs(th *thread, regs *unix.PtraceRegs, what string) error {
	err := unix.PtraceSetRegs(th.tid, regs)
	if err != nil && !gone(th.tid) {
		t.noteOnce("regs "+what+strconv.Itoa(th.tid), "thread %d: setting its registers to %s: %v", th.tid, what, err)
	}
	return err
}

// countSignalAbort counts a signal about to be delivered to a handler while
// th is inside a section with rseq_cs set: the kernel aborts the section.
func (t *tracer) countSignalAbort(th *thread, sig unix.Signal) {
	if len(th.sp.bps) == 0 || !catches(th.sp.pid, sig) {
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

// abortResult is what abort did with a hit.
type abortResult int

const (
	// aborted: the thread was aborted (or killed by a wrong signature,
	// or held for a commit stall) and resumed; nothing more to do.
	aborted abortResult = iota
	// unprotected: rseq_cs does not cover the instruction, so the
	// kernel would not abort here; the caller steps over it.
	unprotected
	// failed: a ptrace request or a memory access failed; the reason is
	// recorded on the point and the caller steps over it.
	failed
)

// failPoint records on b's point why a hit there could not be aborted, so
// that the point is never reported missed without a reason, and notes it
// once for the run.
func (t *tracer) failPoint(th *thread, b *bp, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if b.idx >= 0 {
		b.sec.why[b.idx] = msg
	}
	t.noteOnce(fmt.Sprintf("abort %s %d", sectionName(b.sec.rep), b.idx), "thread %d, section %s: %s", th.tid, sectionName(b.sec.rep), msg)
}

// abort does what the kernel does to a thread preempted at b.addr: if the
// thread's rseq_cs holds a descriptor whose range covers the address, check
// the signature before abort_ip, then clear rseq_cs and resume at abort_ip.
//
// With stalls true the hit may instead start a commit stall (the thread is
// due one in this section and stopped at its commit), and the abort may
// move the thread to another CPU first (see stall.go).
func (t *tracer) abort(th *thread, b *bp, regs *unix.PtraceRegs, stalls bool) abortResult {
	if b.idx < 0 {
		return unprotected // not an abort point
	}
	sp := th.sp
	cfg, err := ptrace.GetRseqConfig(th.tid)
	if err != nil {
		if gone(th.tid) {
			return failed
		}
		t.failPoint(th, b, "reading the thread's rseq registration: %v", err)
		return failed
	}
	if cfg.Pointer == 0 {
		return unprotected
	}
	csAddr := cfg.Pointer + ptrace.OffRseqCS
	cs, err := sp.mem.Uint64(csAddr)
	if err != nil {
		if !gone(sp.pid) {
			t.failPoint(th, b, "reading rseq_cs at %#x: %v", csAddr, err)
		}
		return failed
	}
	if cs == 0 {
		return unprotected
	}
	abortIP := b.abort
	sigWord, sigOK := b.sigWord, b.sigRead
	if cs != b.desc {
		var d [32]byte
		if err := sp.mem.Read(cs, d[:]); err != nil {
			if !gone(sp.pid) {
				t.failPoint(th, b, "reading the descriptor rseq_cs points at (%#x): %v", cs, err)
			}
			return failed
		}
		start := binary.LittleEndian.Uint64(d[8:])
		pco := binary.LittleEndian.Uint64(d[16:])
		abortIP = binary.LittleEndian.Uint64(d[24:])
		if b.addr < start || b.addr-start >= pco {
			return unprotected
		}
		var sw [4]byte
		sigOK = sp.mem.Read(abortIP-4, sw[:]) == nil
		sigWord = binary.LittleEndian.Uint32(sw[:])
	}
	sec := b.sec
	if !sigOK || sigWord != cfg.Signature {
		// The kernel kills the thread with SIGSEGV.
		sec.rep.BadSignature++
		sec.why[b.idx] = "the abort found a wrong signature before abort_ip; the thread was killed with SIGSEGV, as the kernel does"
		if bpTrapAfter != 0 {
			regs.SetPC(b.addr)
			if t.setRegs(th, regs, "the faulting address") != nil {
				// The SIGSEGV still kills it; the address it
				// reports is one past the breakpoint.
				sec.why[b.idx] += " (reported one byte past the faulting address: setting its registers failed)"
			}
		}
		t.cont(th.tid, int(unix.SIGSEGV))
		return aborted
	}
	commit := stalls && cs == b.desc && b.idx == sec.commit
	if commit && t.holdCommit(th, b, cfg, regs) {
		return aborted
	}
	fresh := th.lastSec != sec
	th.lastSec = sec
	var zero [8]byte
	if err := sp.mem.Write(csAddr, zero[:]); err != nil {
		if !gone(sp.pid) {
			t.failPoint(th, b, "clearing rseq_cs at %#x: %v; the hit was stepped over without an abort", csAddr, err)
		}
		return failed
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
		// stays armed for the next pass, and says why it missed this
		// one.
		if !gone(th.tid) {
			t.failPoint(th, b, "moving the thread to abort_ip %#x: %v; the hit was stepped over without an abort", abortIP, err)
		}
		return failed
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
	return aborted
}

// catches reports whether process pid has a handler for sig.
func catches(pid int, sig unix.Signal) bool {
	return ptrace.CaughtSignals(pid)&(1<<(uint(sig)-1)) != 0
}
