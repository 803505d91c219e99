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

// catches reports whether process pid has a handler for sig.
func catches(pid int, sig unix.Signal) bool {
	return ptrace.CaughtSignals(pid)&(1<<(uint(sig)-1)) != 0
}
