package main

import (
	"bufio"
	"bytes"
	"encoding/xml"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

func init() {
	register(command{
		name:    "bench",
		summary: "compare per-CPU counters, pools, values and RWMutex with their Go peers",
		run:     benchMain,
	})
}

const benchUsage = `usage: rseq bench [--count N] [--benchtime D] [--bench REGEXP] [--svg FILE] [--dir DIR | --builtin]

Compares the per-CPU structures of package percpu (Counter, Pool, Value,
RWMutex) with their peers, and prints, for each structure and case, the
median ns/op of every implementation and how many times slower it is than
the rseq one. RWMutex runs read-only (RWMutexRead) and with one write in
every 100 operations (RWMutexWrite1pct), against sync.RWMutex and, in the
bench module, a sync.RWMutex per P.

Two ways to run:

  built-in    the standard library's peers (atomic.Int64, sync.Mutex,
              sync.RWMutex, sync.Pool) and the empty assembly calls, compiled
              into this binary and run with testing.Benchmark: no source tree
              and no Go toolchain needed. Used outside the source tree, when
              the go command is missing, or with --builtin.
  bench module  go test -run='^$' -bench=REGEXP -count=N ./... in the bench
              module of the github.com/gorseq/rseq source tree: the same
              cases plus the third-party and hand-made peers (xsync, per-P
              procPin shards, a channel pool, C with glibc's area). Used when
              the source tree is found from the current directory upwards (a
              go.mod of module github.com/gorseq/rseq with a bench/ directory
              next to it) and the go command is installed, or with --dir.

The default run (5 runs of 100ms per benchmark built in, 3 in the bench
module) takes well under 30 seconds; progress goes to stderr. --bench is
matched against GROUP/CASE/IMPL names such as Counter/single/atomic.

The "asmcall" rows are not structures: they call empty assembly functions
with the arguments of the structure's sections in the same loop, the least
that any Go call into a restartable section costs on this machine.
`

// Defaults of the two ways to run.
const (
	builtinCount  = 5
	moduleCount   = 3
	defaultBenchT = "100ms"
)

func benchMain(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, benchUsage)
		fs.PrintDefaults()
	}
	count := fs.Int("count", 0, "runs of each benchmark; the table shows medians (default 5 built in, 3 in the bench module)")
	benchtime := fs.String("benchtime", defaultBenchT, "time (or count, such as 1000x) of each run")
	pattern := fs.String("bench", ".", "run the benchmarks matching this regular expression")
	svgFile := fs.String("svg", "", "write a bar chart of the medians to this SVG file")
	dir := fs.String("dir", "", "the bench module's directory (default: found from the current directory)")
	builtin := fs.Bool("builtin", false, "run the built-in comparison even inside the source tree")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() != 0 {
		fmt.Fprintf(stderr, "rseq bench: unexpected argument %q\n", fs.Arg(0))
		fs.Usage()
		return 2
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if set["count"] && *count < 1 {
		fmt.Fprintf(stderr, "rseq bench: --count %d: want at least 1\n", *count)
		return 2
	}
	if err := checkBenchtime(*benchtime); err != nil {
		fmt.Fprintf(stderr, "rseq bench: --benchtime %q: %v\n", *benchtime, err)
		return 2
	}
	re, err := regexp.Compile(*pattern)
	if err != nil {
		fmt.Fprintf(stderr, "rseq bench: --bench %q: %v\n", *pattern, err)
		return 2
	}
	if *builtin && *dir != "" {
		fmt.Fprintln(stderr, "rseq bench: --builtin and --dir exclude each other")
		return 2
	}
	// Which way to run: the bench module when asked (--dir) or found with a
	// go command; the built-in comparison otherwise.
	bdir := *dir
	goCmd := ""
	if bdir != "" {
		if err := checkBenchDir(bdir); err != nil {
			fmt.Fprintf(stderr, "rseq bench: --dir: %v\n", err)
			return 1
		}
		if goCmd, err = exec.LookPath("go"); err != nil {
			fmt.Fprintf(stderr, "rseq bench: --dir: the go command is needed to run the bench module: %v\n", err)
			return 1
		}
	} else if !*builtin {
		why := ""
		wd, err := os.Getwd()
		if err == nil {
			bdir, err = findBenchDir(wd)
		}
		if err != nil {
			why = "no source tree here"
			bdir = ""
		} else if goCmd, err = exec.LookPath("go"); err != nil {
			why = "no go command"
			bdir = ""
		}
		if bdir == "" {
			fmt.Fprintf(stderr, "rseq bench: %s: running the built-in comparison with the standard library's peers (the third-party peers need the source tree's bench module and the go command)\n", why)
		}
	}
	var res *benchResults
	if bdir == "" {
		n := builtinCount
		if set["count"] {
			n = *count
		}
		res = runBuiltinBench(re, n, *benchtime, stderr)
		if res == nil {
			fmt.Fprintf(stderr, "rseq bench: no built-in benchmark matches --bench %q\n", *pattern)
			return 1
		}
		if len(res.Keys) == 0 {
			fmt.Fprintln(stderr, "rseq bench: every benchmark failed")
			return 1
		}
		return finishBench(res, *svgFile, stdout, stderr)
	}
	n := moduleCount
	if set["count"] {
		n = *count
	}
	goArgs := []string{"test", "-run=^$", "-bench=" + *pattern, "-count=" + strconv.Itoa(n), "-benchtime=" + *benchtime}
	goArgs = append(goArgs, "./...")
	fmt.Fprintf(stderr, "rseq bench: in %s: go %s\n", bdir, strings.Join(goArgs, " "))

	// The raw output goes to stderr as it comes (progress), and is kept
	// for the table.
	var out bytes.Buffer
	cmd := exec.Command(goCmd, goArgs...)
	cmd.Dir = bdir
	cmd.Stdout = io.MultiWriter(&out, stderr)
	cmd.Stderr = io.MultiWriter(&out, stderr)
	runErr := cmd.Run()

	res, err = parseBench(&out)
	if err != nil {
		fmt.Fprintf(stderr, "rseq bench: %v\n", err)
		if runErr != nil {
			fmt.Fprintf(stderr, "rseq bench: go test: %v\n", runErr)
		}
		return 1
	}
	status := finishBench(res, *svgFile, stdout, stderr)
	if runErr != nil {
		fmt.Fprintf(stderr, "rseq bench: go test: %v (the table shows the benchmarks that ran)\n", runErr)
		return 1
	}
	return status
}

