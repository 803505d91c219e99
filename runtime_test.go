//go:build linux && (amd64 || arm64)

package rseq

import (
	"bytes"
	"errors"
	"go/ast"
	"go/parser"
	"go/printer"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// TestRuntimeAssumptions fails, naming the assumption, when the Go runtime
// no longer matches what runtime_linux.go and runtime_linux_GOARCH.go
// document. On a Go release the package has not verified it is the one test
// that fails; the others skip, saying so (requireVerifiedRuntime).
func TestRuntimeAssumptions(t *testing.T) {
	if !runtimeVerified(runtime.Version()) {
		t.Errorf("Go %s is not in verifiedGoReleases %v: check assumptions L1-L4 (runtime_linux.go), A1-A2 (runtime_linux_amd64.go) and B1-B2 (runtime_linux_arm64.go) against its runtime, run this test under it, and add the release", runtime.Version(), verifiedGoReleases)
	}
	t.Run("sources", testRuntimeSources)
	t.Run("live", testRuntimeLive)
}

// runtimeSourceDir returns the runtime sources of the toolchain that built
// this test binary: the GOROOT whose VERSION file names runtime.Version().
func runtimeSourceDir(t *testing.T) string {
	var tried []string
	//lint:ignore SA1019 the GOROOT of the build is one of the candidates
	candidates := []string{os.Getenv("GOROOT"), runtime.GOROOT()}
	if out, err := exec.Command("go", "env", "GOROOT").Output(); err == nil {
		candidates = append(candidates, strings.TrimSpace(string(out)))
	}
	for _, root := range candidates {
		if root == "" {
			continue
		}
		v, err := os.ReadFile(filepath.Join(root, "VERSION"))
		if err != nil {
			tried = append(tried, root+" (no VERSION file)")
			continue
		}
		first, _, _ := strings.Cut(string(v), "\n")
		if strings.TrimSpace(first) == runtime.Version() {
			return filepath.Join(root, "src", "runtime")
		}
		tried = append(tried, root+" ("+strings.TrimSpace(first)+")")
	}
	if os.Getenv("GORSEQ_QEMU") != "" || len(tried) == 0 {
		t.Skipf("no sources of %s here (tried %v); the live checks still run", runtime.Version(), tried)
	}
	t.Fatalf("none of the GOROOTs found is the toolchain that built this test (%s): %v; set GOROOT to it", runtime.Version(), tried)
	return ""
}

// structFields returns the fields of type name in a Go source file as
// "name type" strings, in order.
func structFields(t *testing.T, src []byte, file, name string) []string {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, file, src, parser.SkipObjectResolution)
	if err != nil {
		t.Fatalf("parsing runtime/%s: %v", file, err)
	}
	var fields []string
	ast.Inspect(f, func(n ast.Node) bool {
		ts, ok := n.(*ast.TypeSpec)
		if !ok || ts.Name.Name != name {
			return true
		}
		st, ok := ts.Type.(*ast.StructType)
		if !ok {
			return false
		}
		for _, fl := range st.Fields.List {
			var b bytes.Buffer
			printer.Fprint(&b, fset, fl.Type)
			for _, n := range fl.Names {
				fields = append(fields, n.Name+" "+b.String())
			}
			if len(fl.Names) == 0 {
				fields = append(fields, b.String())
			}
		}
		return false
	})
	if fields == nil {
		t.Fatalf("runtime/%s: no struct type %s", file, name)
	}
	return fields
}

// hasPrefix reports whether got starts with want.
func hasPrefix(got, want []string) bool {
	return len(got) >= len(want) && strings.Join(got[:len(want)], "; ") == strings.Join(want, "; ")
}

