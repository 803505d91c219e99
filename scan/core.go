package scan

import (
	"debug/elf"
	"fmt"
	"sort"
	"strings"
)

// Conventional section names and Go symbol suffixes.
const (
	secCS    = "__rseq_cs"
	secPtrs  = "__rseq_cs_ptr_array"
	secExits = "__rseq_exit_point_array"
	secTable = "__rseq_table"

	viaGo = "go-symbols"

	descSize = 32 // sizeof(struct rseq_cs)
)

// table is one region of descriptors, pointers or exit pairs, at run-time
// addresses.
type table struct {
	name       string // section name or symbol name, for messages
	via        string // Section.Via for descriptors found in it
	addr, size uint64
}

// group gathers the tables that describe one set of sections: the ELF
// sections of the object, or the symbols of one Go package.
type group struct {
	descs []table
	ptrs  []table
	exits []table
}

// found is a section before validation, with findings that arose while
// collecting it.
type found struct {
	sec   Section
	notes []Finding
}

type scanner struct {
	img   *image
	obj   *Object
	opt   Options
	found []*found
	byDsc map[uint64]*found
}

func (img *image) scan(opt Options) (*Object, error) {
	f := img.f
	obj := &Object{
		Path:      img.name,
		Machine:   machineName(f.Machine),
		Class:     img.ptr * 8,
		BigEndian: f.Data == elf.ELFDATA2MSB,
		Bias:      img.bias,
	}
	s := &scanner{img: img, obj: obj, opt: opt, byDsc: map[uint64]*found{}}
	for _, g := range s.groups() {
		s.collect(g)
	}
	s.finish()
	return obj, nil
}

func (s *scanner) object(sev Severity, rule, format string, args ...any) {
	s.obj.Findings = append(s.obj.Findings, Finding{Severity: sev, Rule: rule, Section: -1, Message: fmt.Sprintf(format, args...)})
}

// groups finds the tables: the conventional ELF sections first, then the
// Go symbols, one group per package prefix.
func (s *scanner) groups() []group {
	img := s.img
	var elfGroup group
	haveELF := false
	for _, sec := range img.f.Sections {
		var list *[]table
		via := ""
		switch sec.Name {
		case secCS:
			list, via = &elfGroup.descs, secCS
		case secTable:
			list, via = &elfGroup.descs, secTable
		case secPtrs:
			list = &elfGroup.ptrs
		case secExits:
			list = &elfGroup.exits
		default:
			continue
		}
		haveELF = true
		if sec.Flags&elf.SHF_ALLOC == 0 {
			s.object(Error, "outside-segment", "section %s is not allocated (no SHF_ALLOC): it is not loaded, so the kernel and tools never see it", sec.Name)
			continue
		}
		if sec.Type == elf.SHT_NOBITS {
			continue // all zeros: no entries
		}
		*list = append(*list, table{name: sec.Name, via: via, addr: sec.Addr + img.bias, size: sec.Size})
	}
	var out []group
	if haveELF {
		out = append(out, elfGroup)
	}
	if !hasSymtab(img.f) {
		return out
	}
	// Go symbols: PKG.__rseq_cs, PKG.__rseq_cs_ptr_array,
	// PKG.__rseq_exit_point_array.
	byPkg := map[string]*group{}
	var order []string
	for _, sym := range img.symbols() {
		var kind string
		switch {
		case strings.HasSuffix(sym.Name, "."+secCS):
			kind = secCS
		case strings.HasSuffix(sym.Name, "."+secPtrs):
			kind = secPtrs
		case strings.HasSuffix(sym.Name, "."+secExits):
			kind = secExits
		default:
			continue
		}
		t := elf.ST_TYPE(sym.Info)
		if t == elf.STT_FUNC || sym.Section == elf.SHN_UNDEF {
			continue
		}
		pkg := strings.TrimSuffix(sym.Name, "."+kind)
		g := byPkg[pkg]
		if g == nil {
			g = &group{}
			byPkg[pkg] = g
			order = append(order, pkg)
		}
		tb := table{name: sym.Name, via: viaGo, addr: sym.Value + img.bias, size: sym.Size}
		switch kind {
		case secCS:
			g.descs = append(g.descs, tb)
		case secPtrs:
			g.ptrs = append(g.ptrs, tb)
		case secExits:
			g.exits = append(g.exits, tb)
		}
	}
	for _, p := range order {
		out = append(out, *byPkg[p])
	}
	return out
}

