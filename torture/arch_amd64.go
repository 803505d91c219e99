//go:build linux

package torture

// x86-64: the breakpoint is int3, a one-byte instruction. The SIGTRAP it
// raises has si_code SI_KERNEL, and the thread stops with RIP just past it.
const (
	int3     = 0xcc // the int3 instruction
	siKernel = 0x80 // SI_KERNEL

	// bpLen is the length of the breakpoint instruction.
	bpLen = 1
	// bpTrapCode is the si_code of the SIGTRAP a breakpoint raises.
	bpTrapCode = siKernel
	// bpTrapAfter is the distance from the breakpoint's address to the IP
	// of a thread it stopped: the IP is past an int3.
	bpTrapAfter = bpLen
	// checkHitCode: a stop at a breakpoint is taken as a hit without
	// checking its si_code (an IP just past an armed int3 is one).
	checkHitCode = false
	// insnSize is the size of every instruction; 0 means variable-length
	// instructions, whose boundaries come from the disassembly.
	insnSize = 0
)

// bpInsn is the breakpoint written over an abort point.
var bpInsn = [bpLen]byte{int3}
