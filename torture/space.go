//go:build linux && (amd64 || arm64)

package torture

import (
	"debug/elf"
	"encoding/binary"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/gorseq/rseq/internal/ptrace"
	"github.com/gorseq/rseq/scan"
)

// Address spaces: one per process (shared with its vfork children), the
// objects mapped into each, their sections found by the scanner, and where
// each abort point lies.

// space is one address space (a process and its vfork children).
type space struct {
	pid   int
	mem   *ptrace.Mem
	bps   map[uint64]*bp
	maps  string
	users int
	// deferred holds the breakpoints back until the program reaches
	// trigger (Go's main.main): a Go package may check its own code during
	// initialization (this module's does), and would see them.
	deferred     bool
	trigger      uint64
	triggerOrig  [bpLen]byte
	triggerArmed bool
	checkedExe   bool
	hook         *bp
}

func (t *tracer) spaces() []*space {
	seen := map[*space]bool{}
	var out []*space
	for _, th := range t.threads {
		if th.sp != nil && !seen[th.sp] {
			seen[th.sp] = true
			out = append(out, th.sp)
		}
	}
	return out
}

func (t *tracer) newSpace(pid int) (*space, error) {
	mem, err := ptrace.OpenMem(pid, true)
	if err != nil {
		return nil, fmt.Errorf("opening the memory of process %d: %w", pid, err)
	}
	return &space{pid: pid, mem: mem, bps: map[uint64]*bp{}}, nil
}

// execMaps returns the executable file mappings of pid, to notice dlopen.
func execMaps(pid int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/maps")
	if err != nil {
		return ""
	}
	var sb strings.Builder
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) >= 6 && strings.Contains(f[1], "x") && strings.HasPrefix(f[5], "/") {
			sb.WriteString(line)
			sb.WriteByte('\n')
		}
	}
	return sb.String()
}

