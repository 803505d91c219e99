package main

import (
	"bytes"
	"encoding/xml"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// cannedBench is go test -bench output of the bench module (shortened),
// with two packages, odd and even counts and a failed line.
const cannedBench = `rseq-info: operations=true mode=own reason=""
goos: linux
goarch: amd64
pkg: github.com/gorseq/rseq/bench
cpu: Some CPU
BenchmarkCounter/single/rseq-2         	100000000	         2.00 ns/op
BenchmarkCounter/single/rseq-2         	100000000	         3.00 ns/op
BenchmarkCounter/single/rseq-2         	100000000	         2.50 ns/op
BenchmarkCounter/single/atomic-2       	 50000000	        10.0 ns/op
BenchmarkCounter/single/atomic-2       	 50000000	        12.0 ns/op
BenchmarkCounter/single/atomic-2       	 50000000	        11.0 ns/op
BenchmarkCounter/parallel/atomic-2     	 30000000	        40.0 ns/op	       0 B/op	       0 allocs/op
BenchmarkCounter/parallel/rseq-2       	300000000	         1.00 ns/op	       0 B/op	       0 allocs/op
BenchmarkCounter/parallel/rseq-2       	300000000	         2.00 ns/op	       0 B/op	       0 allocs/op
BenchmarkCounter/parallel/atomic-2     	 30000000	        30.0 ns/op	       0 B/op	       0 allocs/op
BenchmarkPool/single/rseq-cgo<&>-2     	 30000000	        30.0 ns/op
--- FAIL: BenchmarkValue/single/mutex
PASS
ok  	github.com/gorseq/rseq/bench	12.3s
rseq-info: cgo operations=true mode=glibc reason=""
pkg: github.com/gorseq/rseq/bench/cgo
BenchmarkCounter/single/c-2            	800000000	         1.25 ns/op
ok  	github.com/gorseq/rseq/bench/cgo	2.0s
`

func TestParseBench(t *testing.T) {
	res, err := parseBench(strings.NewReader(cannedBench))
	if err != nil {
		t.Fatal(err)
	}
	if res.Procs != 2 {
		t.Errorf("Procs = %d, want 2", res.Procs)
	}
	if len(res.Info) != 2 || !strings.Contains(res.Info[1], "mode=glibc") {
		t.Errorf("Info = %q", res.Info)
	}
	wantKeys := []benchKey{
		{"Counter", "single", "rseq"}, {"Counter", "single", "atomic"},
		{"Counter", "parallel", "atomic"}, {"Counter", "parallel", "rseq"},
		{"Pool", "single", "rseq-cgo<&>"}, {"Counter", "single", "c"},
	}
	if len(res.Keys) != len(wantKeys) {
		t.Fatalf("keys %v, want %v", res.Keys, wantKeys)
	}
	for i, k := range wantKeys {
		if res.Keys[i] != k {
			t.Errorf("key %d = %v, want %v", i, res.Keys[i], k)
		}
	}
	if got := res.NsOp[benchKey{"Counter", "parallel", "atomic"}]; len(got) != 2 || got[0] != 40 || got[1] != 30 {
		t.Errorf("parallel/atomic runs = %v", got)
	}
}

func TestMedian(t *testing.T) {
	for _, c := range []struct {
		in   []float64
		want float64
	}{{[]float64{3, 1, 2}, 2}, {[]float64{4, 1, 3, 2}, 2.5}, {[]float64{7}, 7}, {nil, 0}} {
		if got := median(c.in); got != c.want {
			t.Errorf("median(%v) = %v, want %v", c.in, got, c.want)
		}
	}
}

func TestBenchTable(t *testing.T) {
	res, err := parseBench(strings.NewReader(cannedBench))
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	writeBenchTable(&b, res)
	out := b.String()
	lines := strings.Split(out, "\n")
	find := func(bench, impl string) []string {
		for _, l := range lines {
			f := strings.Fields(l)
			if len(f) >= 5 && f[0] == bench && f[1] == impl {
				return f
			}
		}
		t.Fatalf("no row %s %s in\n%s", bench, impl, out)
		return nil
	}
	// single: rseq median 2.5, atomic 11 -> 4.40x; the C row shares the
	// group and is faster than rseq.
	if f := find("Counter/single", "rseq"); f[2] != "2.50" || f[3] != "3" || f[4] != "1.00x" {
		t.Errorf("rseq row %v", f)
	}
	if f := find("Counter/single", "atomic"); f[2] != "11.0" || f[4] != "4.40x" {
		t.Errorf("atomic row %v", f)
	}
	if f := find("Counter/single", "c"); f[2] != "1.25" || f[4] != "0.50x" {
		t.Errorf("c row %v", f)
	}
	// parallel: rseq listed first although it came second; medians of
	// two runs.
	if f := find("Counter/parallel", "atomic"); f[2] != "35.0" || f[4] != "23.33x" {
		t.Errorf("parallel atomic row %v", f)
	}
	if f := find("Pool/single", "rseq-cgo<&>"); f[4] != "-" {
		t.Errorf("a group without rseq shows a ratio: %v", f)
	}
	if !strings.Contains(out, "# operations=true mode=own") || !strings.Contains(out, "# GOMAXPROCS 2") {
		t.Errorf("header missing:\n%s", out)
	}
	// Order: the parallel group's rseq row comes before its atomic row.
	if i, j := indexRow(lines, "Counter/parallel", "rseq"), indexRow(lines, "Counter/parallel", "atomic"); i < 0 || i > j {
		t.Errorf("rseq row not first in its group (%d, %d):\n%s", i, j, out)
	}
}

func indexRow(lines []string, bench, impl string) int {
	for i, l := range lines {
		f := strings.Fields(l)
		if len(f) >= 2 && f[0] == bench && f[1] == impl {
			return i
		}
	}
	return -1
}

func TestBenchSVG(t *testing.T) {
	res, err := parseBench(strings.NewReader(cannedBench))
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	writeBenchSVG(&b, res)
	// Well-formed XML whose root is svg, with one bar per result and the
	// odd implementation name escaped.
	d := xml.NewDecoder(bytes.NewReader(b.Bytes()))
	rects, texts := 0, []string{}
	root := ""
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("SVG is not well-formed XML: %v\n%s", err, b.String())
		}
		switch x := tok.(type) {
		case xml.StartElement:
			if root == "" {
				root = x.Name.Local
			}
			if x.Name.Local == "rect" {
				rects++
			}
		case xml.CharData:
			texts = append(texts, string(x))
		}
	}
	if root != "svg" {
		t.Errorf("root element %q", root)
	}
	if rects != 1+len(res.Keys) { // background + bars
		t.Errorf("%d rects, want %d", rects, 1+len(res.Keys))
	}
	all := strings.Join(texts, "|")
	for _, want := range []string{"rseq-cgo<&>", "Counter/single", "4.40x", "2.50 ns"} {
		if !strings.Contains(all, want) {
			t.Errorf("SVG text lacks %q: %s", want, all)
		}
	}
}

