//go:build linux

package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
)

// harness holds the scratch directory the mutants are tried in.
type harness struct {
	root    string // the repository
	files   []string
	dir     string // scratch: tree/ (the copy) and bin/ (test binaries)
	lock    *os.File
	keep    bool
	verbose bool
	kernel  string
}

// Result kinds of a mutant.
const (
	killed   = "killed"
	survived = "SURVIVED"
	invalid  = "INVALID"
)

// result is what happened to one mutant.
type result struct {
	m      *Mutant
	status string
	by     string        // the test (or check) that killed it, or why it is invalid
	killer time.Duration // how long the killing test ran (the longest try)
	total  time.Duration // the mutant's whole time: copy, generate, build, run
	kills  int           // tries that killed it, of tries
	tries  int
}

func (r *result) summary() string {
	switch r.status {
	case killed:
		return fmt.Sprintf("killed by %s in %s (%s in all)%s", r.by, round(r.killer), round(r.total), r.triesNote())
	case invalid:
		return "INVALID: " + r.by
	}
	return fmt.Sprintf("SURVIVED every killer (%s)%s", round(r.total), r.triesNote())
}

// triesNote says how many tries killed the mutant, when there were several.
func (r *result) triesNote() string {
	if r.tries < 2 {
		return ""
	}
	return fmt.Sprintf(", killed %d/%d", r.kills, r.tries)
}

func round(d time.Duration) time.Duration { return d.Round(100 * time.Millisecond) }

func newHarness(keep, verbose bool, kernel string) (*harness, error) {
	out, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		return nil, fmt.Errorf("git rev-parse --show-toplevel: %v (run from inside the repository)", err)
	}
	root := strings.TrimSpace(string(out))
	list, err := exec.Command("git", "-C", root, "ls-files", "-co", "--exclude-standard", "-z").Output()
	if err != nil {
		return nil, fmt.Errorf("git ls-files: %v", err)
	}
	var files []string
	for _, f := range strings.Split(string(list), "\x00") {
		if f == "" {
			continue
		}
		if fi, err := os.Lstat(filepath.Join(root, f)); err == nil && fi.Mode().IsRegular() {
			files = append(files, f)
		}
	}
	sort.Strings(files)
	// One scratch directory per user, always the same: the Go build cache
	// keys packages on their directory, so every mutant (and every later
	// run) reuses what the mutants leave alone. A lock keeps concurrent
	// runs apart.
	dir := filepath.Join(os.TempDir(), fmt.Sprintf("gorseq-mutate-%d", os.Getuid()))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	lock, err := os.OpenFile(dir+".lock", os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		fmt.Fprintf(os.Stderr, "mutate: waiting for another run to release %s\n", dir)
		if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
			return nil, err
		}
	}
	return &harness{root: root, files: files, dir: dir, lock: lock, keep: keep, verbose: verbose, kernel: kernel}, nil
}

func (h *harness) close() {
	if !h.keep {
		os.RemoveAll(filepath.Join(h.dir, "tree"))
		os.RemoveAll(filepath.Join(h.dir, "bin"))
	} else {
		fmt.Fprintf(os.Stderr, "mutate: kept %s\n", h.dir)
	}
	h.lock.Close()
}

func (h *harness) tree() string { return filepath.Join(h.dir, "tree") }

