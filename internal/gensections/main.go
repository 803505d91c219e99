// Command gensections generates the restartable-section tables of package
// rseq from its assembly.
//
// For each architecture (amd64 and arm64) it reads the markers in
// ops_linux_GOARCH.s ("// rseq:start NAME", "rseq:commit", "rseq:abort",
// "rseq:exit" comments on instruction lines), assembles the file with
// `go tool asm -S` for that architecture, measures where each marked
// instruction lands, and writes:
//
//	sections_names.go                section numbers and names (all platforms;
//	                                 every architecture must mark the same
//	                                 sections in the same order)
//	sections_GOARCH.h                DESC_name and ABORTS_name for the assembly
//	sections_linux_GOARCH.s          __rseq_cs descriptors, __rseq_cs_ptr_array,
//	                                 __rseq_exit_point_array, the function table
//	sections_layout_linux_GOARCH.go  offsets, the instruction bytes and the
//	                                 signature that the package verifies at
//	                                 start-up
//
// The offsets are those of the toolchain that runs gensections; the
// package's test regenerates the files with the toolchain under test and
// fails if they differ, so every supported Go release is checked.
//
// Run it from the package directory (go generate does): go run ./internal/gensections
// With -out DIR it writes the files there instead, which the package's test
// uses to check that the committed files are up to date.
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"go/format"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

const pkgPath = "github.com/gorseq/rseq"

// section is what the markers and the listing say about one section.
type section struct {
	name, fn                 string
	startLine, commitLine    int
	abortLine                int
	exitLines                []int
	start, postCommit, abort int // offsets in fn
	commitEnd                int
	exits                    []int
	startBytes, commitBytes  []byte
}

var markerRE = regexp.MustCompile(`//\s*rseq:(start|commit|abort|exit)\s+(\w+)\s*$`)
var textRE = regexp.MustCompile(`^TEXT\s+·(\w+)\(SB\)`)

// arch is what differs between the architectures gensections handles.
type arch struct {
	name      string
	signature []byte // the abort signature as it lies in memory
	insnSize  int    // fixed instruction size, or 0 for variable-length code
	// tableAddrs is the body of the generated tableAddrs function.
	tableAddrs string
}

var arches = map[string]arch{
	"amd64": {
		name:      "amd64",
		signature: []byte{0x0f, 0xb9, 0x3d, 0x53, 0x30, 0x05, 0x53},
		tableAddrs: `	LEAQ	·__rseq_cs(SB), AX
	MOVQ	AX, cs+0(FP)
	LEAQ	·__rseq_cs_ptr_array(SB), AX
	MOVQ	AX, ptrs+8(FP)
	LEAQ	·__rseq_exit_point_array(SB), AX
	MOVQ	AX, exits+16(FP)
	LEAQ	·sectionFuncs(SB), AX
	MOVQ	AX, funcs+24(FP)
	RET
`,
	},
	"arm64": {
		name:      "arm64",
		signature: []byte{0x00, 0xbc, 0x28, 0xd4},
		insnSize:  4,
		tableAddrs: `	MOVD	$·__rseq_cs(SB), R0
	MOVD	R0, cs+0(FP)
	MOVD	$·__rseq_cs_ptr_array(SB), R0
	MOVD	R0, ptrs+8(FP)
	MOVD	$·__rseq_exit_point_array(SB), R0
	MOVD	R0, exits+16(FP)
	MOVD	$·sectionFuncs(SB), R0
	MOVD	R0, funcs+24(FP)
	RET
`,
	},
}

