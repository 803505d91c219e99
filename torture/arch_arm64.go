//go:build linux

package torture

// arm64: the breakpoint is "brk #0" (what GDB uses), one 4-byte instruction
// like every other. The exception leaves the PC at the brk itself, and the
// kernel sends SIGTRAP with si_code TRAP_BRKPT. The registers come from
// PTRACE_GETREGSET with NT_PRSTATUS (struct user_pt_regs), which is what
// unix.PtraceGetRegs and unix.PtraceSetRegs use on arm64; the PC is
// PtraceRegs.Pc (regs.PC and regs.SetPC on every architecture).
const (
	// brk is "brk #imm16" with imm16 = 0: 0xd4200000 | imm16<<5. The
	// immediate 0x005 would be the kernel's uprobes and 0x45e0 is the rseq
	// signature (0xd428bc00): neither is used here.
	brkImm  = 0
	brk     = 0xd4200000 | brkImm<<5
	trapBrk = 1 // TRAP_BRKPT

	// bpLen is the length of the breakpoint instruction.
	bpLen = 4
	// bpTrapCode is the si_code of the SIGTRAP a breakpoint raises.
	bpTrapCode = trapBrk
	// bpTrapAfter is the distance from the breakpoint's address to the PC
	// of a thread it stopped: the PC stays at the brk.
	bpTrapAfter = 0
	// checkHitCode: a stop at a breakpoint is taken as a hit only when
	// its si_code is TRAP_BRKPT. A PC at an armed breakpoint is also the
	// PC of a thread that was about to run it when another SIGTRAP (one
	// sent by kill, say) stopped it.
	checkHitCode = true
	// insnSize is the size of every instruction: the abort points of a
	// section are all its 4-byte words.
	insnSize = 4
)

// bpInsn is the breakpoint written over an abort point (little-endian).
var bpInsn = [bpLen]byte{brk & 0xff, brk >> 8 & 0xff, brk >> 16 & 0xff, brk >> 24}
