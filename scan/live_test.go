package scan

import (
	"bufio"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// startWaiting runs a test binary that prints "ready" and waits for its
// standard input to close.
func startWaiting(t *testing.T, path string) (*exec.Cmd, io.Closer) {
	t.Helper()
	cmd := exec.Command(path, "wait")
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "ready\n" {
		in.Close()
		cmd.Wait()
		t.Fatalf("test program said %q, %v", line, err)
	}
	return cmd, in
}

func TestScanProcess(t *testing.T) {
	if runtime.GOOS != "linux" || runtime.GOARCH != "amd64" {
		t.Skip("the live test binary is built for linux/amd64")
	}
	bin, err := filepath.Abs(td("good_x86_64"))
	if err != nil {
		t.Fatal(err)
	}
	file, err := ScanFile(bin, Options{Disassemble: true})
	if err != nil {
		t.Fatal(err)
	}
	cmd, stdin := startWaiting(t, bin)
	objs, errs := ScanProcess(cmd.Process.Pid, Options{Disassemble: true})
	for _, e := range errs {
		t.Errorf("ScanProcess error: %v", e)
	}
	var self *Object
	var names []string
	for _, o := range objs {
		names = append(names, filepath.Base(o.Path))
		if o.Path == bin {
			self = o
		} else if len(o.Sections) != 0 || len(o.Findings) != 0 {
			t.Errorf("%s: %d sections, findings %v", o.Path, len(o.Sections), o.Findings)
		}
	}
	if self == nil {
		t.Fatalf("the program's own object is missing from %v", names)
	}
	if !slices.Contains(names, "[vdso]") || !slices.ContainsFunc(names, func(n string) bool { return strings.HasPrefix(n, "libc.so") }) {
		t.Errorf("objects %v lack the vDSO or libc", names)
	}
	if self.Bias == 0 || self.Bias%4096 != 0 {
		t.Errorf("PIE load bias %#x", self.Bias)
	}
	if len(self.Findings) != 0 {
		t.Errorf("findings in the live process: %v", self.Findings)
	}
	if len(self.Sections) != len(file.Sections) {
		t.Fatalf("%d sections live, %d in the file", len(self.Sections), len(file.Sections))
	}
	for i, s := range self.Sections {
		f := file.Sections[i]
		if s.Start != f.Start+self.Bias || s.Abort != f.Abort+self.Bias || s.Descriptor != f.Descriptor+self.Bias ||
			s.PostCommitOffset != f.PostCommitOffset || s.Symbol != f.Symbol || len(s.Instructions) != len(f.Instructions) ||
			len(s.Exits) != len(f.Exits) || (len(s.Exits) > 0 && s.Exits[0] != f.Exits[0]+self.Bias) {
			t.Errorf("live section %d = %+v, file %+v (bias %#x)", i, s, f, self.Bias)
		}
		if got, ok := FindSection(objs, s.Start+1); !ok || got.Descriptor != s.Descriptor {
			t.Errorf("FindSection(%#x) = %v, %v", s.Start+1, got, ok)
		}
	}
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	// The process is gone now.
	objs, errs = ScanProcess(cmd.Process.Pid, Options{})
	if len(objs) != 0 || len(errs) != 1 || !strings.Contains(errs[0].Error(), "no such file") {
		t.Errorf("scanning an exited process: %d objects, errors %v", len(objs), errs)
	}
}

func TestParseMaps(t *testing.T) {
	text := "55d0c0a00000-55d0c0a01000 r--p 00000000 08:01 1234   /usr/bin/my prog\n" +
		"7ffd1e9f0000-7ffd1e9f2000 r-xp 00000000 00:00 0                          [vdso]\n" +
		"7f0000000000-7f0000001000 rw-p 00000000 00:00 0 \n"
	maps, err := parseMaps(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	if len(maps) != 3 || maps[0].path != "/usr/bin/my prog" || maps[0].inode != 1234 || maps[0].start != 0x55d0c0a00000 ||
		maps[1].path != "[vdso]" || maps[2].path != "" || maps[1].end != 0x7ffd1e9f2000 {
		t.Errorf("parsed %+v", maps)
	}
	for _, bad := range []string{"zzz\n", "1-2 r--p 0 08:01\n", "2-1 r--p 0 08:01 0\n", "x-2 r--p 0 08:01 0\n"} {
		if _, err := parseMaps(strings.NewReader(bad)); err == nil || !strings.Contains(err.Error(), "malformed") {
			t.Errorf("parseMaps(%q) error %v", bad, err)
		}
	}
}

// TestGCCBuild rebuilds the x86-64 test programs from source with the
// system's gcc and checks that the fresh builds scan like the committed
// ones.
func TestGCCBuild(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skip("builds x86-64 programs")
	}
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		t.Skip("no gcc")
	}
	dir := t.TempDir()
	for _, name := range []string{"good_x86_64", "bad_x86_64"} {
		out := filepath.Join(dir, name)
		if b, err := exec.Command(gcc, "-O2", "-o", out, td("src/"+name+".c")).CombinedOutput(); err != nil {
			t.Fatalf("gcc %s: %v\n%s", name, err, b)
		}
		fresh, err := ScanFile(out, Options{Disassemble: true})
		if err != nil {
			t.Fatal(err)
		}
		committed, err := ScanFile(td(name), Options{Disassemble: true})
		if err != nil {
			t.Fatal(err)
		}
		if len(fresh.Sections) != len(committed.Sections) || !slices.Equal(findingsOf(fresh), findingsOf(committed)) {
			t.Errorf("%s: fresh build has %d sections and findings %v; committed %d and %v", name,
				len(fresh.Sections), findingsOf(fresh), len(committed.Sections), findingsOf(committed))
		}
	}
}

