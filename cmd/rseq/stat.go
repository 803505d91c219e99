package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/gorseq/rseq/scan"
)

func init() {
	register(command{
		name:    "stat",
		summary: "show where and how often restartable sections abort, live",
		run:     runStat,
	})
}

// Exit statuses of rseq stat.
const (
	statOK       = 0 // the report was printed (also after SIGINT/SIGTERM)
	statNoEvents = 1 // the aborts cannot be observed here (permission, kernel)
	statUsage    = 2 // bad flags, or no such process
)

const statUsageText = `usage: rseq stat [--pid PID] [--duration D] [--interval D] [--json] [--updates] [--top N]

Counts the aborts of restartable sections, live, from the kernel tracepoint
rseq:rseq_ip_fixup (one record per abort: the interrupted address and the
section's start, length and abort handler), read through perf_event_open on
every CPU. Each abort is attributed to its section, named the way
'rseq scan --pid' names it (the descriptors in the ELF objects the process
maps), with a histogram of where in the section the aborts hit.

With --pid, only that process (all its threads, present and future) is
counted; without it, every process on the system. Without --duration the
table is refreshed every --interval until SIGINT or SIGTERM (or until the
process exits); with --duration one report is printed at the end.

The numbers are exact unless the report says records were lost (a ring
buffer overflowed). Aborts before stat attached are not seen.

Needs the rseq tracepoints (CONFIG_RSEQ, CONFIG_TRACEPOINTS), tracefs (mounted
for a moment on a temporary directory when it is not mounted), and
permission to read tracepoint records of every process: CAP_PERFMON,
CAP_SYS_ADMIN or root, or kernel.perf_event_paranoid = -1.

--json prints one JSON object per report (one at the end with --duration,
one per interval otherwise, each on its own line). Addresses are hexadecimal
strings, as in 'rseq scan --json'; counts and offsets are numbers.

Exit status: 0 a report was printed (also when interrupted or when the
process exited), 1 the aborts cannot be observed here (the message names the
cause), 2 bad usage or no such process.

flags:
`

// statOptions are rseq stat's flags, and two hooks for the tests.
type statOptions struct {
	pid      int
	duration time.Duration
	interval time.Duration
	json     bool
	updates  bool
	top      int
	// attached, when set, is called once the events are enabled.
	attached func()
	// stop, when set, ends the collection like SIGINT.
	stop <-chan struct{}
}

func runStat(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("rseq stat", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o statOptions
	fs.IntVar(&o.pid, "pid", 0, "count the aborts of process `PID` only (default: every process)")
	fs.DurationVar(&o.duration, "duration", 0, "collect for `D`, then print one report (default: refresh until interrupted)")
	fs.DurationVar(&o.interval, "interval", time.Second, "refresh the table every `D`")
	fs.BoolVar(&o.json, "json", false, "print JSON (one object per report)")
	fs.BoolVar(&o.updates, "updates", false, "also count rseq:rseq_update, the kernel's updates of the rseq areas on returns to user space")
	fs.IntVar(&o.top, "top", 20, "show at most `N` sections per process in the table (JSON has all)")
	fs.Usage = func() {
		fmt.Fprint(stderr, statUsageText)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return statOK
		}
		return statUsage
	}
	switch {
	case fs.NArg() != 0:
		fmt.Fprintf(stderr, "rseq stat: unexpected argument %q\n", fs.Arg(0))
		return statUsage
	case o.pid < 0:
		fmt.Fprintf(stderr, "rseq stat: --pid %d: not a process id\n", o.pid)
		return statUsage
	case o.duration < 0:
		fmt.Fprintf(stderr, "rseq stat: --duration %v: want a positive duration\n", o.duration)
		return statUsage
	case o.interval < 10*time.Millisecond:
		fmt.Fprintf(stderr, "rseq stat: --interval %v: want at least 10ms\n", o.interval)
		return statUsage
	case o.top < 1:
		fmt.Fprintf(stderr, "rseq stat: --top %d: want at least 1\n", o.top)
		return statUsage
	}
	return statMain(o, stdout, stderr)
}

// abortEvent is one rseq:rseq_ip_fixup record.
type abortEvent struct {
	PID, TID int
	IP       uint64 // regs_ip: where the thread was interrupted
	Start    uint64 // start_ip
	Len      uint64 // post_commit_offset
	Abort    uint64 // abort_ip
}

