package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

func scanData(name string) string { return filepath.Join("..", "..", "scan", "testdata", name) }

func runScanCmd(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	status := run(append([]string{"scan"}, args...), &out, &errb)
	return status, out.String(), errb.String()
}

func TestScanExitStatus(t *testing.T) {
	notELF := filepath.Join(t.TempDir(), "text")
	if err := os.WriteFile(notELF, []byte("hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		args []string
		want int
	}{
		{[]string{scanData("good_x86_64")}, 0},
		{[]string{"--fail-on", "info", scanData("good_x86_64"), scanData("good_aarch64")}, 0},
		{[]string{scanData("bad_x86_64")}, 1},
		{[]string{"--disasm=false", "--fail-on", "warning", scanData("bad_aarch64")}, 1}, // bad-signature is found without disassembly
		{[]string{"--disasm=false", scanData("bad_aarch64")}, 1},
		{[]string{"--fail-on", "error", scanData("good_x86_64"), scanData("bad_s390x")}, 1},
		{[]string{scanData("good_x86_64"), notELF}, 2},
		{[]string{scanData("no-such-file")}, 2},
		{[]string{}, 2},
		{[]string{"--fail-on", "fatal", scanData("good_x86_64")}, 2},
		{[]string{"--pid", "1", scanData("good_x86_64")}, 2},
	}
	for _, tc := range tests {
		status, out, errs := runScanCmd(tc.args...)
		if status != tc.want {
			t.Errorf("rseq scan %v = %d, want %d\nstdout:\n%s\nstderr:\n%s", tc.args, status, tc.want, out, errs)
		}
	}
	// Store-before-commit is info: clean by default, a failure with
	// --fail-on info.
	_, out, _ := runScanCmd("--json", scanData("bad_aarch64"))
	if !strings.Contains(out, `"store-before-commit"`) {
		t.Fatalf("no store-before-commit in %s", out)
	}
}

func TestScanTable(t *testing.T) {
	status, out, errs := runScanCmd(scanData("good_x86_64"))
	if status != 0 || errs != "" {
		t.Fatalf("status %d, stderr %q", status, errs)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 5 || !strings.Contains(lines[0], "x86-64, 64-bit little-endian, 3 critical section(s)") {
		t.Fatalf("table:\n%s", out)
	}
	header := lines[1]
	for _, col := range []string{"SYMBOL", "START", "POST-COMMIT", "ABORT", "LEN", "SIGNATURE", "VIA", "EXITS"} {
		if !strings.Contains(header, col) {
			t.Errorf("header %q lacks %s", header, col)
		}
	}
	// Columns are aligned: START begins at the same offset in every row.
	col := strings.Index(header, "START")
	for _, l := range lines[2:] {
		if len(l) <= col || l[col-1] != ' ' || l[col] != '0' {
			t.Errorf("row %q not aligned with header %q", l, header)
		}
	}
	if !strings.Contains(lines[3], "rs_cas+0xb") || !strings.Contains(lines[3], "0x53053053") {
		t.Errorf("row %q", lines[3])
	}

	_, out, _ = runScanCmd("--insns", scanData("bad_x86_64"))
	for _, want := range []string{"error   syscall", "section 8:", "syscall\n", "info    store-before-commit", "object: __rseq_cs_ptr_array points at 0x70000000"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestScanJSON(t *testing.T) {
	status, out, _ := runScanCmd("--json", "--insns", scanData("good_x86_64"), scanData("bad_i386"))
	if status != 1 {
		t.Errorf("status %d", status)
	}
	var doc struct {
		Objects []struct {
			Path      string `json:"path"`
			Machine   string `json:"machine"`
			Class     int    `json:"class"`
			BigEndian bool   `json:"big_endian"`
			Bias      string `json:"bias"`
			Sections  []struct {
				Index            int      `json:"index"`
				Symbol           string   `json:"symbol"`
				Descriptor       string   `json:"descriptor"`
				Version          uint32   `json:"version"`
				Flags            uint32   `json:"flags"`
				Start            string   `json:"start"`
				PostCommit       string   `json:"post_commit"`
				PostCommitOffset uint64   `json:"post_commit_offset"`
				Abort            string   `json:"abort"`
				Signature        string   `json:"signature"`
				SignatureOK      bool     `json:"signature_ok"`
				Exits            []string `json:"exits"`
				Via              string   `json:"via"`
				Instructions     []struct {
					Addr string `json:"addr"`
					Len  int    `json:"len"`
					Text string `json:"text"`
				} `json:"instructions"`
			} `json:"sections"`
			Findings []struct {
				Severity string `json:"severity"`
				Rule     string `json:"rule"`
				Section  int    `json:"section"`
				Message  string `json:"message"`
			} `json:"findings"`
		} `json:"objects"`
		Errors []string `json:"errors"`
	}
	dec := json.NewDecoder(strings.NewReader(out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if len(doc.Objects) != 2 || len(doc.Errors) != 0 {
		t.Fatalf("%d objects, errors %v", len(doc.Objects), doc.Errors)
	}
	good, bad := doc.Objects[0], doc.Objects[1]
	if good.Machine != "x86-64" || good.Class != 64 || good.BigEndian || good.Bias != "0x0" || len(good.Sections) != 3 || len(good.Findings) != 0 {
		t.Errorf("good object %+v", good)
	}
	s := good.Sections[1]
	if s.Index != 1 || s.Symbol != "rs_cas+0xb" || s.Signature != "0x53053053" || !s.SignatureOK || len(s.Exits) != 1 ||
		s.Via != "__rseq_cs" || s.PostCommitOffset != 12 || len(s.Instructions) != 4 || !strings.HasPrefix(s.Start, "0x") {
		t.Errorf("section %+v", s)
	}
	if bad.Class != 32 || len(bad.Findings) != 4 {
		t.Errorf("bad object %+v", bad)
	}
	for _, f := range bad.Findings {
		if f.Severity != "error" && f.Severity != "warning" {
			t.Errorf("severity %q", f.Severity)
		}
	}
}

func TestScanPid(t *testing.T) {
	if runtime.GOOS != "linux" || runtime.GOARCH != "amd64" {
		t.Skip("the test program is linux/amd64")
	}
	cmd := exec.Command(scanData("good_x86_64"), "wait")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer stdin.Close()
	if line, err := bufio.NewReader(stdout).ReadString('\n'); err != nil || line != "ready\n" {
		t.Fatalf("test program said %q, %v", line, err)
	}
	pid := strconv.Itoa(cmd.Process.Pid)
	status, out, errs := runScanCmd("--pid", pid)
	if status != 0 || errs != "" || !strings.Contains(out, "good_x86_64: x86-64, 64-bit little-endian, load bias 0x") ||
		!strings.Contains(out, "3 critical section(s)") || !strings.Contains(out, "other mapped object(s) have no critical sections") {
		t.Errorf("status %d\nstdout:\n%s\nstderr:\n%s", status, out, errs)
	}
	stdin.Close()
	cmd.Wait()
	if status, _, errs := runScanCmd("--pid", pid); status != 2 || !strings.Contains(errs, "process "+pid) {
		t.Errorf("exited process: status %d, stderr %q", status, errs)
	}
}
