package scan

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
)

func td(name string) string { return filepath.Join("testdata", name) }

// symbolsOf returns the symbols of a file, read independently of the
// scanner, for cross-checking addresses.
func symbolsOf(t *testing.T, path string) map[string]uint64 {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	syms, err := f.Symbols()
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]uint64{}
	for _, s := range syms {
		m[s.Name] = s.Value
	}
	return m
}

// want describes one expected section of a valid test binary.
type want struct {
	fn       string // function holding the section
	startOff uint64 // start_ip - function
	length   uint64
	abortOff uint64 // abort_ip - function
	exits    int
}

func TestValidBinaries(t *testing.T) {
	x86 := []want{{"rs_add", 0xb, 11, 0x20, 0}, {"rs_cas", 0xb, 12, 0x27, 1}, {"rs_sum", 0xb, 25, 0x2c, 0}}
	arm := []want{{"rs_add", 0xc, 28, 0x30, 0}, {"rs_cas", 0xc, 16, 0x30, 1}}
	i386 := []want{{"rs_add", 8, 7, 0x17, 0}, {"rs_cas", 0xc, 6, 0x22, 1}}
	s390 := []want{{"rs_add", 0, 28, 0x22, 0}, {"rs_cas", 0, 16, 0x20, 1}}
	tests := []struct {
		file    string
		machine string
		class   int
		be      bool
		sig     uint32
		via     string
		want    []want
		insns   bool
	}{
		{"good_x86_64", "x86-64", 64, false, 0x53053053, secCS, x86, true},
		{"good_x86_64_nopie", "x86-64", 64, false, 0x53053053, secCS, x86, true},
		{"good_aarch64", "aarch64", 64, false, 0xd428bc00, secCS, arm, true},
		{"good_aarch64.so", "aarch64", 64, false, 0xd428bc00, secCS, arm, true},
		{"good_aarch64_be", "aarch64", 64, true, 0x00bc28d4, secCS, arm, true},
		{"good_i386", "i386", 32, false, 0x53053053, secCS, i386, true},
		{"good_i386.so", "i386", 32, false, 0x53053053, secCS, i386, true},
		{"good_s390x", "s390x", 64, true, 0xb2ff0fff, secCS, s390, false},
		{"good_s390x.so", "s390x", 64, true, 0xb2ff0fff, secCS, s390, false},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			path := td(tc.file)
			obj, err := ScanFile(path, Options{Disassemble: true})
			if err != nil {
				t.Fatal(err)
			}
			if obj.Machine != tc.machine || obj.Class != tc.class || obj.BigEndian != tc.be || obj.Bias != 0 {
				t.Errorf("object = %s/%d/be=%v/bias %#x, want %s/%d/be=%v/bias 0", obj.Machine, obj.Class, obj.BigEndian, obj.Bias, tc.machine, tc.class, tc.be)
			}
			for _, f := range obj.Findings {
				t.Errorf("unexpected finding: %+v", f)
			}
			syms := symbolsOf(t, path)
			if len(obj.Sections) != len(tc.want) {
				t.Fatalf("found %d sections, want %d: %+v", len(obj.Sections), len(tc.want), obj.Sections)
			}
			for i, w := range tc.want {
				s := obj.Sections[i]
				fn, ok := syms[w.fn]
				if !ok {
					t.Fatalf("no symbol %s", w.fn)
				}
				wantSym := w.fn
				if w.startOff != 0 {
					wantSym = fmt.Sprintf("%s+%#x", w.fn, w.startOff)
				}
				if s.Start != fn+w.startOff || s.PostCommitOffset != w.length || s.Abort != fn+w.abortOff || s.Symbol != wantSym {
					t.Errorf("section %d = %s start %#x len %d abort %#x, want %s start %#x len %d abort %#x",
						i, s.Symbol, s.Start, s.PostCommitOffset, s.Abort, wantSym, fn+w.startOff, w.length, fn+w.abortOff)
				}
				if s.Signature != tc.sig || !s.SignatureOK || s.Via != tc.via || len(s.Exits) != w.exits || s.Descriptor%32 != 0 {
					t.Errorf("section %d: signature %#x ok=%v via %s exits %v descriptor %#x", i, s.Signature, s.SignatureOK, s.Via, s.Exits, s.Descriptor)
				}
				if tc.insns {
					n := 0
					for _, in := range s.Instructions {
						n += in.Len
					}
					if uint64(n) != s.PostCommitOffset || len(s.Instructions) == 0 {
						t.Errorf("section %d: instructions cover %d bytes of %d", i, n, s.PostCommitOffset)
					}
				} else if len(s.Instructions) != 0 {
					t.Errorf("section %d: %d instructions decoded for a machine without a decoder", i, len(s.Instructions))
				}
				if got, ok := FindSection([]*Object{obj}, s.Start+s.PostCommitOffset-1); !ok || got.Start != s.Start {
					t.Errorf("FindSection(last byte of section %d) = %v, %v", i, got, ok)
				}
				if _, ok := FindSection([]*Object{obj}, s.Start+s.PostCommitOffset); ok && i == len(tc.want)-1 {
					t.Errorf("FindSection(post-commit address) found a section")
				}
			}
		})
	}
}

