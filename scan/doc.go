// Package scan finds and validates the restartable sequences (rseq
// critical sections) of ELF executables, shared libraries and running
// processes.
//
// # Where sections are found
//
// A critical section is described by a struct rseq_cs (32 bytes, 32-byte
// aligned): u32 version, u32 flags, u64 start_ip, u64 post_commit_offset,
// u64 abort_ip. The kernel treats the IP range [start_ip,
// start_ip+post_commit_offset) as the section and resumes an interrupted
// thread at abort_ip, after checking that the 4 bytes before abort_ip hold
// the signature the thread registered. Nothing in the ELF file is required
// by the kernel, but librseq, the kernel selftests and glibc follow
// conventions that tools (DynamoRIO, debuggers, checkpointers) rely on, and
// the scanner reads all of them:
//
//   - section __rseq_cs: the descriptors, one after another. The start of
//     the section may be padded to 32 bytes; all-zero entries are padding.
//   - section __rseq_cs_ptr_array: one u64 pointer per descriptor (on
//     32-bit targets written as ".long x, 0", which reads as the same u64).
//     Descriptors the array points at outside __rseq_cs are found too.
//   - section __rseq_exit_point_array: u64 pairs {start_ip, exit_ip}, one
//     per exit of a section other than the abort and the fall-through.
//   - section __rseq_table: the name used before Linux 5.0 by the kernel
//     selftests and early librseq, holding the same 32-byte descriptors.
//     Entries in the layout of the pre-merge patches ({u64 start_ip,
//     u64 post_commit_ip, u64 abort_ip, u32 flags, u32 pad}) are recognised
//     when the struct rseq_cs reading is impossible and this one names code;
//     they are listed with a legacy-layout warning.
//   - Go symbols: the Go toolchain cannot place data in custom-named ELF
//     sections, so the github.com/gorseq/rseq library (and any Go package
//     following its convention) emits data symbols whose names end in
//     ".__rseq_cs" (an array of N descriptors, symbol size 32*N),
//     ".__rseq_cs_ptr_array" (N u64 pointers) and
//     ".__rseq_exit_point_array" (u64 pairs, size 16*M). The prefix is the
//     package path, e.g. "github.com/gorseq/rseq.__rseq_cs"; each prefix is
//     checked as its own set. They are read from the symbol table
//     (.symtab), so a stripped Go binary shows none.
//
// In position-independent files the tables hold zeros until the dynamic
// loader applies their relative relocations; the scanner applies the RELA
// relative relocations itself (REL and RELR ones keep the value in place).
// When a process is scanned the tables and code are read from its memory,
// already relocated.
//
// # Rules
//
// Each Finding names its rule; the names are stable:
//
//   - version-flags (error): version or flags is not zero; the kernel
//     rejects the descriptor and kills the thread with SIGSEGV.
//   - misaligned (warning): the descriptor is not 32-byte aligned, as the
//     ABI requires (the kernel does not check it).
//   - empty-range (error): post_commit_offset is 0 (start_ip is not below
//     the post-commit address) or the range wraps.
//   - abort-inside (error): abort_ip lies inside the section; the kernel
//     rejects it.
//   - bad-signature (error): the 4 bytes before abort_ip are not a
//     signature for the machine: on x86 0x53053053 or any value preceded by
//     0f b9 3d (a ud1 instruction, the convention); on arm64 a brk
//     instruction (conventionally 0xd428bc00); on s390x 0xb2ff0fff; on
//     powerpc 0x0fe5000b; on arm 0xe7f5def3; on mips 0x0350004d; on riscv
//     0xf1401073. Other machines are not checked.
//   - mixed-signatures (error): plausible signatures that differ between
//     sections of one object; a thread registers a single signature, so
//     some sections would abort with SIGSEGV.
//   - outside-segment (error): a descriptor, a pointer, a table, the
//     section's code or abort_ip lies outside the object's loaded (for code,
//     executable) segments.
//   - ptr-mismatch (warning or error): __rseq_cs_ptr_array and the
//     descriptors disagree: a descriptor not listed, a pointer listed twice,
//     a null pointer, or one at a place where no descriptor starts. What
//     such a pointer names is listed as a section of its own (Via
//     "__rseq_cs_ptr_array") and judged by every rule, and the descriptors
//     it overlaps are listed and judged as well: one bad pointer hides
//     nothing.
//   - bad-table (warning or error): a table whose size is not a multiple of
//     its entry size, or larger than the file.
//   - orphan-exit (warning): an exit point whose start_ip matches no
//     section.
//   - legacy-layout (warning): a __rseq_table entry in the pre-merge
//     layout, which the kernel's struct rseq_cs does not match.
//
// With Options.Disassemble the section's instructions are decoded (x86-64,
// i386 and arm64) and these rules, which instrumentation tools such as
// DynamoRIO rely on, are applied:
//
//   - syscall (error): a system call inside the section.
//   - call (error): a call inside the section; while the callee runs the IP
//     is outside the section, so a preemption there goes unnoticed.
//   - indirect-branch (warning): an indirect jump or a return inside the
//     section.
//   - commit-not-last (warning): the last instruction of the section is not
//     a store (the commit), or there is no store at all.
//   - store-before-commit (info): stores before the commit; legitimate only
//     when speculative, that is harmless if the section restarts.
//   - unlisted-exit (warning): a direct branch leaving the section for an
//     address other than abort_ip, the post-commit address or an exit listed
//     in __rseq_exit_point_array. A branch to a teardown stub is followed
//     first: straight-line code outside the section (no store, call,
//     system call or other branch; at most 32 instructions) that ends in a
//     direct jump to one of those addresses, as librseq's
//     RSEQ_ASM_DEFINE_TEARDOWN emits to restore registers before its exit.
//     Such a branch is a correct exit.
//   - undecodable, too-long (warning): the section could not be decoded or
//     is longer than 64 KiB, so the instruction rules were not applied.
//
// When scanning a process, descriptors and tables are read from its memory
// (relocated), but code the file holds is read from the file: a process
// under a debugger or rseq torture has breakpoints in its code, which would
// read as other instructions. Two rules say so:
//
//   - code-differs (info): the section's code or the signature before
//     abort_ip differ in memory from the file's bytes, which were judged.
//   - unreadable (info): some memory could not be read and the file's
//     contents were used instead.
//
// # Bad input
//
// Every size read from the file is checked against the file's size before
// anything is allocated, and malformed input yields an error naming the
// cause (for a truncated file, the table and the offset that could not be
// read), never a panic. ScanFile refuses anything but a regular file before
// opening it: a FIFO would block, a device never end.
package scan
