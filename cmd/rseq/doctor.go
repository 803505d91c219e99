package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/gorseq/rseq"
)

func init() {
	register(command{
		name:    "doctor",
		summary: "report the rseq support of this machine and process",
		run:     doctorMain,
	})
}

// doctorReport is the --json output of rseq doctor. Field names are stable:
// tools may rely on them; new fields may be added.
type doctorReport struct {
	Kernel          string `json:"kernel"` // uname release
	Machine         string `json:"machine"`
	GoVersion       string `json:"go_version"`
	RuntimeVerified bool   `json:"runtime_verified"`

	Usable      bool     `json:"usable"`
	Reason      string   `json:"reason"`
	Errno       string   `json:"errno"` // the failing call's errno name, "" if none
	Mode        string   `json:"mode"`  // none, own or glibc
	FeatureSize int      `json:"feature_size"`
	Alignment   int      `json:"alignment"`
	FromAuxv    bool     `json:"from_auxv"`
	AreaSize    int      `json:"area_size"`
	Signature   uint32   `json:"signature"`
	Fields      []string `json:"fields"`
	Cgo         bool     `json:"cgo"`

	Operations       bool   `json:"operations"`
	OperationsReason string `json:"operations_reason"`

	// Notes are Features().Notes: facts worth knowing about this process.
	Notes []string `json:"notes"`

	Glibc glibcReport `json:"glibc"`

	CPU int `json:"cpu"`
	// AreaAddress is the calling thread's rseq area, 0 when it uses the
	// fallback.
	AreaAddress   uint64 `json:"area_address"`
	Node          int    `json:"node"`
	ConcurrencyID int    `json:"concurrency_id"`
	PossibleCPUs  int    `json:"possible_cpus"`

	// MembarrierRseq is true when MEMBARRIER_CMD_QUERY lists both
	// MEMBARRIER_CMD_PRIVATE_EXPEDITED_RSEQ and its registration command;
	// MembarrierCommands is the bitmask the query returned (-1 if it failed).
	MembarrierRseq     bool   `json:"membarrier_rseq"`
	MembarrierCommands int    `json:"membarrier_commands"`
	MembarrierError    string `json:"membarrier_error,omitempty"`

	// PtraceRseqConfig says whether PTRACE_GET_RSEQ_CONFIGURATION works;
	// PtraceRseqConfigHow says how that was decided.
	PtraceRseqConfig    bool   `json:"ptrace_rseq_config"`
	PtraceRseqConfigHow string `json:"ptrace_rseq_config_how"`

	Timing timingReport `json:"timing"`
}

// glibcReport is glibc's rseq state as this process sees it.
type glibcReport struct {
	// Linked is true when glibc's __rseq_offset and __rseq_size were found
	// (the process runs with cgo and glibc 2.35 or later).
	Linked     bool   `json:"linked"`
	RseqOffset int64  `json:"rseq_offset"`
	RseqSize   uint32 `json:"rseq_size"`
	// Registered is true when glibc registered an area (__rseq_size != 0).
	Registered bool `json:"registered"`
	// Tunable is the value of glibc.pthread.rseq in GLIBC_TUNABLES, or ""
	// when the environment does not set it (glibc then registers rseq).
	Tunable string `json:"tunable"`
}

// timingReport compares the cost of reading the CPU number.
type timingReport struct {
	RseqCPUNs       float64 `json:"rseq_cpu_ns"`       // rseq.CPU(), ns/op, best of 5 rounds
	GetcpuSyscallNs float64 `json:"getcpu_syscall_ns"` // raw getcpu system call, ns/op, best of 5 rounds
	RseqCPUOps      int     `json:"rseq_cpu_ops"`
	GetcpuOps       int     `json:"getcpu_ops"`
}