// statSource delivers the records; stat_linux.go implements it with perf
// events.
type statSource interface {
	// Wait blocks until records may be waiting or d has passed.
	Wait(d time.Duration) error
	// Read delivers the records that arrived since the last call.
	Read(abort func(abortEvent), update func(pid int))
	// Lost returns how many records the kernel dropped (full buffers).
	Lost() (aborts, updates uint64)
	// Stop disables the events; a Read after Stop returns the rest.
	Stop() error
	Close()
	// Notes are remarks for stderr (e.g. tracefs was mounted for a moment).
	Notes() []string
}

// statMain runs rseq stat with parsed options.
func statMain(o statOptions, stdout, stderr io.Writer) int {
	src, err := openStatSource(o.updates)
	if err != nil {
		fmt.Fprintf(stderr, "rseq stat: %v\n", err)
		return statNoEvents
	}
	defer src.Close()
	if o.pid != 0 && !processAlive(o.pid) {
		fmt.Fprintf(stderr, "rseq stat: process %d: no such process\n", o.pid)
		return statUsage
	}
	for _, n := range src.Notes() {
		fmt.Fprintf(stderr, "rseq stat: %s\n", n)
	}
	sym := newStatSymbolizer()
	agg := newStatAgg(o.pid, sym)
	if o.pid != 0 {
		agg.command(o.pid) // while the process surely exists
		sym.scan(o.pid)
	}
	if o.attached != nil {
		o.attached()
	}

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)

	start := time.Now()
	var deadline time.Time
	if o.duration > 0 {
		deadline = start.Add(o.duration)
	}
	nextReport := start.Add(o.interval)
	prev := agg.snapshot()
	prevTime := start
	interrupted, exited := false, false
	readAll := func() {
		src.Read(agg.addAbort, agg.addUpdate)
	}
	for {
		now := time.Now()
		wake := nextReport
		if o.duration > 0 {
			wake = deadline
		}
		if d := wake.Sub(now); d > 0 {
			if d > 100*time.Millisecond {
				d = 100 * time.Millisecond // check for signals and exit
			}
			if err := src.Wait(d); err != nil {
				fmt.Fprintf(stderr, "rseq stat: %v\n", err)
				return statNoEvents
			}
		}
		readAll()
		select {
		case <-sigs:
			interrupted = true
		case <-o.stop:
			interrupted = true
		default:
		}
		if o.pid != 0 && !processAlive(o.pid) {
			exited = true
		}
		now = time.Now()
		if interrupted || exited || (o.duration > 0 && !now.Before(deadline)) {
			break
		}
		if o.duration == 0 && !now.Before(nextReport) {
			lostA, lostU := src.Lost()
			r := agg.report(now.Sub(start), now.Sub(prevTime), prev, lostA, lostU, o.updates)
			printStatReport(stdout, r, o, true)
			prev, prevTime = agg.snapshot(), now
			for !nextReport.After(now) {
				nextReport = nextReport.Add(o.interval)
			}
		}
	}
	if err := src.Stop(); err != nil {
		fmt.Fprintf(stderr, "rseq stat: %v\n", err)
	}
	readAll()
	end := time.Now()
	lostA, lostU := src.Lost()
	var r *statReport
	if o.duration > 0 {
		// One report: rates over the whole window.
		r = agg.report(end.Sub(start), end.Sub(start), statSnapshot{}, lostA, lostU, o.updates)
	} else {
		r = agg.report(end.Sub(start), end.Sub(prevTime), prev, lostA, lostU, o.updates)
	}
	r.Final = true
	r.Exited = exited
	r.Interrupted = interrupted
	printStatReport(stdout, r, o, false)
	return statOK
}

// secKey identifies a section of a process as the kernel reports it.
type secKey struct {
	PID               int
	Start, Len, Abort uint64
}

type secAgg struct {
	aborts  uint64
	offsets map[uint64]uint64 // regs_ip - start_ip -> aborts
	section *scan.Section     // nil when no mapped object describes it
}

// statAgg accumulates records.
type statAgg struct {
	filter   int // 0: every process
	sym      *statSymbolizer
	secs     map[secKey]*secAgg
	updates  map[int]uint64
	commands map[int]string
}

func newStatAgg(pid int, sym *statSymbolizer) *statAgg {
	return &statAgg{filter: pid, sym: sym, secs: map[secKey]*secAgg{}, updates: map[int]uint64{}, commands: map[int]string{}}
}