// fresh replaces the copy with the repository's files as they are now.
func (h *harness) fresh() error {
	for _, d := range []string{h.tree(), filepath.Join(h.dir, "bin")} {
		if err := os.RemoveAll(d); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(filepath.Join(h.dir, "bin"), 0o755); err != nil {
		return err
	}
	for _, f := range h.files {
		src, dst := filepath.Join(h.root, f), filepath.Join(h.tree(), f)
		fi, err := os.Stat(src)
		if err != nil {
			return err
		}
		b, err := os.ReadFile(src)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(dst, b, fi.Mode().Perm()); err != nil {
			return err
		}
	}
	return nil
}

// apply makes m's edits in the copy.
func (h *harness) apply(m *Mutant) error {
	for _, e := range m.Edits {
		p := filepath.Join(h.tree(), e.File)
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if n := bytes.Count(b, []byte(e.Find)); n != 1 {
			return fmt.Errorf("%s: the snippet occurs %d times, want exactly once: %q", e.File, n, e.Find)
		}
		b = bytes.Replace(b, []byte(e.Find), []byte(e.Replace), 1)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// command runs name args in dir (relative to the copy) and returns its
// combined output; a failure's error holds the output's tail.
func (h *harness) command(dir string, env []string, name string, args ...string) ([]byte, error) {
	cmd := exec.Command(name, args...)
	cmd.Dir = filepath.Join(h.tree(), dir)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("%s %s: %v\n%s", name, strings.Join(args, " "), err, tail(out, 20))
	}
	return out, nil
}

// prepare copies the tree, applies m (nil: no mutant), regenerates the
// section tables, checks that the packages m edits still build for its
// architecture and builds the test binaries of the killers that run on
// this machine. An error means an invalid entry.
func (h *harness) prepare(m *Mutant, killers []Killer) (map[string]string, error) {
	if err := h.fresh(); err != nil {
		return nil, fmt.Errorf("copying the tree: %v", err)
	}
	if m != nil {
		if err := h.apply(m); err != nil {
			return nil, err
		}
	}
	if _, err := h.command(".", nil, "go", "run", "./internal/gensections"); err != nil {
		return nil, fmt.Errorf("regenerating the section tables: %v", err)
	}
	if m != nil {
		env := []string{"GOARCH=" + m.arch()}
		if m.arch() != runtime.GOARCH {
			env = append(env, "CGO_ENABLED=0")
		}
		built := map[string]bool{}
		for _, e := range m.Edits {
			pkg := "./" + filepath.ToSlash(filepath.Dir(e.File))
			if built[pkg] {
				continue
			}
			built[pkg] = true
			if _, err := h.command(".", env, "go", "build", "-o", os.DevNull, pkg); err != nil {
				return nil, fmt.Errorf("the mutant does not build for %s: %v", m.arch(), err)
			}
		}
	}
	bins := map[string]string{}
	for _, k := range killers {
		if k.guest(m) || bins[k.binKey()] != "" {
			continue
		}
		out := filepath.Join(h.dir, "bin", strings.NewReplacer("/", "_", ".", "_", ",", "_", "#", "_").Replace(k.binKey())+".test")
		args := []string{"test", "-c", "-o", out}
		if k.Tags != "" {
			args = append(args, "-tags", k.Tags)
		}
		if _, err := h.command(".", nil, "go", append(args, k.Pkg)...); err != nil {
			return nil, fmt.Errorf("building the tests of %s: %v", k.Pkg, err)
		}
		bins[k.binKey()] = out
	}
	return bins, nil
}

// failRE finds the failing tests in go test -v output.
var failRE = regexp.MustCompile(`(?m)^\s*--- FAIL: (\S+)`)

// Outcomes of a killer.
const (
	passed = iota
	failed
	broken // the killer itself is wrong: it ran no test
)

// runKiller runs one killer against the prepared copy: it reports whether
// the tests failed, and what failed.
func (h *harness) runKiller(m *Mutant, k Killer, bins map[string]string) (outcome int, by string) {
	var cmd *exec.Cmd
	var limit time.Duration
	if k.guest(m) && k.Tags != "" {
		return broken, fmt.Sprintf("killer %s -run %q: a tagged killer runs on the host only", k.Pkg, k.Run)
	}
	if k.guest(m) {
		args := []string{".ci/qemu-test.sh", "--arch", m.arch(), "--kernel", h.kernel, k.Pkg, "--", "-test.run=" + k.Run}
		cmd = exec.Command("bash", args...)
		cmd.Dir = h.tree()
		secs := int(k.Timeout / time.Second)
		cmd.Env = append(os.Environ(), fmt.Sprintf("GORSEQ_QEMU_TEST_TIMEOUT=%d", max(secs, 30)))
		limit = k.Timeout + 6*time.Minute // the builds, the helpers, the boot
	} else {
		bin := bins[k.binKey()]
		args := []string{"-test.run=" + k.Run, "-test.count=1", "-test.v", fmt.Sprintf("-test.timeout=%s", k.Timeout)}
		if k.Short {
			args = append(args, "-test.short")
		}
		cmd = exec.Command(bin, args...)
		cmd.Dir = filepath.Join(h.tree(), k.Pkg)
		cmd.Env = append(os.Environ(), k.Env...)
		limit = k.Timeout + 30*time.Second
	}
	var buf bytes.Buffer
	var w io.Writer = &buf
	if h.verbose {
		w = io.MultiWriter(&buf, os.Stderr)
	}
	cmd.Stdout, cmd.Stderr = w, w
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return broken, "could not start: " + err.Error()
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(limit):
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		return failed, fmt.Sprintf("%s (killed after %s)", k.describe(m), limit)
	}
	out := buf.Bytes()
	if err == nil {
		if bytes.Contains(out, []byte("testing: warning: no tests to run")) {
			return broken, fmt.Sprintf("killer %s: no test matches %q", k.Pkg, k.Run)
		}
		return passed, ""
	}
	where := k.Pkg
	if k.guest(m) {
		where = m.arch() + " guest " + k.Pkg
	}
	if f := failRE.FindAllSubmatch(out, -1); len(f) > 0 {
		// The innermost failing test: its subtests are listed first.
		return failed, where + " " + string(f[0][1])
	}
	if bytes.Contains(out, []byte("panic: test timed out")) {
		return failed, where + " " + k.Run + " (test timeout)"
	}
	if p := panicRE.Find(out); p != nil {
		return failed, fmt.Sprintf("%s %s (%s)", where, k.Run, clean(string(p)))
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return failed, fmt.Sprintf("%s %s (%v: %s)", where, k.Run, err, clean(lastLine(out)))
	}
	return failed, fmt.Sprintf("%s %s (%v)", where, k.Run, err)
}

// panicRE finds a panic or fatal error in a test's output.
var panicRE = regexp.MustCompile(`(?m)^(panic|fatal error): .*$`)

// clean makes s fit a table cell.
func clean(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 100 {
		s = s[:100] + "..."
	}
	return s
}

// try runs one mutant, count times.
func (h *harness) try(m *Mutant, count int) *result {
	start := time.Now()
	r := &result{m: m}
	bins, err := h.prepare(m, m.Kill)
	if err != nil {
		r.status, r.by, r.total = invalid, err.Error(), time.Since(start)
		return r
	}
tries:
	for r.tries < count {
		r.tries++
		for _, k := range m.Kill {
			ks := time.Now()
			outcome, by := h.runKiller(m, k, bins)
			if outcome == broken {
				r.status, r.by = invalid, by
				break tries
			}
			if outcome == failed {
				r.kills++
				r.by, r.killer = by, max(r.killer, time.Since(ks))
				break
			}
		}
	}
	switch {
	case r.status == invalid:
	case r.kills == r.tries:
		r.status = killed
	default:
		r.status = survived
	}
	r.total = time.Since(start)
	return r
}

// baseline runs every killer of sel on the unmutated tree, where it runs
// for its mutant (here, or in a guest): all must pass.
func (h *harness) baseline(sel []*Mutant) error {
	type use struct {
		k Killer
		m *Mutant
	}
	seen := map[string]bool{}
	var uses []use
	var all []Killer
	for _, m := range sel {
		for _, k := range m.Kill {
			id := k.describe(m)
			if !seen[id] {
				seen[id] = true
				uses = append(uses, use{k, m})
				all = append(all, k)
			}
		}
	}
	fmt.Fprintf(os.Stderr, "mutate: baseline: %d killers on the unmutated tree\n", len(uses))
	start := time.Now()
	bins, err := h.prepare(nil, all)
	if err != nil {
		return err
	}
	for _, u := range uses {
		t := time.Now()
		// The mutant only says where the killer runs: the tree has none.
		if outcome, by := h.runKiller(u.m, u.k, bins); outcome != passed {
			return fmt.Errorf("%s fails without a mutant: %s", u.k.describe(u.m), by)
		}
		fmt.Fprintf(os.Stderr, "mutate: baseline: %s passes (%s)\n", u.k.describe(u.m), round(time.Since(t)))
	}
	fmt.Fprintf(os.Stderr, "mutate: baseline passed in %s\n", round(time.Since(start)))
	return nil
}

// printTable writes the kill table and reports whether every mutant was
// killed.
func printTable(w io.Writer, results []*result, total time.Duration) bool {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "MUTANT\tARCH\tKIND\tRESULT\tKILLED BY\tKILL TIME\tTOTAL")
	n := map[string]int{}
	for _, r := range results {
		n[r.status]++
		by, kt := r.by, round(r.killer).String()
		if r.status != killed {
			kt = "-"
		}
		if r.status == survived {
			by = "-"
		}
		if r.tries > 1 && r.status != invalid {
			by += fmt.Sprintf(" [%d/%d]", r.kills, r.tries)
		}
		by = clean(by)
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.m.Name, r.m.arch(), r.m.Kind, r.status, by, kt, round(r.total))
	}
	tw.Flush()
	fmt.Fprintf(w, "\n%d mutants: %d killed, %d survived, %d invalid, in %s\n", len(results), n[killed], n[survived], n[invalid], round(total))
	return n[survived] == 0 && n[invalid] == 0
}

func tail(b []byte, lines int) string {
	s := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(s) > lines {
		s = s[len(s)-lines:]
	}
	return strings.Join(s, "\n")
}

func lastLine(b []byte) string {
	s := tail(b, 1)
	if len(s) > 120 {
		s = s[:120]
	}
	return s
}