// finishBench prints the table and writes the chart.
func finishBench(res *benchResults, svgFile string, stdout, stderr io.Writer) int {
	writeBenchTable(stdout, res)
	if svgFile != "" {
		var b bytes.Buffer
		writeBenchSVG(&b, res)
		if err := os.WriteFile(svgFile, b.Bytes(), 0o644); err != nil {
			fmt.Fprintf(stderr, "rseq bench: %v\n", err)
			return 1
		}
		fmt.Fprintf(stderr, "rseq bench: chart written to %s\n", svgFile)
	}
	return 0
}

// checkBenchtime accepts what go test's -benchtime accepts: a duration or
// a count such as 100x.
func checkBenchtime(s string) error {
	if n, ok := strings.CutSuffix(s, "x"); ok {
		if v, err := strconv.Atoi(n); err != nil || v < 1 {
			return errors.New("want a duration such as 500ms or a count such as 1000x")
		}
		return nil
	}
	if d, err := time.ParseDuration(s); err != nil || d <= 0 {
		return errors.New("want a duration such as 500ms or a count such as 1000x")
	}
	return nil
}

// findBenchDir looks from dir upwards for the source tree of
// github.com/gorseq/rseq and returns its bench directory.
func findBenchDir(dir string) (string, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	start := dir
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && modulePath(b) == "github.com/gorseq/rseq" {
			bench := filepath.Join(dir, "bench")
			if err := checkBenchDir(bench); err != nil {
				return "", fmt.Errorf("found the source tree at %s but %v", dir, err)
			}
			return bench, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no github.com/gorseq/rseq source tree (go.mod with its bench/ module) in %s or above; run inside the source tree or give --dir", start)
		}
		dir = parent
	}
}

