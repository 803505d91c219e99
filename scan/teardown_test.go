package scan

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

// teardownELF returns an x86-64 executable with one section that branches
// (jne) to stub, code placed after the abort handler and a listed exit:
//
//	0x401000  jne 0x40100e          section [0x401000, 0x401005)
//	0x401002  mov %rcx,(%rsi)       the commit
//	0x401005  ud1 signature
//	0x40100c  ret                   abort_ip
//	0x40100d  ret                   the listed exit
//	0x40100e  stub...
func teardownELF(stub []byte) []byte {
	const text, data = 0x401000, 0x600000
	code := []byte{0x75, 0x0c, 0x48, 0x89, 0x0e, 0x0f, 0xb9, 0x3d, 0x53, 0x30, 0x05, 0x53, 0xc3, 0xc3}
	code = append(code, stub...)
	le := binary.LittleEndian
	tables := descriptor(le, 0, 0, text, 5, text+12)
	tables = le.AppendUint64(tables, data)                           // __rseq_cs_ptr_array
	tables = le.AppendUint64(le.AppendUint64(tables, text), text+13) // __rseq_exit_point_array
	spec := &elfSpec{
		segs: []segSpec{{vaddr: text, data: code, exec: true}, {vaddr: data, data: tables}},
		secs: []secSpec{
			{name: ".text", seg: 0, size: uint64(len(code)), flags: elf.SHF_ALLOC | elf.SHF_EXECINSTR},
			{name: secCS, seg: 1, size: 32}, {name: secPtrs, seg: 1, off: 32, size: 8}, {name: secExits, seg: 1, off: 40, size: 16},
		},
	}
	return spec.bytes()
}

// TestTeardownStub: a branch from a section to a stub that restores
// registers and jumps to a listed exit is a correct exit; stubs that do
// anything else, or end elsewhere, are not.
func TestTeardownStub(t *testing.T) {
	movLoad := []byte{0x48, 0x8b, 0x44, 0x24, 0x08}  // mov 0x8(%rsp),%rax
	movStore := []byte{0x48, 0x89, 0x44, 0x24, 0x08} // mov %rax,0x8(%rsp)
	jmp := func(from, to int) []byte { return []byte{0xeb, byte(to - (from + 2))} }
	// The stub starts at offset 14; the listed exit is at 13, abort at 12,
	// the post-commit address at 5.
	cases := []struct {
		name    string
		stub    []byte
		flagged bool
	}{
		{"restore-then-exit", append(append(append([]byte{}, movLoad...), movLoad...), jmp(24, 13)...), false},
		{"restore-then-abort", append(append([]byte{}, movLoad...), jmp(19, 12)...), false},
		{"jump-only", jmp(14, 5), false},
		{"store", append(append([]byte{}, movStore...), jmp(19, 13)...), true},
		{"unlisted-target", append(append([]byte{}, movLoad...), jmp(19, 14)...), true},
		{"conditional", append(append([]byte{}, movLoad...), 0x74, 0xf8), true}, // je 13
		{"ret", append(append([]byte{}, movLoad...), 0xc3), true},
	}
	for _, tc := range cases {
		b := teardownELF(tc.stub)
		obj, err := Scan(bytes.NewReader(b), int64(len(b)), tc.name, Options{Disassemble: true})
		if err != nil {
			t.Fatal(err)
		}
		if len(obj.Sections) != 1 {
			t.Fatalf("%s: %d sections", tc.name, len(obj.Sections))
		}
		flagged := false
		for _, f := range obj.Findings {
			if f.Rule == "unlisted-exit" {
				flagged = true
			} else {
				t.Errorf("%s: unexpected finding %v %s: %s", tc.name, f.Severity, f.Rule, f.Message)
			}
		}
		if flagged != tc.flagged {
			t.Errorf("%s: unlisted-exit reported %v, want %v", tc.name, flagged, tc.flagged)
		}
	}
}

// TestTeardownGCC builds testdata/src/teardown_x86_64.c (a section in the
// shape of librseq's memcpy operations, leaving through a teardown stub) and
// checks that it scans with no finding at or above warning, as rseq scan
// --fail-on warning requires.
func TestTeardownGCC(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skip("builds an x86-64 program")
	}
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		t.Skip("no gcc")
	}
	for _, pie := range []string{"-pie", "-no-pie"} {
		out := filepath.Join(t.TempDir(), "teardown")
		if b, err := exec.Command(gcc, "-O2", pie, "-o", out, td("src/teardown_x86_64.c")).CombinedOutput(); err != nil {
			t.Fatalf("gcc: %v\n%s", err, b)
		}
		obj, err := ScanFile(out, Options{Disassemble: true})
		if err != nil {
			t.Fatal(err)
		}
		if len(obj.Sections) != 1 || len(obj.Sections[0].Exits) != 1 {
			t.Fatalf("%s: sections %+v", pie, obj.Sections)
		}
		for _, f := range obj.Findings {
			if f.Severity >= Warning {
				t.Errorf("%s: %v %s: %s", pie, f.Severity, f.Rule, f.Message)
			}
		}
	}
}
