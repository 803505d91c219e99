package scan

import (
	"debug/elf"
	"encoding/binary"
	"io"
)

// A tiny ELF writer for synthetic test inputs: big files for the
// benchmarks, many sections, Go-style symbols, 32-bit and big-endian
// layouts, and deliberately corrupt tables.

type segSpec struct {
	vaddr  uint64
	data   []byte // file contents; may be shorter than filesz (rest is a hole)
	filesz uint64 // 0 means len(data)
	memsz  uint64 // 0 means filesz
	exec   bool
}

type secSpec struct {
	name  string
	seg   int    // segment holding the section; -1 for none
	off   uint64 // offset inside the segment
	size  uint64
	typ   elf.SectionType
	flags elf.SectionFlag
}

type symSpec struct {
	name        string
	value, size uint64
	typ         elf.SymType
	sec         int // index into secs, or -1 for SHN_ABS
}

type elfSpec struct {
	class   elf.Class
	be      bool
	machine elf.Machine
	typ     elf.Type
	segs    []segSpec
	secs    []secSpec
	syms    []symSpec
}

const page = 4096

func alignUp(v, a uint64) uint64 { return (v + a - 1) &^ (a - 1) }

// build writes the file through w and returns its size.
func (s *elfSpec) build(w io.WriterAt) int64 {
	var bo binary.ByteOrder = binary.LittleEndian
	if s.be {
		bo = binary.BigEndian
	}
	is64 := s.class != elf.ELFCLASS32
	ehsize, phent, shent := uint64(52), uint64(32), uint64(40)
	if is64 {
		ehsize, phent, shent = 64, 56, 64
	}
	if s.typ == 0 {
		s.typ = elf.ET_EXEC
	}
	if s.machine == 0 {
		s.machine = elf.EM_X86_64
	}
	// Segment file offsets: page aligned, congruent with vaddr.
	pos := alignUp(ehsize+phent*uint64(len(s.segs)), page)
	offs := make([]uint64, len(s.segs))
	for i := range s.segs {
		sg := &s.segs[i]
		if sg.filesz == 0 {
			sg.filesz = uint64(len(sg.data))
		}
		if sg.memsz == 0 {
			sg.memsz = sg.filesz
		}
		pos = alignUp(pos, page) + sg.vaddr%page
		offs[i] = pos
		if len(sg.data) > 0 {
			w.WriteAt(sg.data, int64(pos))
		}
		pos += sg.filesz
	}
	// String tables and the symbol table.
	shstr := []byte{0}
	name := func(tab *[]byte, n string) uint32 {
		off := uint32(len(*tab))
		*tab = append(*tab, n...)
		*tab = append(*tab, 0)
		return off
	}
	type shdr struct {
		name            uint32
		typ             elf.SectionType
		flags           elf.SectionFlag
		addr, off, size uint64
		link, info      uint32
		align, entsize  uint64
	}
	shdrs := []shdr{{}}
	for _, sc := range s.secs {
		h := shdr{name: name(&shstr, sc.name), typ: sc.typ, flags: sc.flags, size: sc.size, align: 1}
		if h.typ == 0 {
			h.typ = elf.SHT_PROGBITS
		}
		if sc.seg >= 0 {
			h.addr = s.segs[sc.seg].vaddr + sc.off
			h.off = offs[sc.seg] + sc.off
			if h.flags == 0 {
				h.flags = elf.SHF_ALLOC
			}
		} else {
			h.off = pos
		}
		shdrs = append(shdrs, h)
	}
	if len(s.syms) > 0 {
		strtab := []byte{0}
		entsz := uint64(16)
		if is64 {
			entsz = 24
		}
		symtab := make([]byte, entsz) // null symbol
		for _, sy := range s.syms {
			e := make([]byte, entsz)
			shndx := uint16(elf.SHN_ABS)
			if sy.sec >= 0 {
				shndx = uint16(sy.sec + 1)
			}
			info := byte(elf.STB_GLOBAL)<<4 | byte(sy.typ)
			n := name(&strtab, sy.name)
			if is64 {
				bo.PutUint32(e[0:], n)
				e[4] = info
				bo.PutUint16(e[6:], shndx)
				bo.PutUint64(e[8:], sy.value)
				bo.PutUint64(e[16:], sy.size)
			} else {
				bo.PutUint32(e[0:], n)
				bo.PutUint32(e[4:], uint32(sy.value))
				bo.PutUint32(e[8:], uint32(sy.size))
				e[12] = info
				bo.PutUint16(e[14:], shndx)
			}
			symtab = append(symtab, e...)
		}
		symIdx := uint32(len(shdrs))
		w.WriteAt(symtab, int64(pos))
		shdrs = append(shdrs, shdr{name: name(&shstr, ".symtab"), typ: elf.SHT_SYMTAB, off: pos, size: uint64(len(symtab)), link: symIdx + 1, info: 1, align: 8, entsize: entsz})
		pos += uint64(len(symtab))
		w.WriteAt(strtab, int64(pos))
		shdrs = append(shdrs, shdr{name: name(&shstr, ".strtab"), typ: elf.SHT_STRTAB, off: pos, size: uint64(len(strtab)), align: 1})
		pos += uint64(len(strtab))
	}
	shstrIdx := len(shdrs)
	shdrs = append(shdrs, shdr{typ: elf.SHT_STRTAB, off: pos, align: 1})
	shdrs[shstrIdx].name = name(&shstr, ".shstrtab")
	shdrs[shstrIdx].size = uint64(len(shstr))
	w.WriteAt(shstr, int64(pos))
	pos = alignUp(pos+uint64(len(shstr)), 8)
	shoff := pos
	for _, h := range shdrs {
		b := make([]byte, shent)
		bo.PutUint32(b[0:], h.name)
		bo.PutUint32(b[4:], uint32(h.typ))
		if is64 {
			bo.PutUint64(b[8:], uint64(h.flags))
			bo.PutUint64(b[16:], h.addr)
			bo.PutUint64(b[24:], h.off)
			bo.PutUint64(b[32:], h.size)
			bo.PutUint32(b[40:], h.link)
			bo.PutUint32(b[44:], h.info)
			bo.PutUint64(b[48:], h.align)
			bo.PutUint64(b[56:], h.entsize)
		} else {
			for k, v := range []uint64{uint64(h.flags), h.addr, h.off, h.size, uint64(h.link), uint64(h.info), h.align, h.entsize} {
				bo.PutUint32(b[8+4*k:], uint32(v))
			}
		}
		w.WriteAt(b, int64(pos))
		pos += shent
	}
	// Header and program headers.
	eh := make([]byte, ehsize)
	copy(eh, elf.ELFMAG)
	eh[4] = byte(s.class)
	if s.class == 0 {
		eh[4] = byte(elf.ELFCLASS64)
	}
	eh[5] = byte(elf.ELFDATA2LSB)
	if s.be {
		eh[5] = byte(elf.ELFDATA2MSB)
	}
	eh[6] = 1
	bo.PutUint16(eh[16:], uint16(s.typ))
	bo.PutUint16(eh[18:], uint16(s.machine))
	bo.PutUint32(eh[20:], 1)
	if is64 {
		bo.PutUint64(eh[32:], ehsize)
		bo.PutUint64(eh[40:], shoff)
		bo.PutUint16(eh[52:], uint16(ehsize))
		bo.PutUint16(eh[54:], uint16(phent))
		bo.PutUint16(eh[56:], uint16(len(s.segs)))
		bo.PutUint16(eh[58:], uint16(shent))
		bo.PutUint16(eh[60:], uint16(len(shdrs)))
		bo.PutUint16(eh[62:], uint16(shstrIdx))
	} else {
		bo.PutUint32(eh[28:], uint32(ehsize))
		bo.PutUint32(eh[32:], uint32(shoff))
		bo.PutUint16(eh[40:], uint16(ehsize))
		bo.PutUint16(eh[42:], uint16(phent))
		bo.PutUint16(eh[44:], uint16(len(s.segs)))
		bo.PutUint16(eh[46:], uint16(shent))
		bo.PutUint16(eh[48:], uint16(len(shdrs)))
		bo.PutUint16(eh[50:], uint16(shstrIdx))
	}
	w.WriteAt(eh, 0)
	for i, sg := range s.segs {
		b := make([]byte, phent)
		flags := uint32(elf.PF_R)
		if sg.exec {
			flags |= uint32(elf.PF_X)
		} else {
			flags |= uint32(elf.PF_W)
		}
		bo.PutUint32(b[0:], uint32(elf.PT_LOAD))
		if is64 {
			bo.PutUint32(b[4:], flags)
			bo.PutUint64(b[8:], offs[i])
			bo.PutUint64(b[16:], sg.vaddr)
			bo.PutUint64(b[24:], sg.vaddr)
			bo.PutUint64(b[32:], sg.filesz)
			bo.PutUint64(b[40:], sg.memsz)
			bo.PutUint64(b[48:], page)
		} else {
			for k, v := range []uint64{offs[i], sg.vaddr, sg.vaddr, sg.filesz, sg.memsz, uint64(flags), page} {
				bo.PutUint32(b[4+4*k:], uint32(v))
			}
		}
		w.WriteAt(b, int64(ehsize+uint64(i)*phent))
	}
	return int64(pos)
}

