package scan

import (
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
)

// ErrNotELF is returned (wrapped) for input that is not an ELF file.
var ErrNotELF = errors.New("not an ELF file")

// segment is one PT_LOAD program header, in link-time addresses.
type segment struct {
	vaddr, memsz uint64
	off, filesz  uint64
	exec         bool
}

func (s *segment) contains(addr, n uint64) bool {
	return addr >= s.vaddr && n <= s.memsz && addr-s.vaddr <= s.memsz-n
}

// reloc is one RELA relative relocation: the word at addr (link-time)
// holds value once loaded.
type reloc struct{ addr, value uint64 }

// image is an ELF object opened for scanning. Addresses passed to its
// methods are run-time addresses: link-time addresses plus bias.
type image struct {
	name  string
	f     *elf.File
	r     io.ReaderAt
	size  int64
	order binary.ByteOrder
	ptr   int // pointer size, 4 or 8
	bias  uint64
	loads []segment
	// mem, when set, reads the memory of a live process at run-time
	// addresses; the file still supplies the ELF headers.
	mem io.ReaderAt
	// memFallback makes a failed memory read fall back to the file.
	memFallback bool

	relocs     []reloc // sorted by addr; built lazily for file reads
	relocsDone bool

	syms     []symbol // sorted by value; built lazily
	symsDone bool
	allSyms  []elf.Symbol
}

type symbol struct {
	name        string
	value, size uint64
}

// openImage parses the ELF headers. It never reads section contents.
func openImage(r io.ReaderAt, size int64, name string) (img *image, err error) {
	if size < 16 {
		return nil, fmt.Errorf("%s: %w (only %d bytes)", name, ErrNotELF, size)
	}
	var ident [4]byte
	if _, err := r.ReadAt(ident[:], 0); err != nil {
		return nil, fmt.Errorf("%s: reading header: %w", name, err)
	}
	if string(ident[:]) != elf.ELFMAG {
		return nil, fmt.Errorf("%s: %w (bad magic %q)", name, ErrNotELF, ident[:])
	}
	if err := checkHeaders(r, size); err != nil {
		return nil, fmt.Errorf("%s: malformed ELF: %w", name, err)
	}
	f, err := elf.NewFile(io.NewSectionReader(r, 0, size))
	if err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("%s: malformed ELF: reading the ELF headers of the %d-byte file: unexpected end of file", name, size)
		}
		return nil, fmt.Errorf("%s: malformed ELF: %w", name, err)
	}
	switch f.Type {
	case elf.ET_EXEC, elf.ET_DYN:
	default:
		return nil, fmt.Errorf("%s: ELF type %v: only executables and shared libraries can be scanned", name, f.Type)
	}
	img = &image{name: name, f: f, r: r, size: size, order: f.ByteOrder, ptr: 8}
	if f.Class == elf.ELFCLASS32 {
		img.ptr = 4
	}
	for _, p := range f.Progs {
		if p.Type != elf.PT_LOAD {
			continue
		}
		if p.Filesz > p.Memsz || p.Vaddr+p.Memsz < p.Vaddr || p.Off+p.Filesz < p.Off || p.Off+p.Filesz > uint64(size) {
			return nil, fmt.Errorf("%s: malformed ELF: PT_LOAD at %#x (offset %#x, %#x bytes in file) lies outside the %d-byte file or wraps", name, p.Vaddr, p.Off, p.Filesz, size)
		}
		img.loads = append(img.loads, segment{vaddr: p.Vaddr, memsz: p.Memsz, off: p.Off, filesz: p.Filesz, exec: p.Flags&elf.PF_X != 0})
	}
	if len(img.loads) == 0 {
		return nil, fmt.Errorf("%s: no loadable segments", name)
	}
	return img, nil
}

