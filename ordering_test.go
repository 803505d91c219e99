//go:build linux

package rseq_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/gorseq/rseq/scan"
)

// TestArm64AcquireRelease checks the ordering instructions the package
// documents for arm64, in the package's arm64 code: the commits of
// storeCommit and copyCommit are store-releases (STLR), and cmpStore and
// cmp2Store load the compared word with load-acquire (LDAR). No test of
// behaviour can: qemu's TCG on an x86-64 host never shows arm64's weak
// ordering, and real arm64 machines show it too rarely to count on.
//
// On arm64 it reads the test binary itself; elsewhere it builds a program
// of this module for linux/arm64 (which needs the go command; without it,
// the test skips).
func TestArm64AcquireRelease(t *testing.T) {
	bin, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOARCH != "arm64" {
		goTool, err := exec.LookPath("go")
		if err != nil {
			t.Skipf("no go command to cross-build for arm64: %v", err)
		}
		bin = filepath.Join(t.TempDir(), "ids")
		build := exec.Command(goTool, "build", "-o", bin, "./internal/testprog/ids")
		build.Env = append(os.Environ(), "GOOS=linux", "GOARCH=arm64", "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("building a linux/arm64 program: %v\n%s", err, out)
		}
	}
	o, err := scan.ScanFile(bin, scan.Options{Disassemble: true})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"storeCommitSection": "release",
		"copyCommitSection":  "release",
		"cmpStoreSection":    "acquire",
		"cmp2StoreSection":   "acquire",
	}
	found := 0
	for _, s := range o.Sections {
		fn, _, _ := strings.Cut(strings.TrimPrefix(s.Symbol, "github.com/gorseq/rseq."), "+")
		fn = strings.TrimSuffix(fn, ".abi0")
		kind, ok := want[fn]
		if !ok {
			continue
		}
		found++
		if len(s.Instructions) == 0 {
			t.Errorf("%s: not disassembled", s.Symbol)
			continue
		}
		var texts []string
		for _, in := range s.Instructions {
			texts = append(texts, in.Text)
		}
		switch kind {
		case "release":
			if last := texts[len(texts)-1]; !strings.HasPrefix(last, "stlr ") {
				t.Errorf("%s: the commit is %q, want a store-release (stlr): %q", fn, last, texts)
			}
		case "acquire":
			n := 0
			for _, x := range texts {
				if strings.HasPrefix(x, "ldar ") {
					n++
				}
			}
			if n != 1 {
				t.Errorf("%s: %d load-acquires (ldar), want 1, for the compared word: %q", fn, n, texts)
			}
		}
		t.Logf("%s: %s", fn, strings.Join(texts, "; "))
	}
	if found != len(want) {
		t.Errorf("found %d of the %d sections %v in %s", found, len(want), want, bin)
	}
}