func main() {
	log.SetFlags(0)
	log.SetPrefix("gensections: ")
	archList := flag.String("arch", "amd64,arm64", "architectures to generate for, comma-separated")
	out := flag.String("out", ".", "directory to write the generated files to")
	flag.Parse()

	var names []*section
	var first string
	for _, an := range strings.Split(*archList, ",") {
		a, ok := arches[an]
		if !ok {
			log.Fatalf("unknown architecture %q", an)
		}
		src := "ops_linux_" + a.name + ".s"
		secs, err := readMarkers(src)
		if err != nil {
			log.Fatal(err)
		}
		if names == nil {
			names, first = secs, src
		} else if err := sameSections(first, names, src, secs); err != nil {
			log.Fatal(err)
		}
		if err := writeFile(*out, "sections_"+a.name+".h", headerH(a, secs), false); err != nil {
			log.Fatal(err)
		}
		// The assembler must see the header just written, next to the source.
		listing, err := assemble(a, src, *out)
		if err != nil {
			log.Fatal(err)
		}
		if err := measure(a, secs, listing, src); err != nil {
			log.Fatal(err)
		}
		if err := writeFile(*out, "sections_linux_"+a.name+".s", tablesS(a, secs), false); err != nil {
			log.Fatal(err)
		}
		if err := writeFile(*out, "sections_layout_linux_"+a.name+".go", layoutGo(a, secs), true); err != nil {
			log.Fatal(err)
		}
	}
	if err := writeFile(*out, "sections_names.go", namesGo(names), true); err != nil {
		log.Fatal(err)
	}
}

// sameSections checks that two architectures' sources mark the same
// sections, in the same order and the same functions: the section numbers
// and names are shared.
func sameSections(srcA string, a []*section, srcB string, b []*section) error {
	if len(a) != len(b) {
		return fmt.Errorf("%s marks %d sections, %s %d: every architecture must have the same sections", srcA, len(a), srcB, len(b))
	}
	for i := range a {
		if a[i].name != b[i].name || a[i].fn != b[i].fn {
			return fmt.Errorf("section %d is %s in %s (TEXT %s) but %s in %s (TEXT %s)", i, a[i].name, srcA, a[i].fn, b[i].name, srcB, b[i].fn)
		}
	}
	return nil
}

func readMarkers(path string) ([]*section, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var secs []*section
	byName := map[string]*section{}
	fn := ""
	for i, line := range strings.Split(string(data), "\n") {
		ln := i + 1
		if m := textRE.FindStringSubmatch(line); m != nil {
			fn = m[1]
			continue
		}
		m := markerRE.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		kind, name := m[1], m[2]
		s := byName[name]
		if s == nil {
			if kind != "start" {
				return nil, fmt.Errorf("%s:%d: %s marker of section %s before its start", path, ln, kind, name)
			}
			s = &section{name: name, fn: fn}
			byName[name] = s
			secs = append(secs, s)
		}
		if s.fn != fn {
			return nil, fmt.Errorf("%s:%d: section %s spans TEXT symbols %s and %s", path, ln, name, s.fn, fn)
		}
		switch kind {
		case "start":
			if s.startLine != 0 {
				return nil, fmt.Errorf("%s:%d: section %s has two starts", path, ln, name)
			}
			s.startLine = ln
		case "commit":
			s.commitLine = ln
		case "abort":
			s.abortLine = ln
		case "exit":
			s.exitLines = append(s.exitLines, ln)
		}
	}
	for _, s := range secs {
		if s.commitLine == 0 || s.abortLine == 0 {
			return nil, fmt.Errorf("section %s lacks a commit or abort marker", s.name)
		}
	}
	if len(secs) == 0 {
		return nil, fmt.Errorf("%s: no sections marked", path)
	}
	return secs, nil
}

// insn is one instruction of the listing.
type insn struct {
	pc   int
	line int
}

type symbol struct {
	insns []insn
	code  []byte
	size  int
}

var (
	symRE  = regexp.MustCompile(`^(\S+) STEXT .*size=(\d+)`)
	insnRE = regexp.MustCompile(`^\t0x([0-9a-f]+) \d{5} \((.*):(\d+)\)\t(\S+)`)
	hexRE  = regexp.MustCompile(`^\t0x([0-9a-f]+) ((?:[0-9a-f]{2} )+)`)
)

