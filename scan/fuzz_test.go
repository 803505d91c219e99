package scan

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzScan feeds arbitrary bytes to the ELF parser and the rules: every
// input must give an error or a consistent result, never a panic, a hang
// or an allocation larger than the input.
func FuzzScan(f *testing.F) {
	entries, err := os.ReadDir("testdata")
	if err != nil {
		f.Fatal(err)
	}
	for _, e := range entries {
		if e.IsDir() || strings.HasSuffix(e.Name(), ".sh") {
			continue
		}
		b, err := os.ReadFile(filepath.Join("testdata", e.Name()))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add(manySections(4, false).bytes())
	f.Add(manySections(4, true).bytes())
	f.Add([]byte("\x7fELF"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		obj, err := Scan(bytes.NewReader(data), int64(len(data)), "fuzz", Options{Disassemble: true})
		if err != nil {
			if obj != nil || err.Error() == "" {
				t.Fatalf("error %v with object %v", err, obj)
			}
			return
		}
		for _, fd := range obj.Findings {
			if fd.Section < -1 || fd.Section >= len(obj.Sections) || fd.Rule == "" || fd.Message == "" {
				t.Fatalf("bad finding %+v (%d sections)", fd, len(obj.Sections))
			}
		}
		for _, s := range obj.Sections {
			n := 0
			for _, in := range s.Instructions {
				n += in.Len
			}
			if uint64(n) > s.PostCommitOffset {
				t.Fatalf("%d instruction bytes for a %d-byte section", n, s.PostCommitOffset)
			}
		}
	})
}

// FuzzParseMaps checks the /proc/PID/maps parser on arbitrary text.
func FuzzParseMaps(f *testing.F) {
	f.Add("55d0c0a00000-55d0c0a01000 r--p 00000000 08:01 1234   /usr/bin/prog\n7ffd1e9f0000-7ffd1e9f2000 r-xp 00000000 00:00 0   [vdso]\n")
	f.Add("1-2 r 0 0 0\n")
	f.Fuzz(func(t *testing.T, text string) {
		maps, err := parseMaps(strings.NewReader(text))
		if err != nil {
			return
		}
		for _, m := range maps {
			if m.end < m.start {
				t.Fatalf("mapping %+v ends before it starts", m)
			}
		}
	})
}
