//go:build linux && (amd64 || arm64)

package rseq

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"unsafe"
)

// TestGeneratedSectionsUpToDate regenerates the section tables and compares
// them with the committed files.
func TestGeneratedSectionsUpToDate(t *testing.T) {
	if testing.Short() && os.Getenv("GORSEQ_QEMU") != "" {
		t.Skip("no Go toolchain in the guest")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("no go tool: %v", err)
	}
	dir := t.TempDir()
	out, err := exec.Command(goTool, "run", "./internal/gensections", "-out", dir).CombinedOutput()
	if err != nil {
		t.Fatalf("gensections: %v\n%s", err, out)
	}
	files := []string{"sections_names.go"}
	for _, arch := range []string{"amd64", "arm64"} {
		files = append(files, "sections_"+arch+".h", "sections_linux_"+arch+".s", "sections_layout_linux_"+arch+".go")
	}
	for _, f := range files {
		want, _ := os.ReadFile(filepath.Join(dir, f))
		got, _ := os.ReadFile(f)
		if !bytes.Equal(got, want) {
			t.Errorf("%s is stale for %s: run go generate (with this toolchain)", f, runtime.Version())
		}
	}
}

// TestVerificationRejectsWrongCode corrupts, one at a time, each byte that
// verification relies on, and checks that verification names the section
// and that the operations then take the fallback with the same results.
func TestVerificationRejectsWrongCode(t *testing.T) {
	if !features.Operations {
		t.Skip("operations use the fallback already: " + features.OperationsReason)
	}
	if err := verifySections(readMemory); err != nil {
		t.Fatalf("verification of the real code: %v", err)
	}
	secs := Sections()
	for i, s := range secs {
		l := &sectionLayouts[i]
		for _, c := range []struct {
			what string
			addr uintptr
		}{
			{"first instruction", s.Start},
			{"commit store", s.PostCommit - 1},
			{"signature", s.Abort - 2},
			{"commit end", s.PostCommit - uintptr(len(l.commitBytes))},
		} {
			corrupt := func(addr uintptr, n int) []byte {
				b := readMemory(addr, n)
				if c.addr >= addr && c.addr < addr+uintptr(n) {
					b[c.addr-addr] ^= 0x40
				}
				return b
			}
			err := verifySections(corrupt)
			if err == nil || !strings.Contains(err.Error(), "section "+s.Name+":") {
				t.Errorf("%s of %s corrupted: verification said %v", c.what, s.Name, err)
			}
		}
	}

	// Take the fallback as start-up would, and check the results.
	f := features
	bad := func(addr uintptr, n int) []byte {
		b := readMemory(addr, n)
		if addr == secs[0].Start {
			b[0] ^= 1
		}
		return b
	}
	initOperations(&f, bad)
	defer initOperations(&f, readMemory)
	if f.Operations || opsMode != areaModeNone || !strings.Contains(f.OperationsReason, "verification failed") {
		t.Fatalf("after a failed verification: Operations=%v opsMode=%d reason %q", f.Operations, opsMode, f.OperationsReason)
	}
	before := Stats()[secAdd].Fallbacks
	slots := make([]struct {
		n int64
		_ [120]byte
	}, Slots())
	for range 1000 {
		Add(unsafe.Pointer(&slots[0]), unsafe.Sizeof(slots[0]), ByCPU, 3)
	}
	var sum int64
	for i := range slots {
		sum += slots[i].n
	}
	if sum != 3000 {
		t.Errorf("fallback sum %d, want 3000", sum)
	}
	if got := Stats()[secAdd].Fallbacks - before; got != 1000 {
		t.Errorf("%d fallbacks counted, want 1000", got)
	}
}

// TestSectionsTable checks the run-time table against the descriptors the
// kernel reads.
func TestSectionsTable(t *testing.T) {
	for _, s := range Sections() {
		if s.Descriptor%32 != 0 {
			t.Errorf("%s: descriptor %#x misaligned", s.Name, s.Descriptor)
		}
		if uintptr(peek64(s.Descriptor+8)) != s.Start || uintptr(peek64(s.Descriptor+24)) != s.Abort ||
			uintptr(peek64(s.Descriptor+16)) != s.PostCommit-s.Start {
			t.Errorf("%s: table and descriptor disagree", s.Name)
		}
		if s.Abort >= s.Start && s.Abort < s.PostCommit {
			t.Errorf("%s: abort inside the section", s.Name)
		}
		fn := runtime.FuncForPC(s.Start)
		if fn == nil || !strings.HasPrefix(fn.Name(), "github.com/gorseq/rseq.") || runtime.FuncForPC(s.Abort) != fn {
			t.Errorf("%s: start and abort not in one function of the package", s.Name)
		}
	}
}