func TestParseBenchEmpty(t *testing.T) {
	_, err := parseBench(strings.NewReader("FAIL\tgithub.com/gorseq/rseq/bench [build failed]\n"))
	if err == nil || !strings.Contains(err.Error(), "no benchmark results") {
		t.Fatalf("err = %v", err)
	}
}

func TestFindBenchDir(t *testing.T) {
	root := t.TempDir()
	sub := filepath.Join(root, "percpu", "deep")
	if err := os.MkdirAll(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(p, s string) {
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(root, "go.mod"), "module github.com/gorseq/rseq\n\ngo 1.26.0\n")
	if _, err := findBenchDir(sub); err == nil || !strings.Contains(err.Error(), "bench") {
		t.Fatalf("without bench/: err = %v", err)
	}
	os.Mkdir(filepath.Join(root, "bench"), 0o755)
	write(filepath.Join(root, "bench", "go.mod"), "module github.com/gorseq/rseq/bench\n")
	got, err := findBenchDir(sub)
	if err != nil || got != filepath.Join(root, "bench") {
		t.Fatalf("findBenchDir = %q, %v", got, err)
	}
	if _, err := findBenchDir(t.TempDir()); err == nil || !strings.Contains(err.Error(), "--dir") {
		t.Fatalf("outside the tree: err = %v", err)
	}
	if err := checkBenchDir(root); err == nil || !strings.Contains(err.Error(), "not github.com/gorseq/rseq/bench") {
		t.Fatalf("checkBenchDir(root) = %v", err)
	}
}

func TestBenchFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--count", "0"},
		{"--benchtime", "fast"},
		{"--bench", "("},
		{"extra"},
		{"--builtin", "--dir", "."},
	} {
		var out, errb bytes.Buffer
		if code := benchMain(args, &out, &errb); code != 2 {
			t.Errorf("%v: exit %d, want 2 (%s)", args, code, errb.String())
		}
	}
	var out, errb bytes.Buffer
	if code := benchMain([]string{"--dir", t.TempDir()}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "no bench module") {
		t.Errorf("--dir of an empty directory: exit %d: %s", code, errb.String())
	}
	for _, ok := range []string{"500ms", "100x", "2s"} {
		if err := checkBenchtime(ok); err != nil {
			t.Errorf("checkBenchtime(%q) = %v", ok, err)
		}
	}
}