func assemble(a arch, src, incDir string) (map[string]*symbol, error) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		return nil, err
	}
	goroot, err := exec.Command(goTool, "env", "GOROOT").Output()
	if err != nil {
		return nil, fmt.Errorf("go env GOROOT: %v", err)
	}
	tmp, err := os.MkdirTemp("", "gensections")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	args := []string{"tool", "asm", "-S", "-p", pkgPath,
		"-I", incDir, "-I", filepath.Dir(src), "-I", filepath.Join(strings.TrimSpace(string(goroot)), "pkg", "include"),
		"-D", "GOOS_linux", "-D", "GOARCH_" + a.name, "-o", filepath.Join(tmp, "ops.o"), src}
	cmd := exec.Command(goTool, args...)
	cmd.Env = append(os.Environ(), "GOOS=linux", "GOARCH="+a.name)
	outb, err := cmd.CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, outb)
	}
	syms := map[string]*symbol{}
	var cur *symbol
	sc := bufio.NewScanner(bytes.NewReader(outb))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if m := symRE.FindStringSubmatch(line); m != nil {
			name := strings.TrimPrefix(m[1], pkgPath+".")
			size, _ := strconv.Atoi(m[2])
			cur = &symbol{size: size}
			syms[name] = cur
			continue
		}
		if !strings.HasPrefix(line, "\t") {
			cur = nil
			continue
		}
		if cur == nil {
			continue
		}
		if m := insnRE.FindStringSubmatch(line); m != nil {
			pc, _ := strconv.ParseInt(m[1], 16, 64)
			ln, _ := strconv.Atoi(m[3])
			switch m[4] {
			case "TEXT", "FUNCDATA", "PCDATA", "NOP":
				continue
			}
			cur.insns = append(cur.insns, insn{pc: int(pc), line: ln})
			continue
		}
		if m := hexRE.FindStringSubmatch(line); m != nil {
			for _, h := range strings.Fields(m[2]) {
				b, _ := strconv.ParseUint(h, 16, 8)
				cur.code = append(cur.code, byte(b))
			}
		}
	}
	return syms, nil
}

// at returns the pc of the instruction from source line ln and the pc of the
// next instruction (the symbol's size after the last one). A line may hold
// a prefix and its instruction ("SEG_FS; MOVL (R8), CX" on amd64, which the
// listing shows as a BYTE and a MOVL): they count as one instruction.
func (s *symbol) at(ln int) (pc, next int, ok bool) {
	for i, in := range s.insns {
		if in.line != ln {
			continue
		}
		next = s.size
		for _, later := range s.insns[i+1:] {
			if later.pc > in.pc && later.line != ln {
				next = later.pc
				break
			}
		}
		return in.pc, next, true
	}
	return 0, 0, false
}

func measure(a arch, secs []*section, syms map[string]*symbol, src string) error {
	signature := a.signature
	for _, s := range secs {
		sym := syms[s.fn]
		if sym == nil {
			return fmt.Errorf("no TEXT symbol %s in the listing", s.fn)
		}
		if len(sym.code) != sym.size {
			return fmt.Errorf("%s: listing has %d code bytes for size %d", s.fn, len(sym.code), sym.size)
		}
		var ok bool
		var startNext, commitPC, abortNext int
		if s.start, startNext, ok = sym.at(s.startLine); !ok {
			return fmt.Errorf("%s:%d: start of %s not in the listing", src, s.startLine, s.name)
		}
		if commitPC, s.commitEnd, ok = sym.at(s.commitLine); !ok {
			return fmt.Errorf("%s:%d: commit of %s not in the listing", src, s.commitLine, s.name)
		}
		if s.abort, abortNext, ok = sym.at(s.abortLine); !ok {
			return fmt.Errorf("%s:%d: abort of %s not in the listing", src, s.abortLine, s.name)
		}
		_ = abortNext
		s.postCommit = s.commitEnd - s.start
		s.startBytes = sym.code[s.start:startNext]
		s.commitBytes = sym.code[commitPC:s.commitEnd]
		if s.postCommit <= 0 {
			return fmt.Errorf("section %s: commit before start", s.name)
		}
		if s.abort >= s.start && s.abort < s.commitEnd {
			return fmt.Errorf("section %s: abort handler inside the section", s.name)
		}
		if a.insnSize != 0 && (s.start%a.insnSize != 0 || len(s.commitBytes) != a.insnSize || s.abort%a.insnSize != 0) {
			return fmt.Errorf("section %s: instructions not %d-byte words", s.name, a.insnSize)
		}
		if s.abort < len(signature) || !bytes.Equal(sym.code[s.abort-len(signature):s.abort], signature) {
			return fmt.Errorf("section %s: no signature right before the abort handler", s.name)
		}
		for _, ln := range s.exitLines {
			pc, _, ok := sym.at(ln)
			if !ok {
				return fmt.Errorf("%s:%d: exit of %s not in the listing", src, ln, s.name)
			}
			s.exits = append(s.exits, pc)
		}
	}
	return nil
}

