package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/gorseq/rseq/scan"
	"github.com/gorseq/rseq/torture"
)

func init() {
	register(command{
		name:    "torture",
		summary: "run a program, forcing an abort at every instruction of its rseq sections",
		run:     runTorture,
	})
}

// Exit statuses of rseq torture.
const (
	tortureOK          = 0 // the program exited as expected, coverage reached
	tortureFailed      = 1 // the program failed (other exit status, or a signal)
	tortureUsage       = 2 // bad usage, or the program could not be started/traced
	tortureLowCoverage = 3 // the program survived but coverage stayed below --min-coverage
)

func runTorture(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("rseq torture", flag.ContinueOnError)
	fs.SetOutput(stderr)
	reps := fs.Int("reps", 1, "aborts forced at each instruction of each section")
	timeout := fs.Duration("timeout", 0, "stop torturing after this long (0: no limit); the program then runs on for --grace")
	grace := fs.Duration("grace", 10*time.Second, "how long the program may run after --timeout before it is killed")
	inject := fs.Duration("inject", 2*time.Millisecond, "mean interval between random real aborts (CPU migrations, SIGURG where caught); 0: none")
	minCov := fs.Float64("min-coverage", 100, "percentage of abort points that must be covered")
	expect := fs.Int("expect-exit", 0, "the exit status the program has when untortured")
	section := fs.String("section", "", "torture only sections whose symbol or object matches this regular expression")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	progress := fs.Duration("progress", time.Second, "interval between progress lines on stderr (0: none)")
	seed := fs.Int64("seed", 0, "seed of the random injection (0: from the clock)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: rseq torture [flags] -- COMMAND [ARGS]")
		fmt.Fprintln(stderr, "\nRuns COMMAND under ptrace and aborts every critical section at every instruction,")
		fmt.Fprintln(stderr, "as the kernel would on preemption, plus random real aborts. Exit status: 0 the program")
		fmt.Fprintln(stderr, "exited as expected and coverage reached --min-coverage; 1 the program failed; 2 usage or")
		fmt.Fprintln(stderr, "start-up error; 3 the program survived but coverage stayed below --min-coverage.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return tortureUsage
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return tortureUsage
	}
	if *reps < 1 || *minCov < 0 || *minCov > 100 || *timeout < 0 || *inject < 0 {
		fmt.Fprintln(stderr, "rseq torture: --reps must be at least 1, --min-coverage within 0..100, durations not negative")
		return tortureUsage
	}
	cfg := torture.Config{
		Args: fs.Args(), Reps: *reps, Timeout: *timeout, Grace: *grace, Inject: *inject,
		Stdin: os.Stdin, Seed: *seed,
	}
	if _, isFile := stderr.(*os.File); !isFile {
		// Progress lines and the program's copied stderr share stderr.
		stderr = &lockedWriter{w: stderr}
	}
	if *progress > 0 {
		cfg.Progress, cfg.ProgressEvery = stderr, *progress
	}
	if *section != "" {
		re, err := regexp.Compile(*section)
		if err != nil {
			fmt.Fprintf(stderr, "rseq torture: --section: %v\n", err)
			return tortureUsage
		}
		cfg.Filter = func(s *scan.Section) bool { return re.MatchString(s.Symbol) || re.MatchString(s.Object) }
	}
	// The program writes to our stdout and stderr: directly when they are
	// files, else through pipes.
	var wait []func()
	for _, p := range []struct {
		w   io.Writer
		dst **os.File
	}{{stdout, &cfg.Stdout}, {stderr, &cfg.Stderr}} {
		if f, ok := p.w.(*os.File); ok {
			*p.dst = f
			continue
		}
		r, w, err := os.Pipe()
		if err != nil {
			fmt.Fprintf(stderr, "rseq torture: %v\n", err)
			return tortureUsage
		}
		done := make(chan struct{})
		go func(dst io.Writer) { io.Copy(dst, r); r.Close(); close(done) }(p.w)
		*p.dst = w
		wait = append(wait, func() { w.Close(); <-done })
	}
	rep, err := torture.Run(cfg)
	for _, f := range wait {
		f()
	}
	if err != nil {
		fmt.Fprintf(stderr, "rseq torture: %v\n", err)
		return tortureUsage
	}
	survived := (rep.Exited && rep.ExitCode == *expect) || (rep.Killed && rep.Signal == "killed")
	status := tortureOK
	switch {
	case !survived:
		status = tortureFailed
	case rep.Coverage() < *minCov, rep.Points == 0 && *minCov > 0:
		// No sections found: nothing was verified.
		status = tortureLowCoverage
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		out := struct {
			*torture.Report
			Coverage        float64 `json:"coverage_percent"`
			AbortsPerSecond float64 `json:"aborts_per_second"`
			Survived        bool    `json:"survived"`
		}{rep, rep.Coverage(), rep.AbortsPerSecond(), survived}
		enc.Encode(out)
		return status
	}
	printTortureReport(stdout, rep, *expect, survived, *minCov)
	return status
}

// lockedWriter serializes writes from several goroutines.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

func printTortureReport(w io.Writer, r *torture.Report, expect int, survived bool, minCov float64) {
	fmt.Fprintln(w, "rseq torture report")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SECTION\tOBJECT\tSTART\tPOINTS\tCOVERED\tABORTS\tSIGNAL-ABORTS\tUNPROTECTED\tNOTE")
	for _, s := range r.Sections {
		note := s.Note
		if s.BadSignature > 0 {
			note = fmt.Sprintf("%d aborts found a wrong signature (SIGSEGV)", s.BadSignature)
		} else if note == "" && len(s.Missed) > 0 {
			note = fmt.Sprintf("missed offsets %#x", s.Missed)
		}
		name := s.Symbol
		if name == "" {
			name = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%#x\t%d\t%d\t%d\t%d\t%d\t%s\n", name, s.Object, s.Start, s.Points, s.Covered, s.Aborts, s.SignalAborts, s.Unprotected, note)
	}
	tw.Flush()
	if len(r.Sections) == 0 {
		fmt.Fprintln(w, "no critical sections found in the program's mapped objects")
	}
	fmt.Fprintf(w, "coverage: %d/%d abort points (%.1f%%, %.1f%% required)\n", r.Covered, r.Points, r.Coverage(), minCov)
	fmt.Fprintf(w, "aborts: %d forced in %.2fs (%.0f/s), %d migrations and %d signals injected; run took %.2fs\n",
		r.Aborts, r.LastAbort.Seconds(), r.AbortsPerSecond(), r.Migrations, r.Signals, r.Duration.Seconds())
	fmt.Fprintf(w, "followed %d processes, %d threads\n", r.Processes, r.Threads)
	if r.TimedOut {
		fmt.Fprintln(w, "the --timeout ended the torture")
	}
	switch {
	case r.Killed:
		fmt.Fprintln(w, "program: killed at the end of --grace (still running)")
	case r.Exited:
		fmt.Fprintf(w, "program: exited with status %d (expected %d)\n", r.ExitCode, expect)
	default:
		fmt.Fprintf(w, "program: killed by signal %s\n", r.Signal)
	}
	if survived {
		fmt.Fprintln(w, "result: the program survived")
	} else {
		fmt.Fprintln(w, "result: the program FAILED under torture")
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
}