// TestGoBinary builds a small program using github.com/gorseq/rseq and
// checks that its sections are found through the Go symbols and are
// clean.
func TestGoBinary(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skip("the library's sections are amd64 assembly")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = filepath.Join(os.Getenv("GOROOT"), "bin", "go")
		if _, err := os.Stat(goTool); err != nil {
			t.Skip("no go tool in PATH or GOROOT")
		}
	}
	dir := t.TempDir()
	for _, mode := range []string{"exe", "pie"} {
		out := filepath.Join(dir, "goprog-"+mode)
		build := exec.Command(goTool, "build", "-buildmode="+mode, "-o", out, "./testdata/goprog")
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if b, err := build.CombinedOutput(); err != nil {
			t.Fatalf("go build: %v\n%s", err, b)
		}
		obj, err := ScanFile(out, Options{Disassemble: true})
		if err != nil {
			t.Fatal(err)
		}
		if len(obj.Sections) == 0 {
			t.Fatalf("%s: no critical section found via the Go symbols (does the library emit github.com/gorseq/rseq.__rseq_cs?)", mode)
		}
		for _, s := range obj.Sections {
			if s.Via != viaGo || !strings.HasPrefix(s.Symbol, "github.com/gorseq/rseq.") || !s.SignatureOK || s.Signature != 0x53053053 {
				t.Errorf("%s: section %+v", mode, s)
			}
		}
		for _, f := range obj.Findings {
			if f.Severity >= Warning {
				t.Errorf("%s: %v %s: %s", mode, f.Severity, f.Rule, f.Message)
			} else {
				t.Logf("%s: %v %s: %s", mode, f.Severity, f.Rule, f.Message)
			}
		}
		t.Logf("%s: %d sections", mode, len(obj.Sections))

		// The running program: the same sections at the load bias, read
		// from its memory.
		cmd, stdin := startWaiting(t, out)
		objs, errs := ScanProcess(cmd.Process.Pid, Options{Disassemble: true})
		stdin.Close()
		cmd.Wait()
		for _, e := range errs {
			t.Errorf("%s: ScanProcess: %v", mode, e)
		}
		var live *Object
		for _, o := range objs {
			if o.Path == out {
				live = o
			}
		}
		if live == nil || len(live.Sections) != len(obj.Sections) {
			t.Fatalf("%s: live scan found %v", mode, live)
		}
		if (mode == "pie") != (live.Bias != 0) {
			t.Errorf("%s: load bias %#x", mode, live.Bias)
		}
		for i, s := range live.Sections {
			f := obj.Sections[i]
			if s.Start != f.Start+live.Bias || s.Abort != f.Abort+live.Bias || s.Symbol != f.Symbol || s.Via != viaGo || len(s.Exits) != len(f.Exits) {
				t.Errorf("%s: live section %d = %+v, file %+v", mode, i, s, f)
			}
		}
	}
}