func header(a arch) string {
	return "Code generated by internal/gensections from ops_linux_" + a.name + ".s; DO NOT EDIT."
}

func namesGo(secs []*section) []byte {
	var b bytes.Buffer
	b.WriteString("// Code generated by internal/gensections from ops_linux_*.s; DO NOT EDIT.\n\npackage rseq\n\n")
	b.WriteString("// Section numbers, in the order of the sections in ops_linux_GOARCH.s (the\n// same on every architecture).\nconst (\n")
	for i, s := range secs {
		if i == 0 {
			fmt.Fprintf(&b, "\tsec%s = iota\n", exported(s.name))
		} else {
			fmt.Fprintf(&b, "\tsec%s\n", exported(s.name))
		}
	}
	b.WriteString("\tnumSections\n)\n\n// sectionNames names the sections, indexed by section number.\nvar sectionNames = [numSections]string{\n")
	for _, s := range secs {
		fmt.Fprintf(&b, "\t%q,\n", s.name)
	}
	b.WriteString("}\n")
	return b.Bytes()
}

func exported(name string) string { return strings.ToUpper(name[:1]) + name[1:] }

func headerH(a arch, secs []*section) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "// %s\n\n", header(a))
	b.WriteString("// DESC_name is the section's struct rseq_cs; ABORTS_name its abort counter.\n")
	for i, s := range secs {
		fmt.Fprintf(&b, "#define DESC_%s ·__rseq_cs+%d(SB)\n", s.name, 32*i)
		fmt.Fprintf(&b, "#define ABORTS_%s ·abortCounts+%d(SB)\n", s.name, 8*i)
	}
	return b.Bytes()
}