// checkBenchDir reports whether dir holds the bench module.
func checkBenchDir(dir string) error {
	b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	if err != nil {
		return fmt.Errorf("%s holds no bench module: %v", dir, err)
	}
	if m := modulePath(b); m != "github.com/gorseq/rseq/bench" {
		return fmt.Errorf("%s/go.mod is module %q, not github.com/gorseq/rseq/bench", dir, m)
	}
	return nil
}

// modulePath returns the module path declared in a go.mod file.
func modulePath(gomod []byte) string {
	for _, line := range strings.Split(string(gomod), "\n") {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "module"); ok {
			return strings.Trim(strings.TrimSpace(rest), `"`)
		}
	}
	return ""
}

// benchKey names one benchmark: Benchmark<Group>/<Case>/<Impl>.
type benchKey struct {
	Group, Case, Impl string
}

// benchResults holds the ns/op of every run of every benchmark, in the
// order the benchmarks first appeared.
type benchResults struct {
	Info  []string // "rseq-info:" lines: the state the library ran in
	Keys  []benchKey
	NsOp  map[benchKey][]float64
	Procs int // the -P suffix seen (GOMAXPROCS), 0 if none
}

var procsSuffix = regexp.MustCompile(`-(\d+)$`)

// parseBench reads go test -bench output.
func parseBench(r io.Reader) (*benchResults, error) {
	res := &benchResults{NsOp: map[benchKey][]float64{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if info, ok := strings.CutPrefix(line, "rseq-info:"); ok {
			if info = strings.TrimSpace(info); !slices.Contains(res.Info, info) {
				res.Info = append(res.Info, info)
			}
			continue
		}
		if !strings.HasPrefix(line, "Benchmark") {
			continue
		}
		f := strings.Fields(line)
		// name, iterations, value, "ns/op", more metrics...
		if len(f) < 4 || f[3] != "ns/op" {
			continue
		}
		if _, err := strconv.ParseInt(f[1], 10, 64); err != nil {
			continue
		}
		ns, err := strconv.ParseFloat(f[2], 64)
		if err != nil || ns < 0 {
			return nil, fmt.Errorf("bad ns/op %q in line %q", f[2], line)
		}
		name := strings.TrimPrefix(f[0], "Benchmark")
		if m := procsSuffix.FindStringSubmatch(name); m != nil {
			name = strings.TrimSuffix(name, m[0])
			res.Procs, _ = strconv.Atoi(m[1])
		}
		k := splitBenchName(name)
		if _, seen := res.NsOp[k]; !seen {
			res.Keys = append(res.Keys, k)
		}
		res.NsOp[k] = append(res.NsOp[k], ns)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(res.Keys) == 0 {
		return nil, errors.New("no benchmark results in the output of go test")
	}
	return res, nil
}

func splitBenchName(name string) benchKey {
	parts := strings.Split(name, "/")
	switch len(parts) {
	case 1:
		return benchKey{Group: parts[0]}
	case 2:
		return benchKey{Group: parts[0], Impl: parts[1]}
	}
	return benchKey{Group: parts[0], Case: strings.Join(parts[1:len(parts)-1], "/"), Impl: parts[len(parts)-1]}
}

// median returns the median of v (the mean of the middle two for an even
// count).
func median(v []float64) float64 {
	s := slices.Clone(v)
	sort.Float64s(s)
	n := len(s)
	if n == 0 {
		return 0
	}
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// benchRow is one line of the table.
type benchRow struct {
	Bench  string // Group/Case
	Impl   string
	Median float64
	Runs   int
	Ratio  float64 // Median / the rseq median of the same Group/Case; 0 if none
}

// benchRows groups the results by Group/Case, the rseq implementation
// first, and computes the ratios.
func benchRows(res *benchResults) [][]benchRow {
	type gc struct{ g, c string }
	var order []gc
	byGC := map[gc][]benchKey{}
	for _, k := range res.Keys {
		x := gc{k.Group, k.Case}
		if _, ok := byGC[x]; !ok {
			order = append(order, x)
		}
		byGC[x] = append(byGC[x], k)
	}
	var out [][]benchRow
	for _, x := range order {
		keys := byGC[x]
		sort.SliceStable(keys, func(i, j int) bool { return keys[i].Impl == "rseq" && keys[j].Impl != "rseq" })
		ref := 0.0
		if keys[0].Impl == "rseq" {
			ref = median(res.NsOp[keys[0]])
		}
		name := x.g
		if x.c != "" {
			name += "/" + x.c
		}
		var rows []benchRow
		for _, k := range keys {
			r := benchRow{Bench: name, Impl: k.Impl, Median: median(res.NsOp[k]), Runs: len(res.NsOp[k])}
			if ref > 0 {
				r.Ratio = r.Median / ref
			}
			rows = append(rows, r)
		}
		out = append(out, rows)
	}
	return out
}

// writeBenchTable prints the medians and ratios.
func writeBenchTable(w io.Writer, res *benchResults) {
	for _, info := range res.Info {
		fmt.Fprintf(w, "# %s\n", info)
	}
	if res.Procs > 0 {
		fmt.Fprintf(w, "# GOMAXPROCS %d\n", res.Procs)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "benchmark\timpl\tmedian ns/op\truns\tvs rseq\t")
	for _, group := range benchRows(res) {
		for _, r := range group {
			ratio := "-"
			switch {
			case r.Impl == "rseq":
				ratio = "1.00x"
			case r.Ratio > 0:
				ratio = fmt.Sprintf("%.2fx", r.Ratio)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t\n", r.Bench, r.Impl, formatNs(r.Median), r.Runs, ratio)
		}
	}
	tw.Flush()
	fmt.Fprintln(w, "vs rseq: the implementation's median divided by rseq's (above 1: rseq is faster)")
}

func formatNs(v float64) string {
	switch {
	case v >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case v >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	return strconv.FormatFloat(v, 'f', 2, 64)
}

// writeBenchSVG draws one bar per implementation, grouped by benchmark,
// each group scaled to its slowest implementation.
func writeBenchSVG(w io.Writer, res *benchResults) {
	groups := benchRows(res)
	const (
		width  = 760
		left   = 150 // implementation labels
		barMax = 480
		barH   = 18
		gap    = 4
		head   = 26 // a group's title
		top    = 40
	)
	height := top + 10
	for _, g := range groups {
		height += head + len(g)*(barH+gap) + 10
	}
	fmt.Fprintf(w, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", width, height, width, height)
	fmt.Fprintf(w, `<rect width="%d" height="%d" fill="white"/>`+"\n", width, height)
	title := "rseq bench: median ns/op (shorter is faster)"
	fmt.Fprintf(w, `<text x="10" y="24" font-size="15" font-weight="bold">%s</text>`+"\n", svgText(title))
	y := top
	for _, g := range groups {
		fmt.Fprintf(w, `<text x="10" y="%d" font-weight="bold">%s</text>`+"\n", y+16, svgText(g[0].Bench))
		y += head
		max := 0.0
		for _, r := range g {
			if r.Median > max {
				max = r.Median
			}
		}
		for _, r := range g {
			bw := 1.0
			if max > 0 {
				bw = r.Median / max * barMax
			}
			if bw < 1 {
				bw = 1
			}
			color := "#9aa5b1"
			if r.Impl == "rseq" {
				color = "#1f77b4"
			}
			label := formatNs(r.Median) + " ns"
			if r.Impl != "rseq" && r.Ratio > 0 {
				label += fmt.Sprintf(" (%.2fx)", r.Ratio)
			}
			fmt.Fprintf(w, `<text x="%d" y="%d" text-anchor="end">%s</text>`+"\n", left-8, y+barH-5, svgText(r.Impl))
			fmt.Fprintf(w, `<rect x="%d" y="%d" width="%.1f" height="%d" fill="%s"/>`+"\n", left, y, bw, barH, color)
			fmt.Fprintf(w, `<text x="%.1f" y="%d">%s</text>`+"\n", float64(left)+bw+6, y+barH-5, svgText(label))
			y += barH + gap
		}
		y += 10
	}
	fmt.Fprintln(w, "</svg>")
}

func svgText(s string) string {
	var b strings.Builder
	xml.EscapeText(&b, []byte(s))
	return b.String()
}
