package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"text/tabwriter"

	"github.com/gorseq/rseq/inspect"
	"github.com/gorseq/rseq/scan"
)

func init() {
	register(command{
		name:    "ps",
		summary: "show the rseq registration of every thread of running processes",
		run:     runPs,
	})
}

func runPs(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("rseq ps", flag.ContinueOnError)
	fs.SetOutput(stderr)
	asJSON := fs.Bool("json", false, "print JSON instead of a table")
	noSym := fs.Bool("no-symbols", false, "do not scan the mapped objects to name sections")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: rseq ps [--json] [--no-symbols] PID...")
		fmt.Fprintln(stderr, "\nFor every thread: its rseq area (address, length, signature), the CPU, node and")
		fmt.Fprintln(stderr, "concurrency ids written there, rseq_cs and the section the thread is stopped in.")
		fmt.Fprintln(stderr, "Threads are attached one at a time (PTRACE_SEIZE + PTRACE_INTERRUPT) and released at once.")
		fmt.Fprintln(stderr, "With --json, addresses are \"0x...\" strings; ids, sizes and offsets are numbers.")
		fmt.Fprintln(stderr, "\nExit status: 0 every process was inspected (a thread that exits meanwhile is")
		fmt.Fprintln(stderr, "left out), 2 bad usage, or a process that does not exist or cannot be")
		fmt.Fprintln(stderr, "inspected (the message names the cause); the others are still reported.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return 2
	}
	var pids []int
	for _, a := range fs.Args() {
		n, err := strconv.Atoi(a)
		if err != nil || n <= 0 {
			fmt.Fprintf(stderr, "rseq ps: %q is not a process id\n", a)
			return 2
		}
		pids = append(pids, n)
	}
	var sym inspect.Symbolizer
	if !*noSym {
		sym = scanSymbolizer()
	}
	status := 0
	var procs []*inspect.Process
	for _, pid := range pids {
		if !processExists(pid) {
			fmt.Fprintf(stderr, "rseq ps: process %d: no such process\n", pid)
			status = 2
			continue
		}
		p, err := inspect.Inspect(pid, sym)
		if err != nil {
			fmt.Fprintf(stderr, "rseq ps: %v\n", err)
			status = 2
			continue
		}
		procs = append(procs, p)
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if procs == nil {
			procs = []*inspect.Process{}
		}
		if err := enc.Encode(procs); err != nil {
			fmt.Fprintf(stderr, "rseq ps: %v\n", err)
			return 1
		}
		return status
	}
	for i, p := range procs {
		if i > 0 {
			fmt.Fprintln(stdout)
		}
		printProcess(stdout, p)
	}
	return status
}

// processExists reports whether pid names a process (or a thread) now.
func processExists(pid int) bool {
	_, err := os.Stat("/proc/" + strconv.Itoa(pid))
	return err == nil
}

// scanSymbolizer names sections through the scanner, scanning each process's
// mapped objects once (on first need).
func scanSymbolizer() inspect.Symbolizer {
	cache := map[int][]*scan.Object{}
	return func(pid int, addr uint64) (string, string, bool) {
		objs, ok := cache[pid]
		if !ok {
			objs, _ = scan.ScanProcess(pid, scan.Options{})
			cache[pid] = objs
		}
		s, ok := scan.FindSection(objs, addr)
		if !ok {
			return "", "", false
		}
		return s.Object, s.Symbol, true
	}
}

func printProcess(w io.Writer, p *inspect.Process) {
	fmt.Fprintf(w, "PID %d (%s): %d threads", p.PID, p.Command, len(p.Threads))
	if p.Vanished > 0 {
		fmt.Fprintf(w, ", %d exited while inspected", p.Vanished)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TID\tNAME\tAREA\tLEN\tSIGNATURE\tCPU\tNODE\tCID\tRSEQ_CS\tSECTION")
	for _, t := range p.Threads {
		if !t.Registered {
			fmt.Fprintf(tw, "%d\t%s\t-\t-\t-\t-\t-\t-\t-\t-\n", t.TID, t.Name)
			continue
		}
		node, cid := "-", "-"
		if t.HasNodeCID {
			node, cid = strconv.Itoa(int(t.NodeID)), strconv.Itoa(int(t.MMCID))
		}
		cs, sec := "-", "-"
		if t.RseqCS != 0 {
			// rseq_cs stays set after a section ends (the kernel clears
			// it lazily): it names the thread's last section.
			cs = fmt.Sprintf("%#x", t.RseqCS)
			name := fmt.Sprintf("descriptor %#x", t.RseqCS)
			if s := t.Section; s != nil {
				name = s.Symbol
				if name == "" {
					name = fmt.Sprintf("%#x", s.Start)
				}
				if s.Object != "" {
					name += " (" + s.Object + ")"
				}
			}
			if t.InSection {
				sec = fmt.Sprintf("INSIDE %s at ip %#x", name, t.IP)
			} else {
				sec = "last " + name
			}
		}
		fmt.Fprintf(tw, "%d\t%s\t%#x\t%d\t%#x\t%d\t%s\t%s\t%s\t%s\n",
			t.TID, t.Name, t.Area, t.Size, t.Signature, t.CPUID, node, cid, cs, sec)
	}
	tw.Flush()
	for _, n := range p.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
}