// finding is a (function, rule) pair: the function whose section a
// finding names, "" for the object.
type finding struct{ fn, rule string }

func findingsOf(obj *Object) []finding {
	var out []finding
	for _, f := range obj.Findings {
		fn := ""
		if f.Section >= 0 {
			fn = obj.Sections[f.Section].Symbol
			if i := strings.IndexByte(fn, '+'); i >= 0 {
				fn = fn[:i]
			}
			if fn == "" {
				fn = fmt.Sprintf("%#x", obj.Sections[f.Section].Start)
			}
		}
		out = append(out, finding{fn, f.Rule})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].fn != out[j].fn {
			return out[i].fn < out[j].fn
		}
		return out[i].rule < out[j].rule
	})
	return out
}

func TestBrokenBinaries(t *testing.T) {
	tests := []struct {
		file string
		want []finding
	}{
		{"bad_x86_64", []finding{
			{"", "outside-segment"}, // the pointer to 0x70000000
			{"0x10", "outside-segment"},
			{"bad_abort_inside", "abort-inside"},
			{"bad_call", "call"},
			{"bad_commit_not_last", "commit-not-last"},
			{"bad_empty", "empty-range"},
			{"bad_indirect", "indirect-branch"},
			{"bad_misaligned", "misaligned"},
			{"bad_mixed", "mixed-signatures"},
			{"bad_signature", "bad-signature"},
			{"bad_store_before", "store-before-commit"},
			{"bad_syscall", "syscall"},
			{"bad_unlisted_exit", "unlisted-exit"},
			{"bad_unlisted_ptr", "ptr-mismatch"},
			{"bad_version", "version-flags"},
		}},
		{"bad_aarch64", []finding{
			{"bad_call", "call"},
			{"bad_commit_not_last", "commit-not-last"},
			{"bad_indirect", "indirect-branch"},
			{"bad_signature", "bad-signature"},
			{"bad_store_before", "store-before-commit"},
			{"bad_syscall", "syscall"},
			{"bad_unlisted_exit", "unlisted-exit"},
		}},
		{"bad_i386", []finding{
			{"bad_empty", "empty-range"},
			{"bad_signature", "bad-signature"},
			{"bad_syscall", "syscall"},
			{"bad_unlisted_exit", "unlisted-exit"},
		}},
		{"bad_s390x", []finding{
			{"bad_flags", "version-flags"},
			{"bad_signature", "bad-signature"},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			obj, err := ScanFile(td(tc.file), Options{Disassemble: true})
			if err != nil {
				t.Fatal(err)
			}
			got := findingsOf(obj)
			if !slices.Equal(got, tc.want) {
				t.Errorf("findings:\n got %v\nwant %v", got, tc.want)
				for _, f := range obj.Findings {
					t.Logf("%v %s %d: %s", f.Severity, f.Rule, f.Section, f.Message)
				}
			}
			for _, f := range obj.Findings {
				if f.Message == "" || f.Severity.String() == "" {
					t.Errorf("finding without message: %+v", f)
				}
			}
		})
	}
}

func TestBrokenSeverities(t *testing.T) {
	obj, err := ScanFile(td("bad_x86_64"), Options{Disassemble: true})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]Severity{
		"outside-segment": Error, "abort-inside": Error, "call": Error, "commit-not-last": Warning,
		"empty-range": Error, "indirect-branch": Warning, "misaligned": Warning, "mixed-signatures": Error,
		"bad-signature": Error, "store-before-commit": Info, "syscall": Error, "unlisted-exit": Warning,
		"ptr-mismatch": Warning, "version-flags": Error,
	}
	for _, f := range obj.Findings {
		if w, ok := want[f.Rule]; !ok || w != f.Severity {
			t.Errorf("%s: severity %v, want %v", f.Rule, f.Severity, w)
		}
	}
	if max, any := obj.MaxSeverity(); !any || max != Error {
		t.Errorf("MaxSeverity = %v, %v", max, any)
	}
}