func (a *statAgg) addAbort(e abortEvent) {
	if a.filter != 0 && e.PID != a.filter {
		return
	}
	k := secKey{e.PID, e.Start, e.Len, e.Abort}
	s := a.secs[k]
	if s == nil {
		// Named at first sight, while the process still runs.
		a.command(e.PID)
		s = &secAgg{offsets: map[uint64]uint64{}}
		if a.sym != nil {
			s.section = a.sym.lookup(e.PID, e.Start, e.Len)
		}
		a.secs[k] = s
	}
	s.aborts++
	s.offsets[e.IP-e.Start]++
}

func (a *statAgg) addUpdate(pid int) {
	if a.filter != 0 && pid != a.filter {
		return
	}
	if _, ok := a.updates[pid]; !ok {
		a.command(pid)
	}
	a.updates[pid]++
}

// command returns the process's name, read once (it may exit later).
func (a *statAgg) command(pid int) string {
	c, ok := a.commands[pid]
	if !ok {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
		c = strings.TrimSpace(string(b))
		if err != nil {
			c = "?"
		}
		a.commands[pid] = c
	}
	return c
}

// statSnapshot holds the counts at the start of an interval.
type statSnapshot struct {
	secs    map[secKey]uint64
	updates map[int]uint64
}

func (a *statAgg) snapshot() statSnapshot {
	s := statSnapshot{secs: map[secKey]uint64{}, updates: map[int]uint64{}}
	for k, v := range a.secs {
		s.secs[k] = v.aborts
	}
	for k, v := range a.updates {
		s.updates[k] = v
	}
	return s
}

// JSON and table report. Totals count from the moment stat attached; the
// rates are over the last interval (the whole window with --duration).
type statReport struct {
	PID             int         `json:"pid,omitempty"` // 0: every process
	Seconds         float64     `json:"seconds"`       // since stat attached
	IntervalSeconds float64     `json:"interval_seconds"`
	Aborts          uint64      `json:"aborts"`
	AbortsPerSec    float64     `json:"aborts_per_sec"`
	Updates         *uint64     `json:"updates,omitempty"` // with --updates
	UpdatesPerSec   *float64    `json:"updates_per_sec,omitempty"`
	LostAborts      uint64      `json:"lost_aborts"`            // records the kernel dropped
	LostUpdates     uint64      `json:"lost_updates,omitempty"` // with --updates
	Processes       []statProc  `json:"processes"`
	Final           bool        `json:"final"`
	Exited          bool        `json:"exited,omitempty"`      // the --pid process exited
	Interrupted     bool        `json:"interrupted,omitempty"` // SIGINT or SIGTERM
	procIndex       map[int]int // pid -> index in Processes
}

type statProc struct {
	PID           int           `json:"pid"`
	Command       string        `json:"command"`
	Aborts        uint64        `json:"aborts"`
	AbortsPerSec  float64       `json:"aborts_per_sec"`
	Updates       *uint64       `json:"updates,omitempty"`
	UpdatesPerSec *float64      `json:"updates_per_sec,omitempty"`
	Sections      []statSection `json:"sections"`
}

type statSection struct {
	// Object and Symbol name the section as rseq scan does; both are empty
	// when no mapped object holds a descriptor for it.
	Object           string       `json:"object"`
	Symbol           string       `json:"symbol"`
	Start            string       `json:"start"`
	PostCommitOffset uint64       `json:"post_commit_offset"`
	Abort            string       `json:"abort"`
	Aborts           uint64       `json:"aborts"`
	AbortsPerSec     float64      `json:"aborts_per_sec"`
	Offsets          []statOffset `json:"offsets"` // ascending
}

type statOffset struct {
	Offset      uint64 `json:"offset"` // regs_ip - start_ip
	Aborts      uint64 `json:"aborts"`
	Instruction string `json:"instruction,omitempty"` // at that offset, when decoded
}