func doctorMain(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("doctor", flag.ContinueOnError)
	fs.SetOutput(stderr)
	asJSON := fs.Bool("json", false, "print the report as JSON")
	timing := fs.Duration("time", 50*time.Millisecond, "total time spent timing rseq.CPU() against getcpu (0 skips the timing)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: rseq doctor [--json] [--time D]")
		fmt.Fprintln(stderr, "\nReport what rseq support this machine and this process have.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "rseq doctor: unexpected argument %q\n", fs.Arg(0))
		fs.Usage()
		return 2
	}
	if *timing < 0 {
		fmt.Fprintf(stderr, "rseq doctor: --time must not be negative, got %v\n", *timing)
		return 2
	}
	r := diagnose(*timing)
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(r); err != nil {
			fmt.Fprintln(stderr, "rseq doctor:", err)
			return 1
		}
		return 0
	}
	printDoctor(stdout, r)
	return 0
}

// diagnose gathers the report, spending about timing on the timing.
func diagnose(timing time.Duration) *doctorReport {
	f := rseq.Features()
	r := &doctorReport{
		GoVersion:        runtime.Version(),
		RuntimeVerified:  f.RuntimeVerified,
		Usable:           f.Usable,
		Reason:           f.Reason,
		Mode:             f.Mode.String(),
		FeatureSize:      f.FeatureSize,
		Alignment:        f.Alignment,
		FromAuxv:         f.FromAuxv,
		AreaSize:         f.AreaSize,
		Signature:        f.Signature,
		Fields:           f.Fields(),
		Cgo:              f.Cgo,
		Operations:       f.Operations,
		OperationsReason: f.OperationsReason,
		PossibleCPUs:     rseq.PossibleCPUs(),
		Glibc: glibcReport{
			Linked:     f.Glibc,
			RseqOffset: f.GlibcOffset,
			RseqSize:   f.GlibcSize,
			Registered: f.Glibc && f.GlibcSize != 0,
			Tunable:    glibcTunable(os.Getenv("GLIBC_TUNABLES"), "glibc.pthread.rseq"),
		},
	}
	if r.Fields == nil {
		r.Fields = []string{}
	}
	r.Notes = append([]string{}, f.Notes...)
	if f.Errno != 0 {
		r.Errno = errnoName(f.Errno)
		if r.Errno == "" {
			r.Errno = strconv.Itoa(int(f.Errno))
		}
	}
	r.Kernel, r.Machine = uname()

	// The three ids must come from one thread, and the thread must not
	// change between the reads.
	runtime.LockOSThread()
	r.CPU = rseq.CPU()
	r.Node = rseq.NodeID()
	r.ConcurrencyID = rseq.ConcurrencyID()
	r.AreaAddress = uint64(rseq.AreaAddress())
	runtime.UnlockOSThread()

	r.MembarrierCommands = -1
	if mask, err := membarrierQuery(); err != nil {
		r.MembarrierError = err.Error()
	} else {
		r.MembarrierCommands = mask
		const want = membarrierCmdPrivateExpeditedRseq | membarrierCmdRegisterPrivateExpeditedRseq
		r.MembarrierRseq = mask&want == want
	}
	r.PtraceRseqConfig, r.PtraceRseqConfigHow = ptraceRseqConfig(r.Kernel)
	if timing > 0 {
		r.Timing = timeCPU(timing)
	}
	return r
}

// glibcTunable returns the value of name in a GLIBC_TUNABLES string
// ("name=value:name=value"), the last one winning as in glibc, or "".
func glibcTunable(env, name string) string {
	val := ""
	for _, kv := range strings.Split(env, ":") {
		if k, v, ok := strings.Cut(kv, "="); ok && k == name {
			val = v
		}
	}
	return val
}

// membarrier commands (include/uapi/linux/membarrier.h).
const (
	membarrierCmdQuery                        = 0
	membarrierCmdPrivateExpeditedRseq         = 1 << 7
	membarrierCmdRegisterPrivateExpeditedRseq = 1 << 8
)

