package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"regexp"
	"strings"
	"sync"
	"syscall"
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
	tortureLowCoverage = 3 // the program survived but coverage stayed below --min-coverage, or it entered no section
	tortureHung        = 4 // the program was still running at the end of --grace and was killed
	tortureInterrupted = 5 // SIGINT or SIGTERM ended the run; the report is partial
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
	jsonTo := fs.String("json", "", "write the report as JSON to `FILE` (\"-\": standard output, and the program's standard output goes to standard error)")
	allSections := fs.Bool("all-sections", false, "measure coverage over every point of every section, not only the sections the program entered less their points unreachable in this run")
	progress := fs.Duration("progress", time.Second, "interval between progress lines on stderr (0: none)")
	seed := fs.Int64("seed", 0, "seed of the random injection (0: from the clock)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: rseq torture [flags] -- COMMAND [ARGS]")
		fmt.Fprintln(stderr, "\nRuns COMMAND under ptrace and aborts every critical section at every instruction,")
		fmt.Fprintln(stderr, "as the kernel would on preemption, plus random real aborts. Coverage counts the sections")
		fmt.Fprintln(stderr, "the program entered, less their points no pass reached although nothing kept it from")
		fmt.Fprintln(stderr, "them (reported as unreachable in this run); --all-sections counts every point.")
		fmt.Fprintln(stderr, "\nExit status:")
		fmt.Fprintln(stderr, "  0  the program exited as expected and coverage reached --min-coverage")
		fmt.Fprintln(stderr, "  1  the program failed (another exit status, or killed by a signal)")
		fmt.Fprintln(stderr, "  2  usage or start-up error")
		fmt.Fprintln(stderr, "  3  the program survived but coverage stayed below --min-coverage, or it entered no section")
		fmt.Fprintln(stderr, "  4  the program hung: still running at the end of --grace, it was killed")
		fmt.Fprintln(stderr, "  5  interrupted (SIGINT or SIGTERM): the program was killed, the report is partial")
		fmt.Fprintln(stderr, "\nflags:")
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
	if *jsonTo != "" && *jsonTo != "-" && strings.HasPrefix(*jsonTo, "-") {
		// "--json -- prog": the flag took "--" for its file.
		fmt.Fprintf(stderr, "rseq torture: --json needs a FILE (or - for standard output), not %q\n", *jsonTo)
		return tortureUsage
	}
	var jsonFile *os.File
	if *jsonTo != "" && *jsonTo != "-" {
		// Created before the run, so that a bad path fails at once.
		f, err := os.Create(*jsonTo)
		if err != nil {
			fmt.Fprintf(stderr, "rseq torture: --json: %v\n", err)
			return tortureUsage
		}
		defer f.Close()
		jsonFile = f
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
	// files, else through pipes. With --json - the report alone goes to
	// stdout, the program's stdout to stderr.
	progOut := stdout
	if *jsonTo == "-" {
		progOut = stderr
	}
	var wait []func()
	for _, p := range []struct {
		w   io.Writer
		dst **os.File
	}{{progOut, &cfg.Stdout}, {stderr, &cfg.Stderr}} {
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
	// SIGINT or SIGTERM ends the run: the program is killed and the
	// partial report printed.
	stop := make(chan struct{})
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		if _, ok := <-sigs; ok {
			close(stop)
		}
	}()
	cfg.Stop = stop
	rep, err := torture.Run(cfg)
	signal.Stop(sigs)
	close(sigs)
	for _, f := range wait {
		f()
	}
	if err != nil {
		fmt.Fprintf(stderr, "rseq torture: %v\n", err)
		return tortureUsage
	}
	v := judge(rep, *expect, *minCov, *allSections)
	if *jsonTo != "" {
		w := io.Writer(stdout)
		if jsonFile != nil {
			w = jsonFile
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		out := struct {
			*torture.Report
			Coverage        float64 `json:"coverage_percent"`
			CoverageOf      string  `json:"coverage_of"`
			AbortsPerSecond float64 `json:"aborts_per_second"`
			Survived        bool    `json:"survived"`
			Hung            bool    `json:"hung"`
			Status          int     `json:"exit_status"`
		}{rep, v.coverage, v.of, rep.AbortsPerSecond(), v.survived, rep.Killed, v.status}
		if err := enc.Encode(out); err != nil {
			fmt.Fprintf(stderr, "rseq torture: writing the JSON report: %v\n", err)
			return tortureUsage
		}
		if jsonFile == nil {
			return v.status
		}
	}
	printTortureReport(stdout, rep, *expect, v, *minCov)
	return v.status
}

// verdict is what a run's report amounts to.
type verdict struct {
	status   int
	survived bool
	// coverage is the percentage measured, of says over what:
	// "entered" or "all".
	coverage float64
	of       string
	// points counts the points coverage is measured over.
	points int
}

// judge gives a run's exit status: interrupted, then a program that hung
// or failed, then coverage.
func judge(rep *torture.Report, expect int, minCov float64, all bool) verdict {
	v := verdict{survived: rep.Exited && rep.ExitCode == expect, coverage: rep.EnteredCoverage(), of: "entered", points: rep.EnteredPoints}
	if all {
		v.coverage, v.of, v.points = rep.Coverage(), "all", rep.Points
	}
	switch {
	case rep.Interrupted:
		v.status = tortureInterrupted
	case rep.Killed:
		v.status = tortureHung
	case !v.survived:
		v.status = tortureFailed
	case v.points == 0 && minCov > 0:
		// No section, or none entered: nothing was verified.
		v.status = tortureLowCoverage
	case v.coverage < minCov:
		v.status = tortureLowCoverage
	}
	return v
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

func printTortureReport(w io.Writer, r *torture.Report, expect int, v verdict, minCov float64) {
	fmt.Fprintln(w, "rseq torture report")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SECTION\tOBJECT\tSTART\tPOINTS\tCOVERED\tABORTS\tSIGNAL-ABORTS\tUNPROTECTED\tNOTE")
	for _, s := range r.Sections {
		note := s.Note
		switch {
		case s.BadSignature > 0:
			note = fmt.Sprintf("%d aborts found a wrong signature (SIGSEGV)", s.BadSignature)
		case note != "":
		case s.Points > 0 && !s.Entered && (r.TimedOut || r.Interrupted):
			note = "not entered before the torture ended"
		case s.Points > 0 && !s.Entered:
			note = "never entered"
		default:
			var parts []string
			if len(s.Missed) > 0 {
				parts = append(parts, fmt.Sprintf("missed offsets %#x", s.Missed))
			}
			if len(s.Unreachable) > 0 {
				parts = append(parts, fmt.Sprintf("unreachable in this run %#x", s.Unreachable))
			}
			note = strings.Join(parts, "; ")
		}
		name := s.Symbol
		if name == "" {
			name = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%#x\t%d\t%d\t%d\t%d\t%d\t%s\n", name, s.Object, s.Start, s.Points, s.Covered, s.Aborts, s.SignalAborts, s.Unprotected, note)
	}
	tw.Flush()
	for _, s := range r.Sections {
		if !s.Entered {
			continue
		}
		// One line per reason, naming its offsets.
		var reasons []string
		offs := map[string][]uint64{}
		for i, off := range s.Missed {
			why := s.Reasons[i]
			if offs[why] == nil {
				reasons = append(reasons, why)
			}
			offs[why] = append(offs[why], off)
		}
		for _, why := range reasons {
			fmt.Fprintf(w, "missed: section %s, offset(s) %#x: %s\n", sectionLabel(s), offs[why], why)
		}
	}
	switch {
	case len(r.Sections) == 0:
		fmt.Fprintln(w, "coverage: none: the program has no critical sections (none found in its mapped objects), so nothing was tortured")
	case v.points == 0 && r.Points == 0:
		fmt.Fprintf(w, "coverage: none: none of the program's %d critical section(s) could be tortured (see the notes)\n", len(r.Sections))
	case v.points == 0:
		fmt.Fprintf(w, "coverage: none: the program entered none of its %d critical section(s), so nothing was tortured\n", r.NotEntered)
	case v.of == "all":
		fmt.Fprintf(w, "coverage: %d/%d abort points of all %d sections (%.1f%%, %.1f%% required)\n", r.Covered, r.Points, len(r.Sections), v.coverage, minCov)
	default:
		fmt.Fprintf(w, "coverage: %d/%d abort points of the %d sections entered (%.1f%%, %.1f%% required)", r.EnteredCovered, r.EnteredPoints, r.Entered, v.coverage, minCov)
		var also []string
		if r.Unreachable > 0 {
			also = append(also, fmt.Sprintf("%d point(s) unreachable in this run", r.Unreachable))
		}
		if r.NotEntered > 0 {
			also = append(also, fmt.Sprintf("%d section(s) never entered", r.NotEntered))
		}
		if len(also) > 0 {
			fmt.Fprintf(w, "; not counted: %s (--all-sections counts them)", strings.Join(also, ", "))
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "aborts: %d forced in %.2fs (%.0f/s), %d migrations and %d signals injected; run took %.2fs\n",
		r.Aborts, r.LastAbort.Seconds(), r.AbortsPerSecond(), r.Migrations, r.Signals, r.Duration.Seconds())
	fmt.Fprintf(w, "followed %d processes, %d threads\n", r.Processes, r.Threads)
	if r.TimedOut {
		fmt.Fprintln(w, "the --timeout ended the torture")
	}
	switch {
	case r.Interrupted:
		fmt.Fprintln(w, "program: killed when torture was interrupted")
	case r.Killed:
		fmt.Fprintln(w, "program: HUNG: still running at the end of --grace, killed")
	case r.Exited:
		fmt.Fprintf(w, "program: exited with status %d (expected %d)\n", r.ExitCode, expect)
	default:
		fmt.Fprintf(w, "program: killed by signal %s\n", r.Signal)
	}
	switch {
	case r.Interrupted:
		fmt.Fprintln(w, "result: INTERRUPTED (SIGINT or SIGTERM); the report is partial")
	case r.Killed:
		fmt.Fprintln(w, "result: the program HUNG under torture")
	case v.survived:
		fmt.Fprintln(w, "result: the program survived")
	default:
		fmt.Fprintln(w, "result: the program FAILED under torture")
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
}

// sectionLabel names a section in the report's lines.
func sectionLabel(s torture.SectionReport) string {
	if s.Symbol != "" {
		return s.Symbol
	}
	return fmt.Sprintf("%s@%#x", s.Object, s.Start)
}