func tablesS(a arch, secs []*section) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "// %s\n\n#include \"textflag.h\"\n\n", header(a))
	b.WriteString(`// __rseq_cs holds one struct rseq_cs per section (32 bytes, 32-byte aligned):
// u32 version, u32 flags, u64 start_ip, u64 post_commit_offset, u64 abort_ip.
// Tools outside the process find it, __rseq_cs_ptr_array and
// __rseq_exit_point_array by these symbol names (see the README).
`)
	for i, s := range secs {
		o := 32 * i
		fmt.Fprintf(&b, "// %s\n", s.name)
		fmt.Fprintf(&b, "DATA ·__rseq_cs+%d(SB)/4, $0\n", o)
		fmt.Fprintf(&b, "DATA ·__rseq_cs+%d(SB)/4, $0\n", o+4)
		fmt.Fprintf(&b, "DATA ·__rseq_cs+%d(SB)/8, $·%s+%d(SB)\n", o+8, s.fn, s.start)
		fmt.Fprintf(&b, "DATA ·__rseq_cs+%d(SB)/8, $%d\n", o+16, s.postCommit)
		fmt.Fprintf(&b, "DATA ·__rseq_cs+%d(SB)/8, $·%s+%d(SB)\n", o+24, s.fn, s.abort)
	}
	fmt.Fprintf(&b, "GLOBL ·__rseq_cs(SB), RODATA|NOPTR, $%d\n\n", 32*len(secs))
	b.WriteString("// __rseq_cs_ptr_array: one u64 pointer per descriptor.\n")
	for i := range secs {
		fmt.Fprintf(&b, "DATA ·__rseq_cs_ptr_array+%d(SB)/8, $·__rseq_cs+%d(SB)\n", 8*i, 32*i)
	}
	fmt.Fprintf(&b, "GLOBL ·__rseq_cs_ptr_array(SB), RODATA|NOPTR, $%d\n\n", 8*len(secs))
	b.WriteString("// __rseq_exit_point_array: {u64 start_ip, u64 exit_ip} for every exit other\n// than the abort and the fall-through after the commit.\n")
	n := 0
	for _, s := range secs {
		for _, e := range s.exits {
			fmt.Fprintf(&b, "DATA ·__rseq_exit_point_array+%d(SB)/8, $·%s+%d(SB)\n", 16*n, s.fn, s.start)
			fmt.Fprintf(&b, "DATA ·__rseq_exit_point_array+%d(SB)/8, $·%s+%d(SB)\n", 16*n+8, s.fn, e)
			n++
		}
	}
	fmt.Fprintf(&b, "GLOBL ·__rseq_exit_point_array(SB), RODATA|NOPTR, $%d\n\n", 16*n)
	b.WriteString("// sectionFuncs: the entry address of each section's function.\n")
	for i, s := range secs {
		fmt.Fprintf(&b, "DATA ·sectionFuncs+%d(SB)/8, $·%s(SB)\n", 8*i, s.fn)
	}
	fmt.Fprintf(&b, "GLOBL ·sectionFuncs(SB), RODATA|NOPTR, $%d\n\n", 8*len(secs))
	b.WriteString(`// func tableAddrs() (cs, ptrs, exits, funcs uintptr)
// Returns the addresses of the tables above; referring to them here also
// keeps the linker from discarding the ones no code reads.
TEXT ·tableAddrs(SB), NOSPLIT, $0-32
`)
	b.WriteString(a.tableAddrs)
	return b.Bytes()
}

func layoutGo(a arch, secs []*section) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "// %s\n\n//go:build linux && %s\n\npackage rseq\n\n", header(a), a.name)
	fmt.Fprintf(&b, "// signatureBytes is the abort signature as it lies before every abort handler.\nvar signatureBytes = %s\n\n", byteList(a.signature))
	n := 0
	for _, s := range secs {
		n += len(s.exits)
	}
	fmt.Fprintf(&b, "// numExitPoints is the number of entries of __rseq_exit_point_array.\nconst numExitPoints = %d\n\n", n)
	b.WriteString("// sectionLayouts says where each section's parts lie in its function, and\n// the bytes of its first and commit instructions, as assembled.\nvar sectionLayouts = [numSections]sectionLayout{\n")
	for _, s := range secs {
		fmt.Fprintf(&b, "\t{fn: %q, start: %d, postCommit: %d, abort: %d, exits: %s, startBytes: %s, commitBytes: %s},\n",
			s.fn, s.start, s.postCommit, s.abort, intList(s.exits), byteList(s.startBytes), byteList(s.commitBytes))
	}
	b.WriteString("}\n")
	return b.Bytes()
}

func intList(v []int) string {
	if len(v) == 0 {
		return "nil"
	}
	parts := make([]string, len(v))
	for i, x := range v {
		parts[i] = strconv.Itoa(x)
	}
	return "[]uintptr{" + strings.Join(parts, ", ") + "}"
}

func byteList(v []byte) string {
	parts := make([]string, len(v))
	for i, x := range v {
		parts[i] = fmt.Sprintf("0x%02x", x)
	}
	return "[]byte{" + strings.Join(parts, ", ") + "}"
}

func writeFile(dir, name string, data []byte, isGo bool) error {
	if isGo {
		f, err := format.Source(data)
		if err != nil {
			return fmt.Errorf("formatting %s: %v", name, err)
		}
		data = f
	}
	return os.WriteFile(filepath.Join(dir, name), data, 0o644)
}
