package scan

import (
	"debug/elf"
	"fmt"
	"slices"
	"strings"

	"golang.org/x/arch/arm64/arm64asm"
	"golang.org/x/arch/x86/x86asm"
)

// maxDecode bounds the bytes decoded for one section. Real sections are a
// few dozen bytes long.
const maxDecode = 64 << 10

// insn is a decoded instruction with the facts the rules need.
type insn struct {
	Instruction
	syscall, call, indirect, store bool
	target                         uint64 // direct branch target
	branch                         bool   // direct jump or conditional branch
	uncond                         bool   // the branch is an unconditional jump
}

// maxStub bounds the instructions of a teardown stub (see stubExit).
const maxStub = 32

// disassemble decodes section i and applies the instruction rules.
func (s *scanner) disassemble(i int) {
	img := s.img
	sec := &s.obj.Sections[i]
	var decode func(b []byte, pc uint64) (insn, error)
	switch img.f.Machine {
	case elf.EM_X86_64:
		decode = func(b []byte, pc uint64) (insn, error) { return decodeX86(b, pc, 64) }
	case elf.EM_386:
		decode = func(b []byte, pc uint64) (insn, error) { return decodeX86(b, pc, 32) }
	case elf.EM_AARCH64:
		decode = decodeARM64
	default:
		return // no decoder for this machine
	}
	if sec.PostCommitOffset > maxDecode {
		s.flag(i, Warning, "too-long", "section is %d bytes long; only sections up to %d bytes are disassembled (a section must finish between two signals)", sec.PostCommitOffset, maxDecode)
		return
	}
	code, err := img.read(sec.Start, sec.PostCommitOffset)
	if err != nil {
		s.flag(i, Warning, "undecodable", "cannot read the section's code: %v", err)
		return
	}
	var insns []insn
	for off := 0; off < len(code); {
		pc := sec.Start + uint64(off)
		in, err := decode(code[off:], pc)
		if err != nil {
			s.flag(i, Warning, "undecodable", "cannot decode the instruction at %#x (%v); the instruction rules were not applied", pc, err)
			return
		}
		insns = append(insns, in)
		off += in.Len
	}
	sec.Instructions = make([]Instruction, len(insns))
	for k, in := range insns {
		sec.Instructions[k] = in.Instruction
	}
	end := sec.End()
	var stores []uint64
	for _, in := range insns {
		switch {
		case in.syscall:
			s.flag(i, Error, "syscall", "system call at %#x (%s) inside the section: it does not abort the section, kernels booted with rseq_debug=1 kill the thread, and instrumentation tools cannot handle it", in.Addr, in.Text)
		case in.call:
			s.flag(i, Error, "call", "call at %#x (%s) inside the section: while the callee runs the IP is outside the section, so a preemption there is not detected and the section is not atomic", in.Addr, in.Text)
		case in.indirect:
			s.flag(i, Warning, "indirect-branch", "indirect branch at %#x (%s) inside the section: its target cannot be checked and instrumentation tools reject it", in.Addr, in.Text)
		case in.branch:
			t := in.target
			listed := func(t uint64) bool { return t == sec.Abort || t == end || slices.Contains(sec.Exits, t) }
			if (t < sec.Start || t >= end) && !listed(t) && !s.stubExit(decode, t, sec, listed) {
				s.flag(i, Warning, "unlisted-exit", "branch at %#x (%s) leaves the section for %#x, which is not listed in __rseq_exit_point_array (only the abort handler and the fall-through need no entry)", in.Addr, in.Text, t)
			}
		}
		if in.store {
			stores = append(stores, in.Addr)
		}
	}
	last := insns[len(insns)-1]
	switch {
	case len(stores) == 0:
		s.flag(i, Warning, "commit-not-last", "the section contains no store, so it has no commit; its last instruction is %q", last.Text)
	case !last.store:
		s.flag(i, Warning, "commit-not-last", "the last instruction of the section, at %#x (%s), is not the commit store; the last store is at %#x. Tools expect the commit to be the final instruction", last.Addr, last.Text, stores[len(stores)-1])
	}
	if len(stores) > 1 {
		before := stores[:len(stores)-1]
		list := make([]string, len(before))
		for k, a := range before {
			list[k] = fmt.Sprintf("%#x", a)
		}
		s.flag(i, Info, "store-before-commit", "%d store(s) before the commit (at %s): they are legitimate only when speculative, i.e. harmless if the section aborts and restarts", len(before), strings.Join(list, ", "))
	}
}

