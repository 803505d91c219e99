//go:build linux

// Command mutate is the project's mutation-testing harness: it plants known
// bugs (mutants) in a copy of the tree, one at a time, and checks that the
// tests kill each of them.
//
// Usage, from anywhere in the repository:
//
//	go run ./internal/mutate [-run REGEXP] [-ci] [-arch amd64|arm64|all] [-list] [-keep] [-v]
//
// For every mutant of the catalogue (catalogue.go) that -run, -ci and -arch
// select, the harness:
//
//  1. copies the tree (the files `git ls-files -co --exclude-standard`
//     lists: tracked, and untracked but not ignored) to a scratch
//     directory, always the same one (so that the Go build cache serves
//     every package the mutant leaves alone);
//  2. applies the mutant's edits: each snippet must occur exactly once in
//     its file, else the entry is invalid (the catalogue no longer matches
//     the code);
//  3. runs `go run ./internal/gensections` in the copy, so that the section
//     tables describe the mutated assembly and the package's start-up
//     verification does not mask the mutant by falling back;
//  4. builds the test binaries of its killers (a mutant that no longer
//     assembles or builds is an invalid entry, not a kill);
//  5. runs the killers in order, each with its own time limit, and stops
//     at the first one that fails: the mutant is killed by it. A killer
//     that exceeds its limit kills the mutant too (a hang is a failure).
//     Killers of arm64 mutants run in a qemu guest
//     (`.ci/qemu-test.sh --arch arm64 --kernel 7.3`, inside the copy)
//     unless they are marked as host checks.
//
// It then prints the kill table (mutant, kind, result, the test that
// killed it, time) and exits 1 if any mutant survived or any entry is
// invalid, 0 otherwise. -baseline first runs every killer selected on the
// unmutated tree: a killer that fails there proves nothing, and the run
// stops (default on, except with -ci, which CI runs right after the same
// tests passed).
//
// -ci selects the CI subset (the entries marked CI; .ci/mutate.sh runs it);
// -count N tries each mutant N times (one copy, the killers N times) and
// counts it killed only if every try kills it, to measure how reliable the
// killers are; -list prints the catalogue instead of running it; -keep
// leaves the scratch directory; -v streams the killers' output.
//
// # Adding a mutant
//
// Append an entry to the catalogue in catalogue.go:
//
//	{
//		Name: "amd64/add/double-store", // unique: arch/section-or-area/what
//		Kind: DoubleStore,               // one of the kinds declared there
//		Arch: "amd64",                   // "amd64", "arm64", or "" for Go code
//		Edits: []Edit{{
//			File:    "ops_linux_amd64.s",
//			Find:    "...exact text, tabs and newlines included...",
//			Replace: "...the bug...",
//		}},
//		Kill: []Killer{tortureGo, rootTest("^TestParamIncrement$")},
//	},
//
// Keep the snippet long enough to be unique (the harness refuses one that
// occurs twice) and the mutant realistic: one bug a reviewer could miss,
// which still assembles and builds. Name, as killers, the tests that
// should catch it, cheapest and most certain first; each Killer names a
// package, a -test.run pattern, an environment and a time limit (see the
// helpers at the top of catalogue.go). Then run
//
//	go run ./internal/mutate -run 'NAME'
//
// and check that it is killed, by the test you meant, in a bounded time. If
// it survives, the tests are too weak: strengthen them rather than the
// catalogue. Mark it CI: true only if it is cheap and stands for a kind of
// bug the CI subset does not cover yet (.ci/mutate.sh must stay within its
// time budget). go test ./internal/mutate checks that every entry still
// applies to the tree.
package main

import (
	"flag"
	"fmt"
	"os"
	"regexp"
	"runtime"
	"time"
)

func main() {
	run := flag.String("run", "", "only the mutants whose names match this regular expression")
	ci := flag.Bool("ci", false, "only the CI subset")
	arch := flag.String("arch", "all", "the mutants of this architecture (amd64, arm64 or all); Go mutants count as the host's")
	list := flag.Bool("list", false, "list the selected mutants and their killers, run nothing")
	keep := flag.Bool("keep", false, "keep the scratch directory")
	verbose := flag.Bool("v", false, "stream the killers' output")
	baseline := flag.String("baseline", "auto", "run the selected killers on the unmutated tree first: on, off, or auto (on unless -ci)")
	kernel := flag.String("kernel", "7.3", "kernel series of the arm64 guest")
	count := flag.Int("count", 1, "try each mutant this many times: it counts as killed only if every try kills it")
	flag.Parse()

	var re *regexp.Regexp
	if *run != "" {
		var err error
		if re, err = regexp.Compile(*run); err != nil {
			fatalf("-run: %v", err)
		}
	}
	switch *arch {
	case "amd64", "arm64", "all":
	default:
		fatalf("-arch %s: want amd64, arm64 or all", *arch)
	}
	var sel []*Mutant
	for i := range catalogue {
		m := &catalogue[i]
		if re != nil && !re.MatchString(m.Name) {
			continue
		}
		if *ci && !m.CI {
			continue
		}
		if a := m.arch(); *arch != "all" && a != *arch {
			continue
		}
		sel = append(sel, m)
	}
	if len(sel) == 0 {
		fatalf("no mutant selected")
	}
	if *list {
		for _, m := range sel {
			fmt.Printf("%-44s %-6s %-22s ci=%v\n", m.Name, m.arch(), m.Kind, m.CI)
			for _, k := range m.Kill {
				fmt.Printf("    %s\n", k.describe(m))
			}
		}
		return
	}
	if runtime.GOOS != "linux" {
		fatalf("the killers need Linux")
	}
	if *count < 1 {
		fatalf("-count %d: want 1 or more", *count)
	}
	h, err := newHarness(*keep, *verbose, *kernel)
	if err != nil {
		fatalf("%v", err)
	}
	defer h.close()
	start := time.Now()
	doBaseline := *baseline == "on" || *baseline == "auto" && !*ci
	if doBaseline {
		if err := h.baseline(sel); err != nil {
			fatalf("baseline: %v", err)
		}
	}
	var results []*result
	for _, m := range sel {
		r := h.try(m, *count)
		results = append(results, r)
		fmt.Fprintf(os.Stderr, "mutate: %s: %s\n", m.Name, r.summary())
	}
	ok := printTable(os.Stdout, results, time.Since(start))
	if !ok {
		os.Exit(1)
	}
}

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "mutate: "+format+"\n", args...)
	os.Exit(2)
}