// rescan scans the objects mapped into sp when its executable mappings
// changed and sets breakpoints on the new sections' points.
func (t *tracer) rescan(sp *space) {
	m := execMaps(sp.pid)
	if m == "" || m == sp.maps {
		return
	}
	sp.maps = m
	// The process tells where each object is loaded; the sections are
	// read from the files, which hold neither the breakpoints nor (before
	// the dynamic loader ran) unrelocated descriptors.
	mapped, errs := scan.ScanProcess(sp.pid, scan.Options{})
	for _, err := range errs {
		t.note("scan of process %d: %v", sp.pid, err)
	}
	if !sp.checkedExe {
		sp.checkedExe = true
		t.deferToMain(sp, mapped)
	}
	if sp.hook == nil {
		t.hookLoader(sp, mapped)
	}
	live := map[uint64]bool{}
	var posts []*bp
	for _, m := range mapped {
		if !strings.HasPrefix(m.Path, "/") {
			continue // the vDSO
		}
		o, err := t.scanFile(m.Path)
		if err != nil {
			t.note("scan of %s: %v", m.Path, err)
			continue
		}
		bias := m.Bias
		for i := range o.Sections {
			fs := &o.Sections[i]
			if t.cfg.Filter != nil && !t.cfg.Filter(fs) {
				continue
			}
			s := *fs
			s.Descriptor += bias
			s.Start += bias
			s.Abort += bias
			key := fmt.Sprintf("%s@%#x", o.Path, fs.Descriptor)
			sec := t.sections[key]
			if sec == nil {
				sec = &section{rep: &SectionReport{
					Object: o.Path, Symbol: s.Symbol,
					Start: fs.Start, Abort: fs.Abort,
				}}
				sec.offs, sec.rep.Note = abortPoints(fs)
				sec.hits = make([]int, len(sec.offs))
				sec.reached = make([]int, len(sec.offs))
				sec.unprot = make([]int, len(sec.offs))
				sec.why = make([]string, len(sec.offs))
				sec.rep.Points = len(sec.offs)
				sec.post, sec.commit = fs.PostCommitOffset, len(sec.offs)-1
				t.sections[key] = sec
				t.order = append(t.order, key)
			}
			if len(sec.offs) > 0 {
				posts = append(posts, &bp{addr: s.Start + sec.post, sec: sec, idx: -1, post: true, desc: s.Descriptor, abort: s.Abort})
				for _, x := range fs.Exits {
					posts = append(posts, &bp{addr: x + bias, sec: sec, idx: -1, exit: true, desc: s.Descriptor, abort: s.Abort})
				}
			}
			for i, off := range sec.offs {
				addr := s.Start + off
				live[addr] = true
				if b := sp.bps[addr]; b != nil {
					t.reconcile(sp, b) // again, if setting it failed before
					continue
				}
				b := &bp{addr: addr, sec: sec, idx: i, desc: s.Descriptor, abort: s.Abort}
				if err := sp.mem.Read(addr, b.orig[:]); err != nil {
					t.note("reading %#x in process %d: %v", addr, sp.pid, err)
					sec.why[i] = fmt.Sprintf("reading the instruction at offset %#x failed: %v; the point was not armed", off, err)
					continue
				}
				if b.orig == bpInsn {
					// Not an instruction a section should hold, and
					// the tracer's own breakpoint if it lost track of
					// one: taking it for the original would trap
					// forever.
					t.noteOnce(fmt.Sprintf("bpinsn %d %#x", sp.pid, addr), "process %d, section %s: a breakpoint instruction is already at offset %#x; the point is not armed", sp.pid, sectionName(sec.rep), off)
					if sec.rep.Note == "" {
						sec.rep.Note = fmt.Sprintf("a breakpoint instruction is already at offset %#x", off)
					}
					sec.why[i] = "a breakpoint instruction is already there; the point was not armed"
					continue
				}
				var sw [4]byte
				if s.Abort >= 4 && sp.mem.Read(s.Abort-4, sw[:]) == nil {
					b.sigWord, b.sigRead = binary.LittleEndian.Uint32(sw[:]), true
				}
				sp.bps[addr] = b
				t.reconcile(sp, b)
			}
		}
	}
	// The post-commit and exit breakpoints, where no abort point (nor
	// anything else) has one.
	for _, b := range posts {
		live[b.addr] = true
		if old := sp.bps[b.addr]; old != nil {
			t.reconcile(sp, old)
			continue
		}
		if err := sp.mem.Read(b.addr, b.orig[:]); err != nil {
			t.note("reading %#x in process %d: %v", b.addr, sp.pid, err)
			continue
		}
		if b.orig == bpInsn {
			continue
		}
		sp.bps[b.addr] = b
		t.reconcile(sp, b)
	}
	// A breakpoint is forgotten only when its code is no longer mapped
	// (nothing to restore). One whose object this scan missed (a scan
	// error, or the dynamic loader halfway through mapping a library)
	// stays: forgotten while armed, it would be found again with the
	// breakpoint instruction read as the original one, and hit forever.
	ranges := execRanges(m)
	for addr := range sp.bps {
		if !live[addr] && !inRanges(ranges, addr) {
			delete(sp.bps, addr)
		}
	}
}

// execRanges returns the address ranges of the mappings listed in maps
// (execMaps's lines).
func execRanges(maps string) [][2]uint64 {
	var out [][2]uint64
	for _, line := range strings.Split(maps, "\n") {
		lo, rest, ok := strings.Cut(line, "-")
		if !ok {
			continue
		}
		hi, _, _ := strings.Cut(rest, " ")
		a, err1 := strconv.ParseUint(lo, 16, 64)
		b, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 == nil && err2 == nil {
			out = append(out, [2]uint64{a, b})
		}
	}
	return out
}

func inRanges(ranges [][2]uint64, addr uint64) bool {
	for _, r := range ranges {
		if addr >= r[0] && addr < r[1] {
			return true
		}
	}
	return false
}

// maxPoints bounds the abort points of one section on an architecture with
// fixed-size instructions, like the scanner's disassembly: a real section
// is a few dozen instructions.
const maxPoints = 16 << 10