// stubExit reports whether the code at addr, outside section sec, is a
// teardown stub: straight-line code that restores registers and then jumps
// to a listed exit, as C libraries emit (librseq's
// RSEQ_ASM_DEFINE_TEARDOWN). A branch from the section to such a stub is a
// correct exit. The stub may hold up to maxStub instructions, none of them
// a store, call, system call, indirect or conditional branch, and must end
// in an unconditional direct jump to an address listed reports true for.
func (s *scanner) stubExit(decode func([]byte, uint64) (insn, error), addr uint64, sec *Section, listed func(uint64) bool) bool {
	img := s.img
	seg := img.segmentOf(addr, 1)
	if seg == nil || !seg.exec {
		return false
	}
	// Read what the stub may span, within its segment.
	n := min(uint64(maxStub*15), seg.vaddr+seg.memsz-(addr-img.bias))
	code, err := img.read(addr, n)
	if err != nil {
		return false
	}
	for k, off := 0, uint64(0); k < maxStub && off < uint64(len(code)); k++ {
		pc := addr + off
		if sec.Contains(pc) {
			return false
		}
		in, err := decode(code[off:], pc)
		if err != nil || in.syscall || in.call || in.indirect || in.store {
			return false
		}
		if in.branch {
			return in.uncond && listed(in.target)
		}
		off += uint64(in.Len)
	}
	return false
}

func decodeX86(b []byte, pc uint64, mode int) (insn, error) {
	inst, err := x86asm.Decode(b, mode)
	if err != nil {
		return insn{}, err
	}
	in := insn{Instruction: Instruction{Addr: pc, Len: inst.Len, Text: x86asm.GNUSyntax(inst, pc, nil)}}
	switch inst.Op {
	case x86asm.SYSCALL, x86asm.SYSENTER:
		in.syscall = true
	case x86asm.INT:
		if imm, ok := inst.Args[0].(x86asm.Imm); ok && imm == 0x80 {
			in.syscall = true
		}
	case x86asm.CALL, x86asm.LCALL:
		in.call = true
	case x86asm.RET, x86asm.LRET, x86asm.IRET, x86asm.IRETD, x86asm.IRETQ:
		in.indirect = true
	case x86asm.JMP, x86asm.JA, x86asm.JAE, x86asm.JB, x86asm.JBE, x86asm.JE, x86asm.JNE,
		x86asm.JG, x86asm.JGE, x86asm.JL, x86asm.JLE, x86asm.JO, x86asm.JNO, x86asm.JP,
		x86asm.JNP, x86asm.JS, x86asm.JNS, x86asm.JCXZ, x86asm.JECXZ, x86asm.JRCXZ,
		x86asm.LOOP, x86asm.LOOPE, x86asm.LOOPNE, x86asm.LJMP:
		if rel, ok := inst.Args[0].(x86asm.Rel); ok {
			in.branch = true
			in.uncond = inst.Op == x86asm.JMP
			in.target = pc + uint64(inst.Len) + uint64(int64(rel))
		} else {
			in.indirect = true
		}
	}
	if _, ok := inst.Args[0].(x86asm.Mem); ok && writesFirst(inst.Op) {
		in.store = true
	}
	return in, nil
}

