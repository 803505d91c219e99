package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"runtime"
	"strings"
	"text/tabwriter"

	"github.com/gorseq/rseq/scan"
)

func init() {
	register(command{
		name:    "scan",
		summary: "list and validate the critical sections of ELF files or a process",
		run:     runScan,
	})
}

// Exit statuses of rseq scan.
const (
	scanClean    = 0 // no finding at or above --fail-on
	scanFindings = 1 // findings at or above --fail-on
	scanUnusable = 2 // bad usage, or an input that could not be scanned
)

// JSON output of rseq scan. Field names are stable; addresses are
// hexadecimal strings ("0x401136") so that no 64-bit value loses
// precision in a JSON reader.
type scanJSON struct {
	Objects []objectJSON `json:"objects"`
	Errors  []string     `json:"errors"`
}

type objectJSON struct {
	Path      string        `json:"path"`
	Machine   string        `json:"machine"`
	Class     int           `json:"class"`
	BigEndian bool          `json:"big_endian"`
	Bias      string        `json:"bias"`
	Sections  []sectionJSON `json:"sections"`
	Findings  []findingJSON `json:"findings"`
}

type sectionJSON struct {
	Index            int        `json:"index"`
	Symbol           string     `json:"symbol"`
	Descriptor       string     `json:"descriptor"`
	Version          uint32     `json:"version"`
	Flags            uint32     `json:"flags"`
	Start            string     `json:"start"`
	PostCommit       string     `json:"post_commit"`
	PostCommitOffset uint64     `json:"post_commit_offset"`
	Abort            string     `json:"abort"`
	Signature        string     `json:"signature"`
	SignatureOK      bool       `json:"signature_ok"`
	Exits            []string   `json:"exits"`
	Via              string     `json:"via"`
	Instructions     []insnJSON `json:"instructions,omitempty"`
}

type insnJSON struct {
	Addr string `json:"addr"`
	Len  int    `json:"len"`
	Text string `json:"text"`
}

type findingJSON struct {
	Severity scan.Severity `json:"severity"`
	Rule     string        `json:"rule"`
	Section  int           `json:"section"`
	Message  string        `json:"message"`
}

func hex(v uint64) string { return fmt.Sprintf("%#x", v) }

func toJSON(o *scan.Object, insns bool) objectJSON {
	j := objectJSON{Path: o.Path, Machine: o.Machine, Class: o.Class, BigEndian: o.BigEndian,
		Bias: hex(o.Bias), Sections: []sectionJSON{}, Findings: []findingJSON{}}
	for i, s := range o.Sections {
		sj := sectionJSON{Index: i, Symbol: s.Symbol, Descriptor: hex(s.Descriptor), Version: s.Version,
			Flags: s.Flags, Start: hex(s.Start), PostCommit: hex(s.End()), PostCommitOffset: s.PostCommitOffset,
			Abort: hex(s.Abort), Signature: fmt.Sprintf("%#08x", s.Signature), SignatureOK: s.SignatureOK,
			Exits: []string{}, Via: s.Via}
		for _, e := range s.Exits {
			sj.Exits = append(sj.Exits, hex(e))
		}
		if insns {
			for _, in := range s.Instructions {
				sj.Instructions = append(sj.Instructions, insnJSON{hex(in.Addr), in.Len, in.Text})
			}
		}
		j.Sections = append(j.Sections, sj)
	}
	for _, f := range o.Findings {
		j.Findings = append(j.Findings, findingJSON{f.Severity, f.Rule, f.Section, f.Message})
	}
	return j
}