// memFile is an in-memory io.WriterAt and io.ReaderAt.
type memFile struct{ b []byte }

func (m *memFile) WriteAt(p []byte, off int64) (int, error) {
	if end := int(off) + len(p); end > len(m.b) {
		m.b = append(m.b, make([]byte, end-len(m.b))...)
	}
	return copy(m.b[off:], p), nil
}

// bytes builds the spec in memory.
func (s *elfSpec) bytes() []byte {
	var m memFile
	n := s.build(&m)
	if int64(len(m.b)) < n {
		m.b = append(m.b, make([]byte, n-int64(len(m.b)))...)
	}
	return m.b
}

// descriptor encodes a struct rseq_cs.
func descriptor(bo binary.ByteOrder, version, flags uint32, start, length, abort uint64) []byte {
	b := make([]byte, 32)
	bo.PutUint32(b[0:], version)
	bo.PutUint32(b[4:], flags)
	bo.PutUint64(b[8:], start)
	bo.PutUint64(b[16:], length)
	bo.PutUint64(b[24:], abort)
	return b
}

// x86Block is one synthetic x86-64 critical section of 16 bytes: a
// 3-byte commit store (movq %rcx,(%rsi)), the 7-byte ud1 signature, a ret
// as the abort handler and nops. The section is [0, 3), abort at 10.
var x86Block = []byte{0x48, 0x89, 0x0e, 0x0f, 0xb9, 0x3d, 0x53, 0x30, 0x05, 0x53, 0xc3, 0x90, 0x90, 0x90, 0x90, 0x90}