func TestWithoutDisassembly(t *testing.T) {
	obj, err := ScanFile(td("bad_x86_64"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	insnRules := []string{"syscall", "call", "indirect-branch", "commit-not-last", "store-before-commit", "unlisted-exit"}
	n := 0
	for _, f := range obj.Findings {
		if slices.Contains(insnRules, f.Rule) {
			t.Errorf("instruction rule %s applied without Disassemble", f.Rule)
		}
		n++
	}
	if n != 9 {
		t.Errorf("%d findings without disassembly, want 9", n)
	}
	for _, s := range obj.Sections {
		if len(s.Instructions) != 0 {
			t.Errorf("instructions decoded without Disassemble")
		}
	}
}

func TestSeverity(t *testing.T) {
	for _, s := range []Severity{Info, Warning, Error} {
		got, err := ParseSeverity(strings.ToUpper(s.String()))
		if err != nil || got != s {
			t.Errorf("ParseSeverity(%q) = %v, %v", s, got, err)
		}
		b, _ := s.MarshalText()
		var back Severity
		if err := back.UnmarshalText(b); err != nil || back != s {
			t.Errorf("round trip of %v: %v, %v", s, back, err)
		}
	}
	if _, err := ParseSeverity("fatal"); err == nil || !strings.Contains(err.Error(), "fatal") {
		t.Errorf("ParseSeverity(fatal) error = %v", err)
	}
	if Info >= Warning || Warning >= Error {
		t.Error("severities out of order")
	}
}

func TestBadInput(t *testing.T) {
	good, err := os.ReadFile(td("good_x86_64"))
	if err != nil {
		t.Fatal(err)
	}
	check := func(name string, data []byte, wantErr string) {
		t.Helper()
		_, err := Scan(bytes.NewReader(data), int64(len(data)), name, Options{Disassemble: true})
		if err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Errorf("%s: error %v, want one containing %q", name, err, wantErr)
		}
	}
	check("empty", nil, "not an ELF file")
	check("text", []byte("#!/bin/sh\necho hello, world\n"), "not an ELF file")
	check("truncated-header", good[:40], "malformed ELF")
	if _, err := Scan(bytes.NewReader([]byte("hello")), 5, "x", Options{}); !errors.Is(err, ErrNotELF) {
		t.Errorf("non-ELF error %v does not wrap ErrNotELF", err)
	}
	// A relocatable object.
	rel := append([]byte{}, good...)
	rel[16] = byte(elf.ET_REL)
	check("relocatable", rel, "only executables and shared libraries")
	// A PT_LOAD that claims more file than there is.
	big := (&elfSpec{segs: []segSpec{{vaddr: 0x400000, data: []byte{1, 2, 3}, exec: true}}}).bytes()
	binary.LittleEndian.PutUint64(big[64+32:], 1<<40) // p_filesz
	binary.LittleEndian.PutUint64(big[64+40:], 1<<40) // p_memsz
	check("segment-past-eof", big, "outside the")
	// Every truncation of a real binary gives an error or a result, never
	// a panic; an error names what was being read, and where.
	for n := 0; n < len(good); n += 97 {
		_, err := Scan(bytes.NewReader(good[:n]), int64(n), "truncated", Options{Disassemble: true})
		if err != nil && !errors.Is(err, ErrNotELF) && !strings.Contains(err.Error(), "offset") && !strings.Contains(err.Error(), "header needs") {
			t.Errorf("truncated to %d bytes: error %q names no offset", n, err)
		}
	}
	check("truncated-header", good[:40], "the 64-bit ELF header needs 64 bytes, the file has 40")
	shoff := binary.LittleEndian.Uint64(good[40:])
	check("truncated-section-headers", good[:shoff+100], fmt.Sprintf("the section header table (33 entries of 64 bytes at offset %#x) ends at %#x, past the end of the %d-byte file", shoff, shoff+33*64, shoff+100))
	check("truncated-program-headers", good[:100], "the program header table (12 entries of 56 bytes at offset 0x40) ends at 0x2e0, past the end of the 100-byte file")
	// A section name table that lies past the end of the file.
	shstr := append([]byte{}, good...)
	ndx := uint64(binary.LittleEndian.Uint16(good[62:]))
	binary.LittleEndian.PutUint64(shstr[shoff+ndx*64+24:], uint64(len(good))-4) // sh_offset
	check("shstrtab-past-eof", shstr, fmt.Sprintf("the section name table (section %d) (", ndx))
	if _, err := ScanFile(td("src"), Options{}); err == nil || !strings.Contains(err.Error(), "not a regular file (a directory)") {
		t.Errorf("directory: %v", err)
	}
	if _, err := ScanFile(td("no-such-file"), Options{}); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

// TestAbsurdTable: a __rseq_cs section header claiming an exabyte fails
// cleanly instead of allocating.
func TestAbsurdTable(t *testing.T) {
	spec := manySections(4, false)
	for i := range spec.secs {
		if spec.secs[i].name == secCS {
			spec.secs[i].size = 1 << 60
		}
		if spec.secs[i].name == secPtrs {
			spec.secs[i].size = 1<<62 + 8
		}
	}
	data := spec.bytes()
	obj, err := Scan(bytes.NewReader(data), int64(len(data)), "absurd", Options{Disassemble: true})
	if err != nil {
		t.Fatal(err)
	}
	got := findingsOf(obj)
	want := []finding{{"", "bad-table"}, {"", "bad-table"}, {"", "orphan-exit"}, {"", "orphan-exit"}, {"", "orphan-exit"}, {"", "orphan-exit"}}
	if !slices.Equal(got, want) {
		t.Errorf("findings %v, want %v", got, want)
	}
	if len(obj.Sections) != 0 {
		t.Errorf("%d sections from unreadable tables", len(obj.Sections))
	}
}

func TestSyntheticManySections(t *testing.T) {
	for _, goStyle := range []bool{false, true} {
		data := manySections(300, goStyle).bytes()
		obj, err := Scan(bytes.NewReader(data), int64(len(data)), "many", Options{Disassemble: true})
		if err != nil {
			t.Fatal(err)
		}
		if len(obj.Sections) != 300 || len(obj.Findings) != 0 {
			t.Fatalf("go=%v: %d sections, findings %v", goStyle, len(obj.Sections), obj.Findings)
		}
		wantVia := secCS
		if goStyle {
			wantVia = viaGo
		}
		for i, s := range obj.Sections {
			if s.Via != wantVia || s.Symbol != "fn"+itoa(i) || s.Start != 0x401000+16*uint64(i) || len(s.Exits) != 1 || len(s.Instructions) != 1 {
				t.Fatalf("section %d = %+v", i, s)
			}
		}
	}
}

// TestGoSymbolsMismatch: a Go-style table whose pointer array omits one
// descriptor and whose exit table names an unknown section.
func TestGoSymbolsMismatch(t *testing.T) {
	spec := manySections(3, true)
	for i := range spec.syms {
		if strings.HasSuffix(spec.syms[i].name, secPtrs) {
			spec.syms[i].size -= 8 // drop the last pointer
		}
		if strings.HasSuffix(spec.syms[i].name, secExits) {
			// Point the exit table at the pointer array: the pair
			// {&desc0, &desc1} names no section.
			spec.syms[i].value, spec.syms[i].size = 0x600000+3*32, 16
		}
	}
	data := spec.bytes()
	obj, err := Scan(bytes.NewReader(data), int64(len(data)), "go", Options{Disassemble: true})
	if err != nil {
		t.Fatal(err)
	}
	got := findingsOf(obj)
	want := []finding{{"", "orphan-exit"}, {"fn2", "ptr-mismatch"}}
	if !slices.Equal(got, want) {
		t.Errorf("findings %v, want %v", got, want)
		for _, f := range obj.Findings {
			t.Log(f.Message)
		}
	}
	if !strings.Contains(obj.Findings[len(obj.Findings)-1].Message, "example.com/fake.__rseq_cs_ptr_array") {
		t.Errorf("message does not name the Go pointer array: %s", obj.Findings[len(obj.Findings)-1].Message)
	}
}

// TestBigEndian32: a synthetic 32-bit big-endian (powerpc) object with
// descriptors written as ".long 0, x" pairs.
func TestBigEndian32(t *testing.T) {
	be := []byte{}
	put := func(v uint32) { be = append(be, byte(v>>24), byte(v>>16), byte(v>>8), byte(v)) }
	const text, data = 0x10000000, 0x10010000
	// code: 4 bytes store, 4 bytes signature, abort.
	code := []byte{0x90, 0x64, 0x00, 0x00, 0x0f, 0xe5, 0x00, 0x0b, 0x4e, 0x80, 0x00, 0x20}
	put(0)
	put(0)
	for _, v := range []uint32{text, 4, text + 8} {
		put(0)
		put(v)
	}
	ptrs := []byte{0, 0, 0, 0, 0x10, 0x01, 0x00, 0x00}
	spec := &elfSpec{class: elf.ELFCLASS32, be: true, machine: elf.EM_PPC,
		segs: []segSpec{{vaddr: text, data: code, exec: true}, {vaddr: data, data: append(be, ptrs...)}},
		secs: []secSpec{{name: secCS, seg: 1, size: 32}, {name: secPtrs, seg: 1, off: 32, size: 8}}}
	b := spec.bytes()
	obj, err := Scan(bytes.NewReader(b), int64(len(b)), "ppc", Options{Disassemble: true})
	if err != nil {
		t.Fatal(err)
	}
	if obj.Class != 32 || !obj.BigEndian || obj.Machine != "ppc" || len(obj.Sections) != 1 || len(obj.Findings) != 0 {
		t.Fatalf("object %+v", obj)
	}
	s := obj.Sections[0]
	if s.Start != text || s.PostCommitOffset != 4 || s.Abort != text+8 || s.Signature != 0x0fe5000b || !s.SignatureOK {
		t.Errorf("section %+v", s)
	}
}

func TestLegacyTable(t *testing.T) {
	path := td("legacy_x86_64")
	obj, err := ScanFile(path, Options{Disassemble: true})
	if err != nil {
		t.Fatal(err)
	}
	syms := symbolsOf(t, path)
	if len(obj.Sections) != 2 {
		t.Fatalf("%d sections: %+v", len(obj.Sections), obj.Sections)
	}
	cur, proto := obj.Sections[0], obj.Sections[1]
	if cur.Via != secTable || cur.Start != syms["legacy_add"]+0xb || cur.PostCommitOffset != 7 || cur.Abort != syms["legacy_add"]+0x1a || !cur.SignatureOK {
		t.Errorf("struct rseq_cs entry %+v", cur)
	}
	if proto.Via != secTable || proto.Start != syms["proto_add"] || proto.PostCommitOffset != 7 || proto.Abort != syms["proto_add"]+0xf || !proto.SignatureOK {
		t.Errorf("pre-merge entry %+v", proto)
	}
	if got, want := findingsOf(obj), []finding{{"proto_add", "legacy-layout"}}; !slices.Equal(got, want) {
		t.Errorf("findings %v, want %v", got, want)
	}
}

// TestPointerIntoDescriptor: one __rseq_cs_ptr_array entry points 8 bytes
// into the first descriptor. The three real descriptors are all listed and
// clean but for the first one's missing pointer; the bogus one is listed too,
// judged on its own, with an error naming the descriptor it overlaps.
func TestPointerIntoDescriptor(t *testing.T) {
	spec := manySections(3, false)
	tables := spec.segs[1].data
	binary.LittleEndian.PutUint64(tables[3*32:], 0x600000+8) // ptrs[0]
	data := spec.bytes()
	obj, err := Scan(bytes.NewReader(data), int64(len(data)), "bogus", Options{Disassemble: true})
	if err != nil {
		t.Fatal(err)
	}
	var real []Section
	var bogus *Section
	bogusIdx := -1
	for i, s := range obj.Sections {
		if s.Descriptor == 0x600008 {
			bogus, bogusIdx = &obj.Sections[i], i
		} else {
			real = append(real, s)
		}
	}
	if len(real) != 3 || bogus == nil {
		t.Fatalf("sections %+v; want the 3 real ones and the one at 0x600008", obj.Sections)
	}
	for i, s := range real {
		if s.Descriptor != 0x600000+32*uint64(i) || s.Start != 0x401000+16*uint64(i) || s.Via != secCS || s.Symbol != "fn"+itoa(i) {
			t.Errorf("real section %d = %+v", i, s)
		}
	}
	if bogus.Via != secPtrs {
		t.Errorf("bogus section found via %s", bogus.Via)
	}
	var overlapMsg bool
	for _, f := range obj.Findings {
		t.Logf("%v %s %d: %s", f.Severity, f.Rule, f.Section, f.Message)
		if f.Section == bogusIdx {
			if f.Rule == "ptr-mismatch" && f.Severity == Error && strings.Contains(f.Message, "8 bytes into the descriptor at 0x600000") {
				overlapMsg = true
			}
			continue
		}
		if f.Section < 0 || obj.Sections[f.Section].Descriptor != 0x600000 || f.Rule != "ptr-mismatch" || f.Severity != Warning {
			t.Errorf("unexpected finding %v %s on section %d: %s", f.Severity, f.Rule, f.Section, f.Message)
		}
	}
	if !overlapMsg {
		t.Errorf("no ptr-mismatch error on the bogus descriptor naming the one it overlaps")
	}
	if !slices.ContainsFunc(obj.Findings, func(f Finding) bool { return f.Section == bogusIdx && f.Rule == "version-flags" }) {
		t.Errorf("the bogus descriptor was not judged by the descriptor rules")
	}
}