func hasSymtab(f *elf.File) bool {
	for _, s := range f.Sections {
		if s.Type == elf.SHT_SYMTAB {
			return true
		}
	}
	return false
}

// readTable reads a whole table, reporting why it cannot.
func (s *scanner) readTable(t table, entry uint64) ([]byte, bool) {
	if t.size%entry != 0 {
		s.object(Warning, "bad-table", "%s is %d bytes, not a multiple of its %d-byte entries; the trailing %d bytes are ignored", t.name, t.size, entry, t.size%entry)
	}
	n := t.size - t.size%entry
	if n == 0 {
		return nil, true
	}
	if n > uint64(s.img.size) {
		s.object(Error, "bad-table", "%s claims %d bytes, more than the whole %d-byte file", t.name, n, s.img.size)
		return nil, false
	}
	b, err := s.img.read(t.addr, n)
	if err != nil {
		s.object(Error, "outside-segment", "%s at %#x (%d bytes) cannot be read from the loaded segments: %v", t.name, t.addr, n, err)
		return nil, false
	}
	return b, true
}

func (s *scanner) collect(g group) {
	img := s.img
	// Pointers first: they anchor the walk of the descriptor tables.
	type ptr struct {
		value uint64
		table string
	}
	var ptrs []ptr
	for _, t := range g.ptrs {
		b, ok := s.readTable(t, 8)
		if !ok {
			continue
		}
		for ; len(b) >= 8; b = b[8:] {
			ptrs = append(ptrs, ptr{img.u64(b), t.name})
		}
	}
	inDescs := func(addr uint64) (table, bool) {
		for _, t := range g.descs {
			if addr >= t.addr && addr-t.addr < t.size {
				return t, true
			}
		}
		return table{}, false
	}
	anchors := map[uint64]bool{}
	pointed := map[uint64]bool{}
	for _, p := range ptrs {
		if p.value == 0 {
			s.object(Error, "ptr-mismatch", "%s holds a null pointer", p.table)
			continue
		}
		if pointed[p.value] {
			s.object(Warning, "ptr-mismatch", "%s lists the descriptor at %#x more than once", p.table, p.value)
			continue
		}
		pointed[p.value] = true
		if _, ok := inDescs(p.value); ok {
			anchors[p.value] = true
		}
	}
	// Walk the descriptor tables.
	for _, t := range g.descs {
		data, ok := s.readTable(t, 1)
		if !ok {
			continue
		}
		for _, off := range walk(data, t.addr, anchors, func(b []byte) bool { return s.plausible(b, t.via) }) {
			addr := t.addr + off
			f := s.add(addr, data[off:off+descSize], t.via)
			if f != nil && len(ptrs) > 0 && !pointed[addr] {
				f.notes = append(f.notes, Finding{Severity: Warning, Rule: "ptr-mismatch",
					Message: fmt.Sprintf("descriptor at %#x in %s is missing from %s: tools that read only the pointer array (DynamoRIO) will not see this section", addr, t.name, ptrName(g))})
			}
		}
	}
	// Pointers to places the walk found no descriptor at: outside the
	// tables, or inside them but not where an entry starts. Each is listed
	// as a section of its own and judged by the rules like any other (the
	// kernel would use it as a descriptor), without hiding the
	// descriptors it overlaps.
	for _, p := range ptrs {
		if p.value == 0 || s.byDsc[p.value] != nil {
			continue
		}
		b, err := img.read(p.value, descSize)
		if err != nil {
			s.object(Error, "outside-segment", "%s points at %#x, outside the loaded segments: the descriptor cannot exist", p.table, p.value)
			continue
		}
		f := s.add(p.value, b, secPtrs)
		if f == nil {
			continue
		}
		if t, ok := inDescs(p.value); ok {
			msg := fmt.Sprintf("%s points at %#x inside %s, where no descriptor of the table starts", p.table, p.value, t.name)
			if o := s.overlapped(p.value); len(o) > 0 {
				list := make([]string, len(o))
				for k, a := range o {
					list[k] = fmt.Sprintf("%#x", a)
				}
				msg = fmt.Sprintf("%s points at %#x inside %s, %d bytes into the descriptor at %#x: no descriptor starts there; a thread registering this pointer would use parts of the descriptor(s) at %s as its fields", p.table, p.value, t.name, p.value-o[0], o[0], strings.Join(list, ", "))
			}
			f.notes = append(f.notes, Finding{Severity: Error, Rule: "ptr-mismatch", Message: msg})
		} else if len(g.descs) > 0 {
			f.notes = append(f.notes, Finding{Severity: Warning, Rule: "ptr-mismatch",
				Message: fmt.Sprintf("%s points at %#x, which is not inside %s", p.table, p.value, g.descs[0].name)})
		}
	}
	// Exit points.
	for _, t := range g.exits {
		b, ok := s.readTable(t, 16)
		if !ok {
			continue
		}
		byStart := map[uint64][]*found{}
		for _, f := range s.found {
			byStart[f.sec.Start] = append(byStart[f.sec.Start], f)
		}
		for ; len(b) >= 16; b = b[16:] {
			start, exit := img.u64(b), img.u64(b[8:])
			fs := byStart[start]
			if len(fs) == 0 {
				s.object(Warning, "orphan-exit", "%s lists exit %#x for a section starting at %#x, but no descriptor has that start", t.name, exit, start)
				continue
			}
			for _, f := range fs {
				f.sec.Exits = append(f.sec.Exits, exit)
			}
		}
	}
}