// TestBenchRun runs two real benchmarks of the bench module through the
// command (it compiles the module: skipped under -short). The module
// proxy is not used: where the bench module's dependencies are not in the
// module cache the test is skipped.
func TestBenchRun(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles the bench module")
	}
	dir, err := findBenchDir(".")
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("GOPROXY", "off")
	t.Setenv("GOFLAGS", "-mod=mod")
	svg := filepath.Join(t.TempDir(), "b.svg")
	var out, errb bytes.Buffer
	code := benchMain([]string{"--dir", dir, "--bench", "Counter/single/(rseq|atomic)$", "--count", "2", "--benchtime", "1000x", "--svg", svg}, &out, &errb)
	if code != 0 && strings.Contains(errb.String(), "GOPROXY=off") {
		t.Skipf("bench module dependencies not in the module cache:\n%s", errb.String())
	}
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out.String(), errb.String())
	}
	lines := strings.Split(out.String(), "\n")
	for _, impl := range []string{"rseq", "atomic"} {
		if i := indexRow(lines, "Counter/single", impl); i < 0 {
			t.Errorf("no Counter/single %s row:\n%s", impl, out.String())
		} else if f := strings.Fields(lines[i]); f[3] != "2" {
			t.Errorf("row %q: want 2 runs", lines[i])
		}
	}
	if !strings.Contains(out.String(), "# operations=") {
		t.Errorf("no rseq-info header:\n%s", out.String())
	}
	if b, err := os.ReadFile(svg); err != nil || !bytes.Contains(b, []byte("<svg")) {
		t.Errorf("SVG not written: %v", err)
	}
}

// TestBenchBuiltin runs a few built-in benchmarks (testing.Benchmark in
// this process) for a fixed number of iterations.
func TestBenchBuiltin(t *testing.T) {
	svg := filepath.Join(t.TempDir(), "b.svg")
	var out, errb bytes.Buffer
	code := benchMain([]string{"--builtin", "--bench", "^Counter/single/(rseq|atomic|asmcall)$|^Value/parallel/rwmutex$", "--count", "2", "--benchtime", "200x", "--svg", svg}, &out, &errb)
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out.String(), errb.String())
	}
	lines := strings.Split(out.String(), "\n")
	for _, r := range [][2]string{{"Counter/single", "rseq"}, {"Counter/single", "atomic"}, {"Counter/single", "asmcall"}, {"Value/parallel", "rwmutex"}} {
		if i := indexRow(lines, r[0], r[1]); i < 0 {
			t.Errorf("no %s %s row:\n%s", r[0], r[1], out.String())
		} else if f := strings.Fields(lines[i]); f[3] != "2" {
			t.Errorf("row %q: want 2 runs", lines[i])
		}
	}
	if indexRow(lines, "Counter/single", "asmcall-add") >= 0 || indexRow(lines, "Pool/single", "rseq") >= 0 {
		t.Errorf("--bench not applied:\n%s", out.String())
	}
	if !strings.Contains(out.String(), "# built-in comparison") || !strings.Contains(out.String(), "# operations=") {
		t.Errorf("no header:\n%s", out.String())
	}
	if !strings.Contains(errb.String(), "rseq bench: 8/8 Value/parallel/rwmutex") {
		t.Errorf("no progress lines on stderr:\n%s", errb.String())
	}
	if b, err := os.ReadFile(svg); err != nil || !bytes.Contains(b, []byte("rwmutex")) {
		t.Errorf("SVG not written: %v", err)
	}
	out.Reset()
	errb.Reset()
	if code := benchMain([]string{"--builtin", "--bench", "^xsync$"}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "no built-in benchmark matches") {
		t.Errorf("no match: exit %d: %s", code, errb.String())
	}
}

// TestBenchOutsideTree: without the source tree, rseq bench runs the
// built-in comparison and says why.
func TestBenchOutsideTree(t *testing.T) {
	t.Chdir(t.TempDir())
	var out, errb bytes.Buffer
	code := benchMain([]string{"--bench", "^Pool/single/syncpool$", "--count", "1", "--benchtime", "100x"}, &out, &errb)
	if code != 0 || !strings.Contains(errb.String(), "no source tree here: running the built-in comparison") ||
		indexRow(strings.Split(out.String(), "\n"), "Pool/single", "syncpool") < 0 {
		t.Errorf("exit %d\n%s\n%s", code, out.String(), errb.String())
	}
}

// TestBenchInstalled builds the command and runs it as an installed binary
// would run: outside the source tree, with no go command on PATH.
func TestBenchInstalled(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the command")
	}
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go command to build with")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "rseq")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "bench", "--count", "1", "--benchtime", "50x", "--svg", "b.svg")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "PATH=/nonexistent")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("%v\n%s\n%s", err, out.String(), errb.String())
	}
	lines := strings.Split(out.String(), "\n")
	for _, g := range []string{"Counter/single", "Counter/parallel", "Pool/single", "Pool/parallel", "Value/single", "Value/parallel",
		"RWMutexRead/single", "RWMutexRead/parallel", "RWMutexWrite1pct/single", "RWMutexWrite1pct/parallel"} {
		if indexRow(lines, g, "rseq") < 0 {
			t.Errorf("no %s rseq row:\n%s", g, out.String())
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "b.svg")); err != nil {
		t.Error(err)
	}
}