// ptraceRseqConfig decides whether PTRACE_GET_RSEQ_CONFIGURATION works by
// asking for the configuration of a child stopped at its exec, and from the
// kernel version where the child cannot be traced (ptrace refused by a
// container's policy, or no /proc/self/exe).
func ptraceRseqConfig(kernel string) (bool, string) {
	ok, err := probePtraceRseqConfig()
	return decidePtraceRseqConfig(kernel, ok, err)
}

// decidePtraceRseqConfig turns the probe's outcome (ok, or the error that
// prevented it) into the verdict and how it was reached.
func decidePtraceRseqConfig(kernel string, ok bool, err error) (bool, string) {
	if err == nil {
		if ok {
			return true, "asked a traced child: the request answered"
		}
		return false, "asked a traced child: the kernel does not know the request (EIO)"
	}
	maj, min, vok := kernelVersion(kernel)
	if !vok {
		return false, fmt.Sprintf("unknown: tracing a child failed (%v) and the kernel release %q does not parse", err, kernel)
	}
	verdict := ">="
	if maj < 5 || maj == 5 && min < 13 {
		verdict = "<"
	}
	return verdict == ">=", fmt.Sprintf("from the kernel version: %d.%d %s 5.13 (tracing a child failed: %v)", maj, min, verdict, err)
}

// kernelVersion parses the major and minor number of a release such as
// "6.18.44-generic".
func kernelVersion(release string) (major, minor int, ok bool) {
	parts := strings.SplitN(release, ".", 3)
	if len(parts) < 2 {
		return 0, 0, false
	}
	major, err1 := strconv.Atoi(parts[0])
	minorStr := parts[1]
	if i := strings.IndexFunc(minorStr, func(r rune) bool { return r < '0' || r > '9' }); i >= 0 {
		minorStr = minorStr[:i]
	}
	minor, err2 := strconv.Atoi(minorStr)
	if err1 != nil || err2 != nil {
		return 0, 0, false
	}
	return major, minor, true
}

// timeCPU times rseq.CPU() and the raw getcpu system call (where there is
// one) on one locked thread, each for half of total.
func timeCPU(total time.Duration) timingReport {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var t timingReport
	t.RseqCPUNs, t.RseqCPUOps = timeLoop(total/2, func(n int) {
		s := 0
		for range n {
			s += rseq.CPU()
		}
		runtime.KeepAlive(s)
	})
	if haveGetcpu {
		t.GetcpuSyscallNs, t.GetcpuOps = timeLoop(total/2, getcpuLoop)
	}
	return t
}

// timeLoop runs f in rounds of growing batches for d in all and returns the
// nanoseconds per operation of the fastest round (the least disturbed by
// other processes) and the number of operations.
func timeLoop(d time.Duration, f func(n int)) (float64, int) {
	const rounds = 5
	f(100) // warm up: registration, page faults
	best, ops, batch := 0.0, 0, 100
	for range rounds {
		n := 0
		start := time.Now()
		var elapsed time.Duration
		for elapsed < d/rounds {
			f(batch)
			n += batch
			elapsed = time.Since(start)
			if batch < 1<<20 {
				batch *= 2
			}
		}
		ops += n
		if ns := float64(elapsed.Nanoseconds()) / float64(n); best == 0 || ns < best {
			best = ns
		}
	}
	return best, ops
}

