//go:build linux

package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"
)

// glibcSignature is the signature glibc registers its areas with (RSEQ_SIG).
var glibcSignature = map[string]uint32{"amd64": 0x53053053, "386": 0x53053053, "arm64": 0xd428bc00}[runtime.GOARCH]

func runPsCmd(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(append([]string{"ps"}, args...), &out, &errb)
	return code, out.String(), errb.String()
}

func TestPsCommand(t *testing.T) {
	// sleep is linked with glibc, which registers rseq on its thread.
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	pid := cmd.Process.Pid
	for i := 0; i < 200; i++ { // until the dynamic loader has registered
		if code, out, _ := runPsCmd("--json", fmt.Sprint(pid)); code == 0 && strings.Contains(out, `"registered": true`) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	code, out, errs := runPsCmd(fmt.Sprint(pid))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	for _, want := range []string{fmt.Sprintf("PID %d (sleep): 1 threads", pid), "TID", "SIGNATURE", fmt.Sprintf("%d  sleep", pid), fmt.Sprintf("%#x", glibcSignature)} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	code, out, errs = runPsCmd("--json", fmt.Sprint(pid))
	if code != 0 {
		t.Fatalf("--json: exit %d: %s", code, errs)
	}
	var procs []struct {
		PID     int
		Threads []struct {
			TID        int
			Name       string
			Registered bool
			Signature  uint32
			Size       uint32
		}
	}
	if err := json.Unmarshal([]byte(out), &procs); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if len(procs) != 1 || procs[0].PID != pid || len(procs[0].Threads) != 1 {
		t.Fatalf("report %+v", procs)
	}
	th := procs[0].Threads[0]
	if th.TID != pid || th.Name != "sleep" || !th.Registered || th.Signature != glibcSignature || th.Size != 32 {
		t.Errorf("thread %+v", th)
	}
}

func TestPsCommandErrors(t *testing.T) {
	if code, _, _ := runPsCmd(); code != 2 {
		t.Errorf("no pid: exit %d", code)
	}
	if code, _, errs := runPsCmd("abc"); code != 2 || !strings.Contains(errs, `"abc" is not a process id`) {
		t.Errorf("abc: exit %d %q", code, errs)
	}
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	// A process that is gone exits 2, as scan --pid and stat --pid do for
	// it; the other PIDs are still reported.
	live := exec.Command("sleep", "30")
	if err := live.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { live.Process.Kill(); live.Wait() }()
	code, out, errs := runPsCmd(fmt.Sprint(cmd.Process.Pid), fmt.Sprint(live.Process.Pid))
	if code != 2 || !strings.Contains(errs, fmt.Sprintf("process %d: no such process", cmd.Process.Pid)) {
		t.Errorf("exited process: exit %d %q", code, errs)
	}
	if !strings.Contains(out, fmt.Sprintf("PID %d", live.Process.Pid)) {
		t.Errorf("the live process was not reported after the gone one: %q", out)
	}
}