// writesFirst reports whether an x86 instruction writes its first
// (destination) operand when that operand is memory.
func writesFirst(op x86asm.Op) bool {
	switch op {
	case x86asm.CMP, x86asm.TEST, x86asm.BT, x86asm.NOP, x86asm.PREFETCHNTA,
		x86asm.PREFETCHT0, x86asm.PREFETCHT1, x86asm.PREFETCHT2, x86asm.PREFETCHW,
		x86asm.CLFLUSH, x86asm.PUSH, x86asm.JMP, x86asm.CALL,
		x86asm.LJMP, x86asm.LCALL, x86asm.UCOMISS, x86asm.UCOMISD, x86asm.COMISS,
		x86asm.COMISD, x86asm.PTEST, x86asm.LGDT, x86asm.LIDT, x86asm.LLDT, x86asm.LMSW,
		x86asm.LTR, x86asm.VERR, x86asm.VERW, x86asm.INVLPG, x86asm.FLD, x86asm.FILD,
		x86asm.FCOM, x86asm.FCOMP, x86asm.FICOM, x86asm.FICOMP, x86asm.FLDCW, x86asm.FLDENV,
		x86asm.FRSTOR, x86asm.FXRSTOR, x86asm.FXRSTOR64, x86asm.LDMXCSR, x86asm.XRSTOR, x86asm.XRSTOR64:
		return false
	}
	return true
}

func decodeARM64(b []byte, pc uint64) (insn, error) {
	if len(b) < 4 {
		return insn{}, fmt.Errorf("truncated instruction (%d bytes)", len(b))
	}
	inst, err := arm64asm.Decode(b)
	if err != nil {
		return insn{}, err
	}
	in := insn{Instruction: Instruction{Addr: pc, Len: 4, Text: strings.TrimSpace(arm64asm.GNUSyntax(inst))}}
	switch inst.Op {
	case arm64asm.SVC, arm64asm.HVC, arm64asm.SMC:
		in.syscall = true
	case arm64asm.BL, arm64asm.BLR:
		in.call = true
	case arm64asm.BR, arm64asm.RET, arm64asm.ERET:
		in.indirect = true
	case arm64asm.B, arm64asm.CBZ, arm64asm.CBNZ, arm64asm.TBZ, arm64asm.TBNZ:
		for _, a := range inst.Args {
			if rel, ok := a.(arm64asm.PCRel); ok {
				in.branch = true
				in.target = pc + uint64(int64(rel))
			}
		}
		// B.cond is B with a condition as its first argument.
		_, cond := inst.Args[0].(arm64asm.Cond)
		in.uncond = inst.Op == arm64asm.B && !cond
	}
	if in.branch || inst.Op == arm64asm.BL {
		in.Text = absoluteTarget(in.Text, inst, pc)
	}
	name := inst.Op.String()
	if strings.HasPrefix(name, "ST") || strings.HasPrefix(name, "CAS") || strings.HasPrefix(name, "SWP") ||
		(strings.HasPrefix(name, "LD") && len(name) > 4 && isAtomicLD(name)) {
		in.store = true
	}
	return in, nil
}

// isAtomicLD reports whether an arm64 LD* mnemonic is an atomic
// read-modify-write (LDADD, LDCLR, LDEOR, LDSET, LDSMAX, ...), which stores.
func isAtomicLD(name string) bool {
	for _, p := range []string{"LDADD", "LDCLR", "LDEOR", "LDSET", "LDSMAX", "LDSMIN", "LDUMAX", "LDUMIN"} {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// absoluteTarget rewrites the ".+0x..." PC-relative operand that
// arm64asm.GNUSyntax prints as the absolute target address.
func absoluteTarget(text string, inst arm64asm.Inst, pc uint64) string {
	for _, a := range inst.Args {
		rel, ok := a.(arm64asm.PCRel)
		if !ok {
			continue
		}
		i := strings.Index(text, ".+0x")
		if i < 0 {
			i = strings.Index(text, ".-0x")
		}
		if i < 0 {
			return text
		}
		j := i + 4
		for j < len(text) && strings.IndexByte("0123456789abcdef", text[j]) >= 0 {
			j++
		}
		return text[:i] + fmt.Sprintf("%#x", pc+uint64(int64(rel))) + text[j:]
	}
	return text
}