// overlapped returns the addresses of the descriptors found so far whose
// 32 bytes overlap the 32 bytes at addr, other than one at addr itself.
func (s *scanner) overlapped(addr uint64) []uint64 {
	var out []uint64
	for _, f := range s.found {
		d := f.sec.Descriptor
		if d != addr && d < addr+descSize && addr < d+descSize {
			out = append(out, d)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// plausible reports whether the 32 bytes b read as a descriptor the kernel
// could use: version and flags zero, a non-empty range inside one
// executable segment and an abort_ip in one. For a __rseq_table entry the
// pre-merge layout counts too.
func (s *scanner) plausible(b []byte, via string) bool {
	img := s.img
	exec := func(addr, n uint64) bool {
		seg := img.segmentOf(addr, n)
		return seg != nil && seg.exec
	}
	start, n, abort := img.u64(b[8:]), img.u64(b[16:]), img.u64(b[24:])
	if img.u32(b[0:]) == 0 && img.u32(b[4:]) == 0 && n != 0 && exec(start, n) && exec(abort, 1) {
		return true
	}
	if via == secTable {
		start, post, abort := img.u64(b[0:]), img.u64(b[8:]), img.u64(b[16:])
		return post > start && exec(start, post-start) && exec(abort, 1)
	}
	return false
}

func ptrName(g group) string {
	if len(g.descs) > 0 && g.descs[0].via == viaGo {
		return strings.TrimSuffix(g.descs[0].name, secCS) + secPtrs
	}
	return secPtrs
}

// walk returns the offsets of the descriptors in a table: 32-byte entries
// from the first 32-aligned address (when the bytes before it are zero
// padding), skipping all-zero entries. An anchor (an address a pointer
// names) inside the next entry starts an entry instead, the bytes before it
// taken for padding, so that misaligned descriptors that the pointer array
// lists are found too, unless the entry reads as a plausible descriptor
// (ok): a bad pointer into the middle of a good descriptor must not throw
// the walk out of step. The caller lists what
// such a pointer names on its own.
func walk(data []byte, base uint64, anchors map[uint64]bool, ok func([]byte) bool) []uint64 {
	var sorted []uint64
	for a := range anchors {
		if a >= base && a-base < uint64(len(data)) {
			sorted = append(sorted, a-base)
		}
	}
	sort.Slice(sorted, func(i, j int) bool { return sorted[i] < sorted[j] })
	n := uint64(len(data))
	var pos uint64
	if pad := (descSize - base%descSize) % descSize; pad != 0 && pad < n && allZero(data[:pad]) && (len(sorted) == 0 || sorted[0] >= pad) {
		pos = pad
	}
	var out []uint64
	k := 0
	for pos+descSize <= n {
		for k < len(sorted) && sorted[k] < pos {
			k++
		}
		if k < len(sorted) && sorted[k] < pos+descSize && sorted[k] != pos {
			a := sorted[k]
			if !ok(data[pos : pos+descSize]) {
				pos = a // the bytes before an anchor are padding
				continue
			}
			k++ // a pointer into this entry: not followed here
		}
		if !allZero(data[pos : pos+descSize]) {
			out = append(out, pos)
		}
		pos += descSize
	}
	return out
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// add records the descriptor at addr (b holds its 32 bytes). A descriptor
// seen before is not added twice.
func (s *scanner) add(addr uint64, b []byte, via string) *found {
	if s.byDsc[addr] != nil {
		return nil
	}
	img := s.img
	if via == secTable {
		if f := s.addPrototype(addr, b); f != nil {
			return f
		}
	}
	f := &found{sec: Section{
		Object:           img.name,
		Descriptor:       addr,
		Version:          img.u32(b[0:]),
		Flags:            img.u32(b[4:]),
		Start:            img.u64(b[8:]),
		PostCommitOffset: img.u64(b[16:]),
		Abort:            img.u64(b[24:]),
		Via:              via,
	}}
	s.byDsc[addr] = f
	s.found = append(s.found, f)
	return f
}

// addPrototype recognises the layout of __rseq_table entries written by
// the pre-merge (2016-2017) rseq patches and early librseq: u64 start_ip,
// u64 post_commit_ip (an address, not a length), u64 abort_ip, u32 flags,
// u32 padding. An entry is read that way only when the struct rseq_cs
// reading is impossible (non-zero version or flags) and the other reading
// names code: a start and post-commit address in one executable segment,
// in order, and an abort address in an executable segment.
func (s *scanner) addPrototype(addr uint64, b []byte) *found {
	img := s.img
	if img.u32(b[0:]) == 0 && img.u32(b[4:]) == 0 {
		return nil
	}
	start, post, abort := img.u64(b[0:]), img.u64(b[8:]), img.u64(b[16:])
	if post <= start {
		return nil
	}
	if seg := img.segmentOf(start, post-start); seg == nil || !seg.exec {
		return nil
	}
	if seg := img.segmentOf(abort, 1); seg == nil || !seg.exec {
		return nil
	}
	f := &found{sec: Section{
		Object:           img.name,
		Descriptor:       addr,
		Flags:            img.u32(b[24:]),
		Start:            start,
		PostCommitOffset: post - start,
		Abort:            abort,
		Via:              secTable,
	}}
	f.notes = append(f.notes, Finding{Severity: Warning, Rule: "legacy-layout",
		Message: fmt.Sprintf("the __rseq_table entry at %#x uses the pre-merge layout {start_ip, post_commit_ip, abort_ip, flags}; the kernel expects struct rseq_cs {version, flags, start_ip, post_commit_offset, abort_ip} and would reject this entry if it were registered", addr)})
	s.byDsc[addr] = f
	s.found = append(s.found, f)
	return f
}

// finish sorts the sections and applies the rules.
func (s *scanner) finish() {
	sort.SliceStable(s.found, func(i, j int) bool {
		a, b := &s.found[i].sec, &s.found[j].sec
		if a.Start != b.Start {
			return a.Start < b.Start
		}
		return a.Descriptor < b.Descriptor
	})
	obj := s.obj
	obj.Sections = make([]Section, len(s.found))
	for i, f := range s.found {
		obj.Sections[i] = f.sec
	}
	for i, f := range s.found {
		for _, n := range f.notes {
			n.Section = i
			obj.Findings = append(obj.Findings, n)
		}
		s.check(i)
	}
	s.checkSignatures()
	sort.SliceStable(obj.Findings, func(i, j int) bool {
		a, b := obj.Findings[i], obj.Findings[j]
		if a.Section != b.Section {
			return a.Section < b.Section
		}
		return false
	})
}

func (s *scanner) flag(i int, sev Severity, rule, format string, args ...any) {
	s.obj.Findings = append(s.obj.Findings, Finding{Severity: sev, Rule: rule, Section: i, Message: fmt.Sprintf(format, args...)})
}

// check applies the descriptor rules to section i.
func (s *scanner) check(i int) {
	img := s.img
	sec := &s.obj.Sections[i]
	sec.Symbol = img.symbolize(sec.Start)
	if sec.Version != 0 || sec.Flags != 0 {
		s.flag(i, Error, "version-flags", "descriptor has version %d and flags %#x; the kernel requires both to be 0 and kills the thread (SIGSEGV) when it meets this descriptor", sec.Version, sec.Flags)
	}
	if sec.Descriptor%descSize != 0 {
		s.flag(i, Warning, "misaligned", "descriptor at %#x is not 32-byte aligned as the ABI requires for struct rseq_cs", sec.Descriptor)
	}
	rangeOK := true
	switch {
	case sec.PostCommitOffset == 0:
		s.flag(i, Error, "empty-range", "post_commit_offset is 0: start_ip is not below the post-commit address, so the section is empty and never protected")
		rangeOK = false
	case sec.Start+sec.PostCommitOffset < sec.Start:
		s.flag(i, Error, "empty-range", "start_ip %#x + post_commit_offset %#x wraps around the address space", sec.Start, sec.PostCommitOffset)
		rangeOK = false
	}
	if img.ptr == 4 && (sec.Start>>32 != 0 || sec.Abort>>32 != 0 || sec.PostCommitOffset>>32 != 0) {
		s.flag(i, Error, "outside-segment", "a 32-bit object's descriptor holds a value above 4 GiB (start %#x, length %#x, abort %#x): the upper half of each u64 field must be zero", sec.Start, sec.PostCommitOffset, sec.Abort)
		return
	}
	var code *segment
	if rangeOK {
		code = img.segmentOf(sec.Start, sec.PostCommitOffset)
		if code == nil || !code.exec {
			s.flag(i, Error, "outside-segment", "section [%#x, %#x) does not lie inside one executable loaded segment", sec.Start, sec.End())
			code = nil
		}
	}
	if rangeOK && sec.Contains(sec.Abort) {
		s.flag(i, Error, "abort-inside", "abort_ip %#x lies inside the section [%#x, %#x); the kernel rejects such a descriptor (SIGSEGV)", sec.Abort, sec.Start, sec.End())
	}
	if seg := img.segmentOf(sec.Abort, 1); seg == nil || !seg.exec {
		s.flag(i, Error, "outside-segment", "abort_ip %#x is not inside an executable loaded segment", sec.Abort)
	} else if sec.Abort < 4 || img.segmentOf(sec.Abort-4, 4) == nil {
		s.flag(i, Error, "bad-signature", "the 4 bytes before abort_ip %#x are not in the segment, so no signature can precede it", sec.Abort)
	} else {
		n := uint64(4)
		if sec.Abort >= 7 && img.segmentOf(sec.Abort-7, 7) != nil {
			n = 7
		}
		b, err := img.read(sec.Abort-n, n)
		if err != nil {
			s.flag(i, Error, "bad-signature", "cannot read the signature before abort_ip %#x: %v", sec.Abort, err)
		} else {
			sec.Signature = img.u32(b[n-4:])
			sec.SignatureOK = signatureOK(img.f.Machine, b)
			if !sec.SignatureOK {
				s.flag(i, Error, "bad-signature", "the 4 bytes before abort_ip %#x (%#08x) are not an abort signature for %s (expected %s); the kernel kills the thread on abort", sec.Abort, sec.Signature, machineName(img.f.Machine), expectedSig(img.f.Machine))
			}
		}
	}
	if code != nil {
		s.checkPatched(i)
	}
	if s.opt.Disassemble && code != nil {
		s.disassemble(i)
	}
}

// checkPatched compares, in a process, the section's code and the
// signature before abort_ip with the file's bytes, which are the ones
// judged.
func (s *scanner) checkPatched(i int) {
	sec := &s.obj.Sections[i]
	n, first, mem, file := s.img.codeDiff(sec.Start, sec.PostCommitOffset)
	if sec.Abort >= 7 {
		if k, f, m, fb := s.img.codeDiff(sec.Abort-7, 7); k > 0 {
			if n == 0 {
				first, mem, file = f, m, fb
			}
			n += k
		}
	}
	if n > 0 {
		s.flag(i, Info, "code-differs", "the code in memory differs from the file's in %d byte(s), the first at %#x (memory %#02x, file %#02x): breakpoints of a debugger or of rseq torture, or code patched at run time. The file's bytes were judged", n, first, mem, file)
	}
}

// signatureOK reports whether b, the bytes that end at abort_ip (4 or 7
// of them), hold an abort signature for the machine.
func signatureOK(m elf.Machine, b []byte) bool {
	sig := b[len(b)-4:]
	le := uint32(sig[0]) | uint32(sig[1])<<8 | uint32(sig[2])<<16 | uint32(sig[3])<<24
	be := uint32(sig[3]) | uint32(sig[2])<<8 | uint32(sig[1])<<16 | uint32(sig[0])<<24
	switch m {
	case elf.EM_X86_64, elf.EM_386:
		// The convention: 0f b9 3d + signature, one ud1 instruction.
		return le == 0x53053053 || (len(b) >= 7 && b[0] == 0x0f && b[1] == 0xb9 && b[2] == 0x3d)
	case elf.EM_AARCH64:
		// A brk instruction (code is little-endian even on aarch64_be).
		return le&0xffe0001f == 0xd4200000
	case elf.EM_ARM:
		return le == 0xe7f5def3 || be == 0xe7f5def3
	case elf.EM_S390:
		return be == 0xb2ff0fff
	case elf.EM_PPC, elf.EM_PPC64:
		return le == 0x0fe5000b || be == 0x0fe5000b
	case elf.EM_MIPS:
		return le == 0x0350004d || be == 0x0350004d
	case elf.EM_RISCV:
		return le == 0xf1401073
	}
	return true // unknown machine: nothing to compare with
}

func expectedSig(m elf.Machine) string {
	switch m {
	case elf.EM_X86_64, elf.EM_386:
		return "0x53053053 emitted as ud1: 0f b9 3d 53 30 05 53"
	case elf.EM_AARCH64:
		return "a brk instruction, conventionally 0xd428bc00"
	case elf.EM_ARM:
		return "0xe7f5def3"
	case elf.EM_S390:
		return "0xb2ff0fff (trap4)"
	case elf.EM_PPC, elf.EM_PPC64:
		return "0x0fe5000b"
	case elf.EM_MIPS:
		return "0x0350004d"
	case elf.EM_RISCV:
		return "0xf1401073"
	}
	return "the registered signature"
}

// checkSignatures flags sections whose (plausible) signature differs from
// the most common one: a thread registers one signature only.
func (s *scanner) checkSignatures() {
	count := map[uint32]int{}
	for _, sec := range s.obj.Sections {
		if sec.SignatureOK {
			count[sec.Signature]++
		}
	}
	if len(count) < 2 {
		return
	}
	var best uint32
	for sig, n := range count {
		if n > count[best] || (n == count[best] && sig < best) {
			best = sig
		}
	}
	for i, sec := range s.obj.Sections {
		if sec.SignatureOK && sec.Signature != best {
			s.flag(i, Error, "mixed-signatures", "signature %#08x differs from %#08x used by %d other section(s) of this object; a thread registers one signature, so one of them aborts with SIGSEGV", sec.Signature, best, count[best])
		}
	}
}
