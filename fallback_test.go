//go:build linux

package rseq_test

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/gorseq/rseq/internal/testenv"
)

// TestScenariosInFallbackModes runs the param_test scenarios again in two
// child processes: one where no thread runs sections (GORSEQ=off), and a
// PIE build, whose main thread was registered by the dynamic loader and so
// uses the fallback while the other threads run sections, the mix the
// shared slot exists for.
func TestScenariosInFallbackModes(t *testing.T) {
	// The sections the child's scenarios run on every worker.
	fallbackSections := []string{"add", "addIndirect", "pop", "cmpStore", "cmp2Store", "storeCommit", "copyCommit", "takeHandle", "claimHandle", "putHandle", "addCPU", "addFloat64CPU", "incCPUIfZero", "cmpStoreCPU"}
	if os.Getenv("GORSEQ_TEST_CHILD") != "" {
		t.Skip("child")
	}
	if testing.Short() && os.Getenv("GORSEQ_QEMU") != "" {
		t.Skip("no Go toolchain in the guest")
	}
	run := func(t *testing.T, bin string, env ...string) map[string]int {
		cmd := exec.Command(bin, "-test.run=^(TestParam|TestAddIndirect|TestHandles)", "-test.short", "-test.count=1")
		cmd.Env = append(os.Environ(), append(env, "GORSEQ_TEST_CHILD=1", "GORSEQ_TEST_REPORT_FALLBACKS=1")...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", bin, err, out)
		}
		fb := map[string]int{}
		sc := bufio.NewScanner(strings.NewReader(string(out)))
		for sc.Scan() {
			if f := strings.Fields(sc.Text()); len(f) == 3 && f[0] == "FALLBACKS" {
				n, _ := strconv.Atoi(f[2])
				fb[f[1]] += n
			}
		}
		return fb
	}
	t.Run("GORSEQ=off", func(t *testing.T) {
		fb := run(t, os.Args[0], "GORSEQ=off")
		for _, s := range fallbackSections {
			if fb[s] == 0 {
				t.Errorf("section %s: no fallbacks counted with GORSEQ=off", s)
			}
		}
	})
	t.Run("pie-main-thread", func(t *testing.T) {
		bin := filepath.Join(t.TempDir(), "rseq-pie.test")
		goTool, err := exec.LookPath("go")
		if err != nil {
			t.Skipf("no go tool: %v", err)
		}
		build := exec.Command(goTool, "test", "-c", "-buildmode=pie", "-o", bin, ".")
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("building a PIE test binary: %v\n%s", err, out)
		}
		// Lending the main thread puts worker 0 of every scenario's
		// first batch there, so each section must count fallbacks there
		// while the other workers run it as a section.
		fb := run(t, bin, testenv.MainThreadVar+"=1")
		t.Logf("fallbacks on the main thread of the PIE binary: %v", fb)
		for _, s := range fallbackSections {
			if fb[s] == 0 {
				t.Errorf("section %s: no fallbacks counted on the PIE binary's main thread, so its mix of sections and fallback went untested", s)
			}
		}
	})
}