func rate(n uint64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

// report builds the report: totals since attaching, rates over the
// interval since prev was taken.
func (a *statAgg) report(total, interval time.Duration, prev statSnapshot, lostA, lostU uint64, updates bool) *statReport {
	r := &statReport{PID: a.filter, Seconds: total.Seconds(), IntervalSeconds: interval.Seconds(),
		LostAborts: lostA, Processes: []statProc{}, procIndex: map[int]int{}}
	proc := func(pid int) *statProc {
		i, ok := r.procIndex[pid]
		if !ok {
			i = len(r.Processes)
			r.procIndex[pid] = i
			p := statProc{PID: pid, Command: a.command(pid), Sections: []statSection{}}
			if updates {
				p.Updates, p.UpdatesPerSec = new(uint64), new(float64)
			}
			r.Processes = append(r.Processes, p)
		}
		return &r.Processes[i]
	}
	if a.filter != 0 {
		proc(a.filter)
	}
	var intervalAborts, intervalUpdates uint64
	for k, s := range a.secs {
		p := proc(k.PID)
		d := s.aborts - prev.secs[k]
		sec := statSection{Start: hex(k.Start), PostCommitOffset: k.Len, Abort: hex(k.Abort),
			Aborts: s.aborts, AbortsPerSec: rate(d, interval)}
		found := s.section
		if found != nil {
			sec.Object, sec.Symbol = found.Object, found.Symbol
		}
		for off, n := range s.offsets {
			so := statOffset{Offset: off, Aborts: n}
			if found != nil {
				for _, in := range found.Instructions {
					if in.Addr == k.Start+off {
						so.Instruction = in.Text
					}
				}
			}
			sec.Offsets = append(sec.Offsets, so)
		}
		sort.Slice(sec.Offsets, func(i, j int) bool { return sec.Offsets[i].Offset < sec.Offsets[j].Offset })
		p.Sections = append(p.Sections, sec)
		p.Aborts += s.aborts
		p.AbortsPerSec += sec.AbortsPerSec
		r.Aborts += s.aborts
		intervalAborts += d
	}
	r.AbortsPerSec = rate(intervalAborts, interval)
	if updates {
		r.Updates, r.UpdatesPerSec, r.LostUpdates = new(uint64), new(float64), lostU
		for pid, n := range a.updates {
			p := proc(pid)
			d := n - prev.updates[pid]
			*p.Updates = n
			*p.UpdatesPerSec = rate(d, interval)
			*r.Updates += n
			intervalUpdates += d
		}
		*r.UpdatesPerSec = rate(intervalUpdates, interval)
	}
	for i := range r.Processes {
		secs := r.Processes[i].Sections
		sort.Slice(secs, func(a, b int) bool {
			if secs[a].Aborts != secs[b].Aborts {
				return secs[a].Aborts > secs[b].Aborts
			}
			return secs[a].Start < secs[b].Start
		})
	}
	sort.SliceStable(r.Processes, func(i, j int) bool {
		if r.Processes[i].Aborts != r.Processes[j].Aborts {
			return r.Processes[i].Aborts > r.Processes[j].Aborts
		}
		return r.Processes[i].PID < r.Processes[j].PID
	})
	return r
}

// statSymbolizer finds the section a record names among the objects
// mapped by the process, scanning each process once, and again when a
// section is not found (a library loaded since).
type statSymbolizer struct {
	objs    map[int][]*scan.Object
	rescans map[int]bool
}

func newStatSymbolizer() *statSymbolizer {
	return &statSymbolizer{objs: map[int][]*scan.Object{}, rescans: map[int]bool{}}
}

func (s *statSymbolizer) lookup(pid int, start, length uint64) *scan.Section {
	find := func() *scan.Section {
		for _, o := range s.objs[pid] {
			for i := range o.Sections {
				if sec := &o.Sections[i]; sec.Start == start && sec.PostCommitOffset == length {
					return sec
				}
			}
		}
		return nil
	}
	if _, ok := s.objs[pid]; !ok {
		s.scan(pid)
	}
	if sec := find(); sec != nil {
		return sec
	}
	if !s.rescans[pid] && processAlive(pid) {
		s.rescans[pid] = true
		if objs, _ := scan.ScanProcess(pid, scan.Options{Disassemble: true}); len(objs) > 0 {
			s.objs[pid] = objs
		}
		return find()
	}
	return nil
}

// scan scans the objects pid maps.
func (s *statSymbolizer) scan(pid int) {
	objs, _ := scan.ScanProcess(pid, scan.Options{Disassemble: true})
	s.objs[pid] = objs
}

func processAlive(pid int) bool {
	_, err := os.Stat("/proc/" + strconv.Itoa(pid))
	return err == nil
}

func printStatReport(w io.Writer, r *statReport, o statOptions, refresh bool) {
	if o.json {
		b, err := json.Marshal(r)
		if err != nil {
			fmt.Fprintf(w, "{\"error\": %q}\n", err.Error())
			return
		}
		w.Write(append(b, '\n'))
		return
	}
	if refresh {
		if f, ok := w.(*os.File); ok && isTerminal(f) {
			fmt.Fprint(w, "\x1b[H\x1b[2J")
		} else {
			fmt.Fprintln(w)
		}
	}
	who := "every process"
	if r.PID != 0 {
		cmd := "?"
		if len(r.Processes) > 0 {
			cmd = r.Processes[0].Command
		}
		who = fmt.Sprintf("process %d (%s)", r.PID, cmd)
	}
	per := "over the last " + fmtSeconds(r.IntervalSeconds)
	if o.duration > 0 {
		per = "over the run"
	}
	fmt.Fprintf(w, "rseq stat: %s, %s since attaching: %d aborts, %.1f/s %s", who, fmtSeconds(r.Seconds), r.Aborts, r.AbortsPerSec, per)
	if r.Updates != nil {
		fmt.Fprintf(w, "; %d rseq_update, %.1f/s", *r.Updates, *r.UpdatesPerSec)
	}
	fmt.Fprintln(w)
	if r.LostAborts > 0 || r.LostUpdates > 0 {
		fmt.Fprintf(w, "WARNING: the kernel dropped %d abort and %d update records (full ring buffers): the counts are low\n", r.LostAborts, r.LostUpdates)
	}
	switch {
	case r.Exited:
		fmt.Fprintln(w, "(the process exited)")
	case r.Interrupted:
		fmt.Fprintln(w, "(interrupted)")
	}
	for _, p := range r.Processes {
		if r.PID == 0 && p.Aborts == 0 && (p.Updates == nil || *p.Updates == 0) {
			continue
		}
		fmt.Fprintf(w, "\nPID %d (%s): %d aborts, %.1f/s", p.PID, p.Command, p.Aborts, p.AbortsPerSec)
		if p.Updates != nil {
			fmt.Fprintf(w, "; %d rseq_update, %.1f/s", *p.Updates, *p.UpdatesPerSec)
		}
		fmt.Fprintln(w)
		if len(p.Sections) == 0 {
			continue
		}
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  ABORTS\t/S\tSECTION\tSTART\tLEN\tOBJECT")
		for i, s := range p.Sections {
			if i == o.top {
				fmt.Fprintf(tw, "  ...\t\t%d more section(s) (--top)\t\t\t\n", len(p.Sections)-o.top)
				break
			}
			name, obj := s.Symbol, s.Object
			if name == "" {
				name = "?"
			}
			if obj == "" {
				obj = "(no descriptor found in the mapped objects)"
			}
			fmt.Fprintf(tw, "  %d\t%.1f\t%s\t%s\t%d\t%s\n", s.Aborts, s.AbortsPerSec, name, s.Start, s.PostCommitOffset, obj)
		}
		tw.Flush()
		for i, s := range p.Sections {
			if i == o.top {
				break
			}
			writeHistogram(w, s)
		}
	}
}

// writeHistogram prints where in section s the aborts hit.
func writeHistogram(w io.Writer, s statSection) {
	name := s.Symbol
	if name == "" {
		name = s.Start
	}
	fmt.Fprintf(w, "  where %s aborted (offset from its start, aborts, instruction):\n", name)
	var max uint64
	for _, o := range s.Offsets {
		if o.Aborts > max {
			max = o.Aborts
		}
	}
	tw := tabwriter.NewWriter(w, 0, 0, 1, ' ', 0)
	for _, o := range s.Offsets {
		bar := int(o.Aborts * 30 / max)
		if bar == 0 {
			bar = 1
		}
		in := o.Instruction
		if o.Offset >= s.PostCommitOffset {
			in = "(outside the section)"
		}
		line := fmt.Sprintf("    +%#x\t%d\t%s\t%s", o.Offset, o.Aborts, strings.Repeat("#", bar), in)
		fmt.Fprintln(tw, strings.TrimRight(line, "\t"))
	}
	tw.Flush()
}

func fmtSeconds(s float64) string {
	return strconv.FormatFloat(s, 'f', 2, 64) + "s"
}