// testRuntimeSources checks the assumptions of both platforms against the
// sources of the toolchain that built the test, whatever GOARCH it runs on.
func testRuntimeSources(t *testing.T) {
	dir := runtimeSourceDir(t)
	read := func(name string) []byte {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatalf("runtime sources: %v", err)
		}
		return b
	}
	rt2 := read("runtime2.go")

	// L1: g.m is the sixth word of g.
	if g := structFields(t, rt2, "runtime2.go", "g"); !hasPrefix(g, []string{"stack stack", "stackguard0 uintptr", "stackguard1 uintptr", "_panic *_panic", "_defer *_defer", "m *m"}) {
		t.Errorf("L1 broken: runtime.g no longer starts stack, stackguard0, stackguard1, _panic, _defer, m (gMOffset = %d): %v", gMOffset, g[:min(len(g), 6)])
	}
	if s := structFields(t, rt2, "runtime2.go", "stack"); !hasPrefix(s, []string{"lo uintptr", "hi uintptr"}) || len(s) != 2 {
		t.Errorf("L1 broken: runtime.stack is no longer {lo, hi uintptr}: %v", s)
	}
	// L2: the fields of m up to curg, and the sizes of the types among them.
	wantM := []string{"g0 *g", "morebuf gobuf", "divmod uint32", "procid uint64", "gsignal *g", "goSigStack gsignalStack", "sigmask sigset", "tls [tlsSlots]uintptr", "mstartfn func()", "curg *g"}
	if m := structFields(t, rt2, "runtime2.go", "m"); !hasPrefix(m, wantM) {
		t.Errorf("L2 broken: runtime.m no longer starts %v (mProcidOffset %d, mTLSOffset %d, mCurgOffset %d): %v", wantM, mProcidOffset, mTLSOffset, mCurgOffset, m[:min(len(m), len(wantM))])
	}
	if gb := structFields(t, rt2, "runtime2.go", "gobuf"); strings.Join(gb, "; ") != "sp uintptr; pc uintptr; g guintptr; ctxt unsafe.Pointer; lr uintptr; bp uintptr" {
		t.Errorf("L2 broken: runtime.gobuf is no longer six words (m.procid moves): %v", gb)
	}
	if gs := structFields(t, read("signal_unix.go"), "signal_unix.go", "gsignalStack"); strings.Join(gs, "; ") != "stack stack; stackguard0 uintptr; stackguard1 uintptr; stktopsp uintptr" {
		t.Errorf("L2 broken: runtime.gsignalStack is no longer five words (m.tls moves): %v", gs)
	}
	if !regexp.MustCompile(`(?m)^type sigset \[2\]uint32$`).Match(read("os_linux_generic.go")) {
		t.Error("L2 broken: os_linux_generic.go no longer says type sigset [2]uint32 (m.tls moves)")
	}
	if !regexp.MustCompile(`tlsSlots\s*=\s*6\b`).Match(rt2) {
		t.Errorf("L2 broken: runtime2.go no longer says tlsSlots = %d (m.curg moves, m.tls[2] may not exist)", runtimeTLSSlots)
	}
	// L3: a new M is zeroed memory, and nothing else uses m.tls[2].
	proc := read("proc.go")
	if !regexp.MustCompile(`mp := &new\(mPadded\)\.m|mp := new\(m\)`).Match(proc) {
		t.Error("L3 broken: allocm no longer allocates a new, zeroed m (mp := &new(mPadded).m)")
	}
	for _, f := range []string{"sys_linux_amd64.s", "asm_amd64.s", "sys_linux_arm64.s", "asm_arm64.s", "tls_arm64.s", "proc.go", "os_linux.go"} {
		src := string(read(f))
		for _, pat := range []string{"m_tls+8", "m_tls+16", "m_tls+24", "tls[1]", "tls[2]", "tls[3]"} {
			if strings.Contains(src, pat) {
				t.Errorf("L3 broken: runtime/%s now uses %s", f, pat)
			}
		}
	}
	// A1: settls points FS at &m.tls[1].
	if !strings.Contains(string(read("sys_linux_amd64.s")), "ADDQ\t$8, DI\t// ELF wants to use -8(FS)") {
		t.Error("A1 broken: runtime·settls (sys_linux_amd64.s) no longer sets FS to &m.tls[1] (ADDQ $8, DI)")
	}
	// B1: without cgo the arm64 runtime leaves TPIDR_EL0 alone, and its
	// clone does not set it.
	tlsArm := string(read("tls_arm64.s"))
	if strings.Count(tlsArm, "MOVB\truntime·iscgo(SB), R0\n\tCBZ\tR0, nocgo") != 2 {
		t.Error("B1 broken: runtime·load_g and save_g (tls_arm64.s) no longer return at once without cgo")
	}
	osLinux := string(read("os_linux.go"))
	if i := strings.Index(osLinux, "cloneFlags = "); i < 0 || strings.Contains(osLinux[i:i+strings.Index(osLinux[i:], ")")], "_CLONE_SETTLS") {
		t.Error("B1 broken: os_linux.go's cloneFlags now set (or no longer show) CLONE_SETTLS")
	}
	// B2: iscgo stays a pushed linkname bool.
	if !regexp.MustCompile(`//go:linkname iscgo\nvar iscgo bool`).Match(read("cgo.go")) {
		t.Error("B2 broken: runtime.iscgo is no longer `//go:linkname iscgo` + `var iscgo bool` (cgo.go)")
	}
}

// testRuntimeLive checks L1-L3 and the platform's assumptions on threads of
// this process, old and new: the structures as they are in memory.
func testRuntimeLive(t *testing.T) {
	if features.Cgo {
		t.Skip("cgo process: own mode is not used and the thread pointer is glibc's")
	}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread() // exit locked: the thread dies
			if err := checkGoThreadLayout(); err != nil {
				errs <- err
			}
			if features.Mode == ModeOwn && AreaAddress() == 0 && !isMainThread() {
				errs <- errNoArea
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// isMainThread reports whether the calling thread is the process's first.
func isMainThread() bool { return unix.Gettid() == unix.Getpid() }

var errNoArea = errors.New("a new locked thread has no area in own mode")

// requireVerifiedRuntime skips a test that needs restartable sections when
// the package does not trust this Go release: TestRuntimeAssumptions is the
// one test that fails for that.
func requireVerifiedRuntime(t testing.TB) {
	t.Helper()
	if !runtimeVerified(runtime.Version()) && os.Getenv("GORSEQ") != "unverified" {
		t.Skipf("Go %s is not a verified release: rseq falls back (TestRuntimeAssumptions says what to verify)", runtime.Version())
	}
}
