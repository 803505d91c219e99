package scan

import (
	"bytes"
	"debug/elf"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkScanLarge scans a generated 100 MB executable with no rseq
// sections: a 100 MB .text (a hole in a sparse file) and 100,000 function
// symbols. Nothing but the headers and the symbol table may be read.
func BenchmarkScanLarge(b *testing.B) {
	const textSize = 100 << 20
	const nsyms = 100_000
	syms := make([]symSpec, nsyms)
	for i := range syms {
		syms[i] = symSpec{name: fmt.Sprintf("main.function%06d", i), value: 0x401000 + uint64(i)*(textSize/nsyms), size: 16, typ: elf.STT_FUNC, sec: 0}
	}
	spec := &elfSpec{
		segs: []segSpec{{vaddr: 0x401000, data: []byte{0xc3}, filesz: textSize, exec: true}, {vaddr: 0x8000000, data: make([]byte, 4096)}},
		secs: []secSpec{{name: ".text", seg: 0, size: textSize, flags: elf.SHF_ALLOC | elf.SHF_EXECINSTR}, {name: ".data", seg: 1, size: 4096, flags: elf.SHF_ALLOC | elf.SHF_WRITE}},
		syms: syms,
	}
	path := filepath.Join(b.TempDir(), "big")
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	size := spec.build(f)
	if err := f.Truncate(size); err != nil {
		b.Fatal(err)
	}
	f.Close()
	b.SetBytes(size)
	b.ResetTimer()
	for b.Loop() {
		obj, err := ScanFile(path, Options{Disassemble: true})
		if err != nil || len(obj.Sections) != 0 || len(obj.Findings) != 0 {
			b.Fatalf("%v %+v", err, obj)
		}
	}
}

// BenchmarkScanSections scans executables with n valid sections each
// (descriptors, pointers, exit points, symbols), with disassembly; the
// ns/section metric should stay flat as n grows.
func BenchmarkScanSections(b *testing.B) {
	for _, n := range []int{100, 1000, 10000} {
		for _, goStyle := range []bool{false, true} {
			name := fmt.Sprintf("n=%d/elf-sections", n)
			if goStyle {
				name = fmt.Sprintf("n=%d/go-symbols", n)
			}
			b.Run(name, func(b *testing.B) {
				data := manySections(n, goStyle).bytes()
				b.SetBytes(int64(len(data)))
				b.ResetTimer()
				for b.Loop() {
					obj, err := Scan(bytes.NewReader(data), int64(len(data)), "many", Options{Disassemble: true})
					if err != nil || len(obj.Sections) != n || len(obj.Findings) != 0 {
						b.Fatalf("%v: %d sections, %d findings", err, len(obj.Sections), len(obj.Findings))
					}
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/section")
			})
		}
	}
}
