package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"runtime"
	"sync"
	"testing"

	"github.com/gorseq/rseq"
	"github.com/gorseq/rseq/internal/benchpeers"
)

// testingInit registers the testing package's flags (test.benchtime among
// them) once; a test binary has them already.
var testingInit sync.Once

// setBenchtime sets the time testing.Benchmark gives each run and returns
// a function restoring the previous value.
func setBenchtime(v string) (restore func(), err error) {
	testingInit.Do(func() {
		if flag.Lookup("test.benchtime") == nil {
			testing.Init()
		}
	})
	f := flag.Lookup("test.benchtime")
	if f == nil {
		return nil, fmt.Errorf("the testing package has no test.benchtime flag")
	}
	old := f.Value.String()
	if err := f.Value.Set(v); err != nil {
		return nil, err
	}
	return func() { f.Value.Set(old) }, nil
}

// runBuiltinBench runs the built-in benchmarks whose GROUP/CASE/IMPL
// matches re, count times each, with a progress line on stderr (redrawn in
// place on a terminal). It returns nil when none matches.
func runBuiltinBench(re *regexp.Regexp, count int, benchtime string, stderr io.Writer) *benchResults {
	type job struct {
		key benchKey
		f   func(*testing.B)
	}
	var jobs []job
	for _, g := range benchpeers.Groups() {
		for _, c := range g.Cases {
			k := splitBenchName(g.Name + "/" + c.Name)
			if re.MatchString(g.Name + "/" + c.Name) {
				jobs = append(jobs, job{k, c.F})
			}
		}
	}
	if len(jobs) == 0 {
		return nil
	}
	restore, err := setBenchtime(benchtime)
	if err != nil {
		fmt.Fprintf(stderr, "rseq bench: %v (each run takes the default 1s)\n", err)
	} else {
		defer restore()
	}
	f := rseq.Features()
	res := &benchResults{
		Info: []string{
			fmt.Sprintf("operations=%v mode=%s reason=%q", f.Operations, f.Mode, f.OperationsReason),
			"built-in comparison: standard-library peers only (run inside the source tree for the third-party peers)",
		},
		NsOp:  map[benchKey][]float64{},
		Procs: runtime.GOMAXPROCS(0),
	}
	tty := false
	if f, ok := stderr.(*os.File); ok {
		tty = isTerminal(f)
	}
	total := len(jobs) * count
	done := 0
	for _, j := range jobs {
		res.Keys = append(res.Keys, j.key)
		name := j.key.Group + "/" + j.key.Case + "/" + j.key.Impl
		for range count {
			done++
			if tty {
				fmt.Fprintf(stderr, "\r\x1b[Krseq bench: %d/%d %s", done, total, name)
			}
			r := testing.Benchmark(j.f)
			if r.N == 0 {
				// The benchmark failed (b.Fatal): no result.
				if tty {
					fmt.Fprintln(stderr)
				}
				fmt.Fprintf(stderr, "rseq bench: %s failed\n", name)
				continue
			}
			ns := float64(r.T.Nanoseconds()) / float64(r.N)
			res.NsOp[j.key] = append(res.NsOp[j.key], ns)
			if !tty {
				fmt.Fprintf(stderr, "rseq bench: %d/%d %s %s ns/op\n", done, total, name, formatNs(ns))
			}
		}
	}
	if tty {
		fmt.Fprintf(stderr, "\r\x1b[K")
	}
	// Keep the keys of the benchmarks that produced a result.
	keys := res.Keys[:0]
	for _, k := range res.Keys {
		if len(res.NsOp[k]) > 0 {
			keys = append(keys, k)
		}
	}
	res.Keys = keys
	return res
}