// printDoctor writes the report as an aligned table.
func printDoctor(w io.Writer, r *doctorReport) {
	yesNo := func(b bool) string {
		if b {
			return "yes"
		}
		return "no"
	}
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	row := func(k, format string, args ...any) { fmt.Fprintf(tw, "%s\t%s\n", k, fmt.Sprintf(format, args...)) }

	row("kernel", "%s (%s)", r.Kernel, r.Machine)
	row("go", "%s %s/%s, runtime assumptions verified: %s", r.GoVersion, runtime.GOOS, runtime.GOARCH, yesNo(r.RuntimeVerified))
	if r.Usable {
		row("rseq usable", "yes")
	} else {
		reason := r.Reason
		if r.Errno != "" && !strings.Contains(reason, r.Errno) {
			reason += " (" + r.Errno + ")"
		}
		row("rseq usable", "no: %s", reason)
	}
	modeText := map[string]string{
		"none":  "none: ids come from the getcpu system call",
		"own":   "own: this package registers an area on each thread",
		"glibc": "glibc: the package uses the area glibc registered on each thread",
	}[r.Mode]
	if modeText == "" {
		modeText = r.Mode
	}
	row("registration mode", "%s", modeText)
	src := "from the auxiliary vector"
	if !r.FromAuxv {
		src = "original ABI: the auxiliary vector has no rseq entries (kernel < 6.3)"
	}
	row("feature size", "%d bytes, alignment %d (%s)", r.FeatureSize, r.Alignment, src)
	if r.AreaSize != 0 {
		row("area size", "%d bytes", r.AreaSize)
	}
	if len(r.Fields) > 0 {
		row("fields", "%s", strings.Join(r.Fields, " "))
	} else {
		row("fields", "none (rseq not in use)")
	}
	if r.Usable {
		row("signature", "%#08x", r.Signature)
	}
	switch {
	case r.Operations:
		row("per-CPU operations", "restartable sequences")
	case r.OperationsReason != "":
		row("per-CPU operations", "fallback: %s", r.OperationsReason)
	default:
		row("per-CPU operations", "fallback")
	}
	switch {
	case !r.Glibc.Linked && r.Cgo:
		row("glibc", "rseq symbols not found (glibc older than 2.35, or another C library)")
	case !r.Glibc.Linked:
		row("glibc", "not in this process (it runs without cgo)")
	case r.Glibc.Registered:
		row("glibc", "registered: __rseq_offset %d, __rseq_size %d", r.Glibc.RseqOffset, r.Glibc.RseqSize)
	default:
		row("glibc", "did not register rseq: __rseq_offset %d, __rseq_size 0", r.Glibc.RseqOffset)
	}
	if r.Glibc.Tunable == "" {
		row("glibc.pthread.rseq", "not set in GLIBC_TUNABLES (glibc registers rseq on the threads of cgo programs)")
	} else {
		row("glibc.pthread.rseq", "%s (from GLIBC_TUNABLES)", r.Glibc.Tunable)
	}
	area := "none (fallback)"
	if r.AreaAddress != 0 {
		area = fmt.Sprintf("%#x", r.AreaAddress)
	}
	row("calling thread", "CPU %d, node %d, concurrency id %d, area %s", r.CPU, r.Node, r.ConcurrencyID, area)
	row("possible CPUs", "%d", r.PossibleCPUs)
	switch {
	case r.MembarrierError != "":
		row("membarrier rseq", "no: %s", r.MembarrierError)
	default:
		row("membarrier rseq", "%s (MEMBARRIER_CMD_QUERY = %#x)", yesNo(r.MembarrierRseq), r.MembarrierCommands)
	}
	row("ptrace rseq config", "%s (%s)", yesNo(r.PtraceRseqConfig), r.PtraceRseqConfigHow)
	if r.Timing.RseqCPUOps > 0 && r.Timing.GetcpuOps == 0 {
		row("timing", "rseq.CPU() %.1f ns/op (no getcpu system call here)", r.Timing.RseqCPUNs)
	} else if r.Timing.RseqCPUOps > 0 {
		ratio := ""
		if r.Timing.RseqCPUNs > 0 {
			ratio = fmt.Sprintf(", %.0fx", r.Timing.GetcpuSyscallNs/r.Timing.RseqCPUNs)
		}
		row("timing", "rseq.CPU() %.1f ns/op, getcpu system call %.1f ns/op%s", r.Timing.RseqCPUNs, r.Timing.GetcpuSyscallNs, ratio)
	}
	for i, n := range r.Notes {
		key := ""
		if i == 0 {
			key = "notes"
		}
		row(key, "%s", n)
	}
	tw.Flush()
}