// manySections returns a valid x86-64 executable with n sections listed
// through __rseq_cs and __rseq_cs_ptr_array, n exit points, and function
// symbols.
func manySections(n int, goStyle bool) *elfSpec {
	const text, data = 0x401000, 0x600000
	code := make([]byte, 0, 16*n)
	cs := make([]byte, 0, 32*n)
	ptrs := make([]byte, 0, 8*n)
	exits := make([]byte, 0, 16*n)
	le := binary.LittleEndian
	var syms []symSpec
	for i := 0; i < n; i++ {
		base := uint64(text + 16*i)
		code = append(code, x86Block...)
		cs = append(cs, descriptor(le, 0, 0, base, 3, base+10)...)
		ptrs = le.AppendUint64(ptrs, uint64(data+32*i))
		exits = le.AppendUint64(exits, base)
		exits = le.AppendUint64(exits, base+10+1)
		syms = append(syms, symSpec{name: "fn" + itoa(i), value: base, size: 16, typ: elf.STT_FUNC, sec: 0})
	}
	tables := append(append(append([]byte{}, cs...), ptrs...), exits...)
	spec := &elfSpec{
		segs: []segSpec{{vaddr: text, data: code, exec: true}, {vaddr: data, data: tables}},
		secs: []secSpec{{name: ".text", seg: 0, size: uint64(len(code)), flags: elf.SHF_ALLOC | elf.SHF_EXECINSTR}},
		syms: syms,
	}
	csAt, ptrAt, exAt := uint64(0), uint64(len(cs)), uint64(len(cs)+len(ptrs))
	if goStyle {
		spec.secs = append(spec.secs, secSpec{name: ".noptrdata", seg: 1, size: uint64(len(tables))})
		spec.syms = append(spec.syms,
			symSpec{name: "example.com/fake.__rseq_cs", value: data + csAt, size: uint64(len(cs)), typ: elf.STT_OBJECT, sec: 1},
			symSpec{name: "example.com/fake.__rseq_cs_ptr_array", value: data + ptrAt, size: uint64(len(ptrs)), typ: elf.STT_OBJECT, sec: 1},
			symSpec{name: "example.com/fake.__rseq_exit_point_array", value: data + exAt, size: uint64(len(exits)), typ: elf.STT_OBJECT, sec: 1})
	} else {
		spec.secs = append(spec.secs,
			secSpec{name: secCS, seg: 1, off: csAt, size: uint64(len(cs))},
			secSpec{name: secPtrs, seg: 1, off: ptrAt, size: uint64(len(ptrs))},
			secSpec{name: secExits, seg: 1, off: exAt, size: uint64(len(exits))})
	}
	return spec
}

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	var b []byte
	for ; i > 0; i /= 10 {
		b = append([]byte{byte('0' + i%10)}, b...)
	}
	return string(b)
}