// abortPoints returns the offsets of the instruction boundaries of s (link
// time addresses), or a note saying why it cannot be tortured. With
// variable-length instructions they come from the disassembly; with
// fixed-size ones (arm64) they are every instruction-sized word of the
// section, decodable or not.
func abortPoints(s *scan.Section) ([]uint64, string) {
	var offs []uint64
	if insnSize == 0 {
		for _, in := range s.Instructions {
			offs = append(offs, in.Addr-s.Start)
		}
		if len(offs) == 0 {
			return nil, "instructions could not be decoded; not tortured"
		}
		return offs, ""
	}
	size := uint64(insnSize)
	switch {
	case s.PostCommitOffset == 0:
		return nil, "empty section; not tortured"
	case s.Start%size != 0 || s.PostCommitOffset%size != 0:
		return nil, fmt.Sprintf("start or length not a multiple of the %d-byte instruction size; not tortured", size)
	case s.PostCommitOffset/size > maxPoints:
		return nil, fmt.Sprintf("section of %d instructions (over %d); not tortured", s.PostCommitOffset/size, maxPoints)
	}
	for off := uint64(0); off < s.PostCommitOffset; off += size {
		offs = append(offs, off)
	}
	return offs, ""
}

// scanFile scans (once) the ELF file at path with disassembly; addresses are
// link-time addresses.
func (t *tracer) scanFile(path string) (*scan.Object, error) {
	if o, ok := t.files[path]; ok {
		return o, nil
	}
	o, err := scan.ScanFile(path, scan.Options{Disassemble: true})
	if err != nil {
		return nil, err
	}
	t.files[path] = o
	return o, nil
}

// deferToMain holds sp's breakpoints back until main.main when the program
// is a Go program: its packages' initialization runs untouched.
func (t *tracer) deferToMain(sp *space, mapped []*scan.Object) {
	exe, err := os.Readlink("/proc/" + strconv.Itoa(sp.pid) + "/exe")
	if err != nil {
		return
	}
	for _, m := range mapped {
		if m.Path != exe {
			continue
		}
		addr, ok := goMain(exe)
		if !ok {
			return
		}
		addr += m.Bias
		var orig [bpLen]byte
		if err := sp.mem.Read(addr, orig[:]); err != nil {
			t.note("process %d: reading main.main at %#x: %v; its sections are tortured from the start", sp.pid, addr, err)
			return
		}
		if err := sp.mem.Write(addr, bpInsn[:]); err != nil {
			t.note("process %d: setting the breakpoint on main.main at %#x: %v; its sections are tortured from the start", sp.pid, addr, err)
			return
		}
		sp.deferred, sp.trigger, sp.triggerOrig, sp.triggerArmed = true, addr, orig, true
		return
	}
}

// hookLoader sets the breakpoint on the dynamic loader's _dl_debug_state
// (the debugger interface: called after each change of the loaded objects),
// where a rescan finds the sections of libraries loaded by dlopen before
// their code runs.
func (t *tracer) hookLoader(sp *space, mapped []*scan.Object) {
	for _, m := range mapped {
		if !strings.Contains(m.Path, "/ld-linux") && !strings.Contains(m.Path, "/ld64") {
			continue
		}
		addr, ok := dynSymbol(m.Path, "_dl_debug_state")
		if !ok {
			return
		}
		addr += m.Bias
		h := &bp{addr: addr, hook: true}
		if err := sp.mem.Read(addr, h.orig[:]); err != nil {
			t.note("process %d: reading the dynamic loader's _dl_debug_state at %#x: %v; libraries loaded by dlopen are found by the periodic check only", sp.pid, addr, err)
			return
		}
		sp.hook = h
		t.reconcile(sp, sp.hook)
		return
	}
}

// dynSymbol returns the value of the dynamic symbol name in the ELF file at
// path.
func dynSymbol(path, name string) (uint64, bool) {
	f, err := elf.Open(path)
	if err != nil {
		return 0, false
	}
	defer f.Close()
	syms, err := f.DynamicSymbols()
	if err != nil {
		return 0, false
	}
	for _, s := range syms {
		if s.Name == name && elf.ST_TYPE(s.Info) == elf.STT_FUNC {
			return s.Value, true
		}
	}
	return 0, false
}

// goMain returns the link-time address of main.main in the Go executable at
// path.
func goMain(path string) (uint64, bool) {
	f, err := elf.Open(path)
	if err != nil {
		return 0, false
	}
	defer f.Close()
	if f.Section(".go.buildinfo") == nil {
		return 0, false
	}
	syms, err := f.Symbols()
	if err != nil {
		return 0, false
	}
	for _, s := range syms {
		if s.Name == "main.main" && elf.ST_TYPE(s.Info) == elf.STT_FUNC {
			return s.Value, true
		}
	}
	return 0, false
}