func runScan(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("rseq scan", flag.ContinueOnError)
	fs.SetOutput(stderr)
	asJSON := fs.Bool("json", false, "print JSON instead of a table")
	pid := fs.Int("pid", 0, "scan every ELF object mapped into process `PID` instead of files")
	failOn := fs.String("fail-on", "error", "exit with status 1 when a finding has at least this `severity` (info, warning, error)")
	disasm := fs.Bool("disasm", true, "decode each section (x86-64, i386, arm64) and apply the instruction rules")
	insns := fs.Bool("insns", false, "list the decoded instructions of each section")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: rseq scan [flags] FILE...\n       rseq scan [flags] --pid PID")
		fmt.Fprintln(stderr, "\nLists the restartable sequences of ELF files (__rseq_cs, __rseq_cs_ptr_array,")
		fmt.Fprintln(stderr, "__rseq_exit_point_array, __rseq_table, Go *.__rseq_cs symbols) and validates them.")
		fmt.Fprintln(stderr, "Exit status: 0 clean, 1 findings at or above --fail-on, 2 unusable input.\n\nflags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return scanUnusable
	}
	threshold, err := scan.ParseSeverity(*failOn)
	if err != nil {
		fmt.Fprintf(stderr, "rseq scan: --fail-on: %v\n", err)
		return scanUnusable
	}
	if (*pid == 0) == (fs.NArg() == 0) {
		fmt.Fprintln(stderr, "rseq scan: give either files or --pid PID")
		fs.Usage()
		return scanUnusable
	}
	if *pid != 0 && runtime.GOOS != "linux" {
		fmt.Fprintf(stderr, "rseq scan: --pid: not supported on %s (it reads /proc/PID/maps and /proc/PID/mem); scan the files instead\n", runtime.GOOS)
		return scanUnusable
	}
	opt := scan.Options{Disassemble: *disasm || *insns}
	var objs []*scan.Object
	var errs []error
	unusable := false
	if *pid != 0 {
		objs, errs = scan.ScanProcess(*pid, opt)
		if len(objs) == 0 {
			unusable = true
		}
	} else {
		for _, path := range fs.Args() {
			o, err := scan.ScanFile(path, opt)
			if err != nil {
				errs = append(errs, err)
				unusable = true
				continue
			}
			objs = append(objs, o)
		}
	}

	status := scanClean
	for _, o := range objs {
		if max, any := o.MaxSeverity(); any && max >= threshold {
			status = scanFindings
		}
	}
	if unusable {
		status = scanUnusable
	}

	if *asJSON {
		out := scanJSON{Objects: []objectJSON{}, Errors: []string{}}
		for _, o := range objs {
			out.Objects = append(out.Objects, toJSON(o, *insns))
		}
		for _, e := range errs {
			out.Errors = append(out.Errors, e.Error())
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(out); err != nil {
			fmt.Fprintf(stderr, "rseq scan: %v\n", err)
			return scanUnusable
		}
		return status
	}
	for _, e := range errs {
		fmt.Fprintf(stderr, "rseq scan: %v\n", e)
	}
	quiet := 0
	for _, o := range objs {
		if *pid != 0 && len(o.Sections) == 0 && len(o.Findings) == 0 {
			quiet++
			continue
		}
		printObject(stdout, o, *insns)
	}
	if quiet > 0 {
		fmt.Fprintf(stdout, "%d other mapped object(s) have no critical sections\n", quiet)
	}
	return status
}

func printObject(w io.Writer, o *scan.Object, insns bool) {
	order := "little-endian"
	if o.BigEndian {
		order = "big-endian"
	}
	fmt.Fprintf(w, "%s: %s, %d-bit %s", o.Path, o.Machine, o.Class, order)
	if o.Bias != 0 {
		fmt.Fprintf(w, ", load bias %#x", o.Bias)
	}
	fmt.Fprintf(w, ", %d critical section(s)\n", len(o.Sections))
	if len(o.Sections) > 0 {
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  #\tSYMBOL\tSTART\tPOST-COMMIT\tABORT\tLEN\tSIGNATURE\tVIA\tEXITS")
		for i, s := range o.Sections {
			sym := s.Symbol
			if sym == "" {
				sym = "-"
			}
			sig := fmt.Sprintf("%#08x", s.Signature)
			if !s.SignatureOK {
				sig += "(bad)"
			}
			exits := make([]string, len(s.Exits))
			for k, e := range s.Exits {
				exits[k] = hex(e)
			}
			ex := strings.Join(exits, ",")
			if ex == "" {
				ex = "-"
			}
			fmt.Fprintf(tw, "  %d\t%s\t%#x\t%#x\t%#x\t%d\t%s\t%s\t%s\n", i, sym, s.Start, s.End(), s.Abort, s.PostCommitOffset, sig, s.Via, ex)
		}
		tw.Flush()
	}
	if insns {
		for i, s := range o.Sections {
			if len(s.Instructions) == 0 {
				continue
			}
			fmt.Fprintf(w, "  section %d:\n", i)
			for _, in := range s.Instructions {
				fmt.Fprintf(w, "    %#x  %s\n", in.Addr, in.Text)
			}
		}
	}
	for _, f := range o.Findings {
		where := "object"
		if f.Section >= 0 {
			where = fmt.Sprintf("section %d", f.Section)
		}
		fmt.Fprintf(w, "  %-7s %-19s %s: %s\n", f.Severity, f.Rule, where, f.Message)
	}
}