// checkHeaders checks that the tables elf.NewFile reads first (the ELF
// header, the program and section header tables and the section name
// table) lie inside the file, so that a truncated or corrupt file gets an
// error naming what was read at which offset rather than a bare EOF.
func checkHeaders(r io.ReaderAt, size int64) error {
	var ident [elf.EI_NIDENT]byte
	if _, err := r.ReadAt(ident[:], 0); err != nil {
		return fmt.Errorf("reading the %d-byte identification at offset 0 of the %d-byte file: %v", len(ident), size, err)
	}
	var bo binary.ByteOrder
	switch elf.Data(ident[elf.EI_DATA]) {
	case elf.ELFDATA2LSB:
		bo = binary.LittleEndian
	case elf.ELFDATA2MSB:
		bo = binary.BigEndian
	default:
		return fmt.Errorf("unknown data encoding %d at offset %#x", ident[elf.EI_DATA], elf.EI_DATA)
	}
	// The offsets of e_phoff, e_shoff, e_phentsize (followed by e_phnum,
	// e_shentsize, e_shnum and e_shstrndx) and the header's size.
	var phoffAt, shoffAt, phentAt, ehsize int
	is64 := false
	switch elf.Class(ident[elf.EI_CLASS]) {
	case elf.ELFCLASS32:
		phoffAt, shoffAt, phentAt, ehsize = 28, 32, 42, 52
	case elf.ELFCLASS64:
		phoffAt, shoffAt, phentAt, ehsize = 32, 40, 54, 64
		is64 = true
	default:
		return fmt.Errorf("unknown class %d at offset %#x", ident[elf.EI_CLASS], elf.EI_CLASS)
	}
	if size < int64(ehsize) {
		return fmt.Errorf("the %d-bit ELF header needs %d bytes, the file has %d", 32<<b2i(is64), ehsize, size)
	}
	hdr := make([]byte, ehsize)
	if _, err := r.ReadAt(hdr, 0); err != nil {
		return fmt.Errorf("reading the %d-byte ELF header at offset 0: %v", ehsize, err)
	}
	word := func(at int) uint64 {
		if is64 {
			return bo.Uint64(hdr[at:])
		}
		return uint64(bo.Uint32(hdr[at:]))
	}
	phoff, shoff := word(phoffAt), word(shoffAt)
	phent, phnum := uint64(bo.Uint16(hdr[phentAt:])), uint64(bo.Uint16(hdr[phentAt+2:]))
	shent, shnum := uint64(bo.Uint16(hdr[phentAt+4:])), uint64(bo.Uint16(hdr[phentAt+6:]))
	shstrndx := uint64(bo.Uint16(hdr[phentAt+8:]))
	within := func(what string, off, n, entsize uint64) error {
		end := off + n*entsize
		if n != 0 && entsize != 0 && (end/entsize < n || end < off || end > uint64(size)) {
			return fmt.Errorf("%s (%d entries of %d bytes at offset %#x) ends at %#x, past the end of the %d-byte file", what, n, entsize, off, end, size)
		}
		return nil
	}
	if err := within("the program header table", phoff, phnum, phent); err != nil {
		return err
	}
	if shoff == 0 {
		return nil
	}
	if shnum == 0 {
		shnum = 1 // extended numbering: entry 0 holds the count
	}
	if err := within("the section header table", shoff, shnum, shent); err != nil {
		return err
	}
	if shstrndx == uint64(elf.SHN_UNDEF) || shstrndx >= shnum || shstrndx >= uint64(elf.SHN_LORESERVE) {
		return nil // elf.NewFile names these itself
	}
	// The section name table's header: sh_type, sh_offset and sh_size.
	sh := make([]byte, shent)
	at := shoff + shstrndx*shent
	if shent < 40 || is64 && shent < 64 {
		return nil
	}
	if _, err := r.ReadAt(sh, int64(at)); err != nil {
		return fmt.Errorf("reading the header of the section name table (section %d) at offset %#x: %v", shstrndx, at, err)
	}
	typ := elf.SectionType(bo.Uint32(sh[4:]))
	off, n := uint64(bo.Uint32(sh[16:])), uint64(bo.Uint32(sh[20:]))
	if is64 {
		off, n = bo.Uint64(sh[24:]), bo.Uint64(sh[32:])
	}
	if typ != elf.SHT_NOBITS {
		if err := within("the section name table (section "+strconv.FormatUint(shstrndx, 10)+")", off, n, 1); err != nil {
			return err
		}
	}
	return nil
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// machineName gives the name used in Object.Machine.
func machineName(m elf.Machine) string {
	switch m {
	case elf.EM_X86_64:
		return "x86-64"
	case elf.EM_386:
		return "i386"
	case elf.EM_AARCH64:
		return "aarch64"
	case elf.EM_ARM:
		return "arm"
	case elf.EM_S390:
		return "s390x"
	case elf.EM_PPC64:
		return "ppc64"
	case elf.EM_PPC:
		return "ppc"
	case elf.EM_RISCV:
		return "riscv"
	case elf.EM_MIPS:
		return "mips"
	case elf.EM_LOONGARCH:
		return "loongarch"
	}
	return strings.ToLower(strings.TrimPrefix(m.String(), "EM_"))
}

var errOutside = errors.New("address outside the loaded segments")

// segmentOf returns the PT_LOAD holding [addr, addr+n) (run-time).
func (img *image) segmentOf(addr, n uint64) *segment {
	link := addr - img.bias
	for i := range img.loads {
		if img.loads[i].contains(link, n) {
			return &img.loads[i]
		}
	}
	return nil
}

// read returns n bytes at run-time address addr. n is capped by the size of
// the file so that no corrupt table can cause an absurd allocation.
func (img *image) read(addr uint64, n uint64) ([]byte, error) {
	if n > uint64(img.size) {
		return nil, fmt.Errorf("%d bytes at %#x: larger than the %d-byte file", n, addr, img.size)
	}
	seg := img.segmentOf(addr, n)
	if seg == nil {
		return nil, fmt.Errorf("%d bytes at %#x: %w", n, addr, errOutside)
	}
	link := addr - img.bias
	rel := link - seg.vaddr
	buf := make([]byte, n)
	if img.mem != nil {
		_, err := img.mem.ReadAt(buf, int64(addr))
		if err == nil && (!seg.exec || rel+n > seg.filesz) {
			return buf, nil
		}
		// Code the file holds is read from the file: the memory of a
		// process under a debugger (or rseq torture) holds breakpoints.
		// check compares the two and says where they differ.
		if err != nil && !img.memFallback {
			return nil, fmt.Errorf("reading process memory at %#x: %w", addr, err)
		}
		clear(buf)
	}
	if rel < seg.filesz {
		m := min(n, seg.filesz-rel)
		if _, err := img.r.ReadAt(buf[:m], int64(seg.off+rel)); err != nil {
			return nil, fmt.Errorf("reading %d bytes at %#x (file offset %#x): %w", m, addr, seg.off+rel, err)
		}
	}
	if !seg.exec {
		img.applyRelocs(buf, link)
	}
	return buf, nil
}

// codeDiff compares the n bytes of code at run-time address addr in the
// process's memory with the file's. It returns how many differ and the
// first that does, or 0 when they agree or either cannot be read.
func (img *image) codeDiff(addr, n uint64) (count int, first uint64, mem, file byte) {
	seg := img.segmentOf(addr, n)
	if img.mem == nil || seg == nil || !seg.exec || n > maxDecode {
		return 0, 0, 0, 0
	}
	rel := addr - img.bias - seg.vaddr
	if rel+n > seg.filesz {
		return 0, 0, 0, 0
	}
	m, f := make([]byte, n), make([]byte, n)
	if _, err := img.mem.ReadAt(m, int64(addr)); err != nil {
		return 0, 0, 0, 0
	}
	if _, err := img.r.ReadAt(f, int64(seg.off+rel)); err != nil {
		return 0, 0, 0, 0
	}
	for k := range m {
		if m[k] != f[k] {
			if count == 0 {
				first, mem, file = addr+uint64(k), m[k], f[k]
			}
			count++
		}
	}
	return count, first, mem, file
}

// word decodes an 8- or 4-byte value of the object's byte order.
func (img *image) u64(b []byte) uint64 { return img.order.Uint64(b) }
func (img *image) u32(b []byte) uint32 { return img.order.Uint32(b) }

// applyRelocs patches buf, read from link-time address link, with the
// relative relocations the dynamic loader would apply (RELA only: REL and
// RELR keep the addend in place). The bias of a file image is zero.
func (img *image) applyRelocs(buf []byte, link uint64) {
	img.loadRelocs()
	if len(img.relocs) == 0 {
		return
	}
	end := link + uint64(len(buf))
	i := sort.Search(len(img.relocs), func(i int) bool { return img.relocs[i].addr >= link })
	for ; i < len(img.relocs) && img.relocs[i].addr < end; i++ {
		r := img.relocs[i]
		off := r.addr - link
		if off+uint64(img.ptr) > uint64(len(buf)) {
			continue
		}
		if img.ptr == 8 {
			img.order.PutUint64(buf[off:], r.value+img.bias)
		} else {
			img.order.PutUint32(buf[off:], uint32(r.value+img.bias))
		}
	}
}

// relativeType returns the R_*_RELATIVE relocation type of the machine.
func relativeType(m elf.Machine) (uint32, bool) {
	switch m {
	case elf.EM_X86_64:
		return uint32(elf.R_X86_64_RELATIVE), true
	case elf.EM_386:
		return uint32(elf.R_386_RELATIVE), true
	case elf.EM_AARCH64:
		return uint32(elf.R_AARCH64_RELATIVE), true
	case elf.EM_ARM:
		return uint32(elf.R_ARM_RELATIVE), true
	case elf.EM_S390:
		return uint32(elf.R_390_RELATIVE), true
	case elf.EM_PPC64:
		return uint32(elf.R_PPC64_RELATIVE), true
	case elf.EM_PPC:
		return uint32(elf.R_PPC_RELATIVE), true
	case elf.EM_RISCV:
		return uint32(elf.R_RISCV_RELATIVE), true
	case elf.EM_LOONGARCH:
		return uint32(elf.R_LARCH_RELATIVE), true
	}
	return 0, false
}

func (img *image) loadRelocs() {
	if img.relocsDone {
		return
	}
	img.relocsDone = true
	rt, ok := relativeType(img.f.Machine)
	if !ok {
		return
	}
	for _, s := range img.f.Sections {
		if s.Type != elf.SHT_RELA || s.Size > uint64(img.size) {
			continue
		}
		data, err := s.Data()
		if err != nil {
			continue
		}
		if img.ptr == 8 {
			for b := data; len(b) >= 24; b = b[24:] {
				if uint32(img.order.Uint64(b[8:])) == rt {
					img.relocs = append(img.relocs, reloc{img.order.Uint64(b), img.order.Uint64(b[16:])})
				}
			}
		} else {
			for b := data; len(b) >= 12; b = b[12:] {
				if img.order.Uint32(b[4:])&0xff == rt {
					img.relocs = append(img.relocs, reloc{uint64(img.order.Uint32(b)), uint64(img.order.Uint32(b[8:]))})
				}
			}
		}
	}
	sort.Slice(img.relocs, func(i, j int) bool { return img.relocs[i].addr < img.relocs[j].addr })
}

// symbols returns the object's symbols (.symtab, else .dynsym); it reads
// them once.
func (img *image) symbols() []elf.Symbol {
	if img.symsDone {
		return img.allSyms
	}
	img.symsDone = true
	syms, err := img.f.Symbols()
	if err != nil || len(syms) == 0 {
		syms, _ = img.f.DynamicSymbols()
	}
	img.allSyms = syms
	for _, s := range syms {
		t := elf.ST_TYPE(s.Info)
		if (t != elf.STT_FUNC && t != elf.STT_NOTYPE) || s.Section == elf.SHN_UNDEF || s.Name == "" || s.Value == 0 {
			continue
		}
		if t == elf.STT_NOTYPE && (s.Section >= elf.SHN_LORESERVE || int(s.Section) >= len(img.f.Sections) || img.f.Sections[s.Section].Flags&elf.SHF_EXECINSTR == 0) {
			continue
		}
		img.syms = append(img.syms, symbol{s.Name, s.Value, s.Size})
	}
	sort.SliceStable(img.syms, func(i, j int) bool { return img.syms[i].value < img.syms[j].value })
	return syms
}

// symbolize names a run-time address as "func+0xoff", or "" when no
// function symbol covers it.
func (img *image) symbolize(addr uint64) string {
	img.symbols()
	link := addr - img.bias
	i := sort.Search(len(img.syms), func(i int) bool { return img.syms[i].value > link }) - 1
	// The closest preceding symbol wins when it covers the address; one
	// without a size covers up to the next symbol. A few earlier ones are
	// tried for symbols that nest.
	for k := 0; i >= 0 && k < 8; i, k = i-1, k+1 {
		s := img.syms[i]
		if (s.size == 0 && k == 0) || link-s.value < s.size {
			if link == s.value {
				return s.name
			}
			return fmt.Sprintf("%s+%#x", s.name, link-s.value)
		}
	}
	return ""
}
