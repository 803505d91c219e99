//go:build linux

package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"
)

// Markers printed on the console, one per line; the host script parses them.
const (
	markerResult = "QEMU-TEST-RESULT" // QEMU-TEST-RESULT <name> exit=<n> time=<d> [timeout]
	markerEnd    = "QEMU-TEST-END"    // QEMU-TEST-END pass=<n> fail=<n>
)

// Exit statuses reported for binaries that did not exit normally.
const (
	exitTimeout  = 124 // killed after the per-binary timeout, as timeout(1)
	exitNotFound = 127 // could not be started, as a shell reports it
)

// A job is one test binary to run.
type job struct {
	name string // the name in the result line
	path string // the executable
}

// A result is the outcome of one job.
type result struct {
	exit     int // exit status; 128+n when killed by signal n
	timedOut bool
	elapsed  time.Duration
}

// runner runs test binaries one after another and reports on out.
type runner struct {
	args    []string      // arguments given to every binary
	env     []string      // environment of every binary
	timeout time.Duration // per binary; then SIGQUIT (goroutine dump)
	grace   time.Duration // after SIGQUIT, before SIGKILL
	out     io.Writer     // the console: binaries write here too
}

// discover finds the test binaries under root: root/NAME/*.test (run in
// root/NAME, so a package's testdata can sit beside its binary) and
// root/*.test. Results are sorted by path.
func discover(root string) ([]job, error) {
	var jobs []job
	add := func(p, name string) error {
		st, err := os.Stat(p)
		if err != nil {
			return err
		}
		if st.Mode().IsRegular() && st.Mode().Perm()&0o111 != 0 {
			jobs = append(jobs, job{name: name, path: p})
		}
		return nil
	}
	entries, err := os.ReadDir(root)
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		p := filepath.Join(root, e.Name())
		if e.IsDir() {
			inner, err := filepath.Glob(filepath.Join(p, "*.test"))
			if err != nil {
				return nil, err
			}
			for _, q := range inner {
				name := e.Name()
				if len(inner) > 1 {
					name += "/" + filepath.Base(q)
				}
				if err := add(q, name); err != nil {
					return nil, err
				}
			}
		} else if strings.HasSuffix(e.Name(), ".test") {
			if err := add(p, strings.TrimSuffix(e.Name(), ".test")); err != nil {
				return nil, err
			}
		}
	}
	sort.Slice(jobs, func(i, j int) bool { return jobs[i].path < jobs[j].path })
	return jobs, nil
}

// splitArgs splits init's arguments (those after "--" on the kernel command
// line) into binaries and arguments for them: words starting with "-" are
// arguments, the others binaries. (A second "--" cannot separate them: the
// kernel drops everything from it on.)
func splitArgs(argv []string) (bins, args []string) {
	for _, a := range argv {
		if strings.HasPrefix(a, "-") {
			args = append(args, a)
		} else {
			bins = append(bins, a)
		}
	}
	return bins, args
}

// readArgsFile reads one argument per line; blank lines are skipped and a
// missing file means no arguments.
func readArgsFile(name string) ([]string, error) {
	f, err := os.Open(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var args []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if line := strings.TrimRight(sc.Text(), "\r"); strings.TrimSpace(line) != "" {
			args = append(args, line)
		}
	}
	return args, sc.Err()
}

// runAll runs every job, prints a result line for each and the end line,
// and returns the number of failures.
func (r *runner) runAll(jobs []job) int {
	fail := 0
	for _, j := range jobs {
		res := r.run(j)
		if res.exit != 0 {
			fail++
		}
		suffix := ""
		if res.timedOut {
			suffix = " timeout"
		}
		// The binary's last line may lack a newline: start a fresh line.
		fmt.Fprintf(r.out, "\n%s %s exit=%d time=%.1fs%s\n", markerResult, j.name, res.exit, res.elapsed.Seconds(), suffix)
	}
	fmt.Fprintf(r.out, "%s pass=%d fail=%d\n", markerEnd, len(jobs)-fail, fail)
	return fail
}

// run runs one binary in its directory with the runner's arguments, stopping
// it (and every process of its group) after the timeout.
func (r *runner) run(j job) result {
	start := time.Now()
	cmd := exec.Command(j.path, r.args...)
	cmd.Dir = filepath.Dir(j.path)
	cmd.Env = r.env
	cmd.Stdout = r.out
	cmd.Stderr = r.out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(r.out, "qemuinit: %s: %v\n", j.name, err)
		return result{exit: exitNotFound, elapsed: time.Since(start)}
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	pgid := cmd.Process.Pid
	timedOut := false
	var err error
	select {
	case err = <-done:
	case <-time.After(r.timeout):
		timedOut = true
		fmt.Fprintf(r.out, "\nqemuinit: %s still running after %v: SIGQUIT\n", j.name, r.timeout)
		syscall.Kill(-pgid, syscall.SIGQUIT)
		select {
		case err = <-done:
		case <-time.After(r.grace):
			fmt.Fprintf(r.out, "\nqemuinit: %s still running %v after SIGQUIT: SIGKILL\n", j.name, r.grace)
			syscall.Kill(-pgid, syscall.SIGKILL)
			err = <-done
		}
	}
	// Leave no stray process of the group behind.
	syscall.Kill(-pgid, syscall.SIGKILL)
	res := result{exit: exitStatus(cmd.ProcessState, err), timedOut: timedOut, elapsed: time.Since(start)}
	if timedOut {
		res.exit = exitTimeout
	}
	return res
}

// exitStatus converts a finished process's state to a shell-style status.
func exitStatus(ps *os.ProcessState, err error) int {
	if ps == nil {
		if err != nil {
			return exitNotFound
		}
		return 0
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ps.ExitCode()
}
