package torture

import (
	"io"
	"os"
	"time"

	"github.com/gorseq/rseq/scan"
)

// Config says what to run and how hard to torture it.
type Config struct {
	// Args is the command and its arguments; Args[0] is looked up in PATH.
	Args []string
	// Env is the environment (nil: this process's).
	Env []string
	// Dir is the working directory ("" : this process's).
	Dir string
	// Stdin, Stdout and Stderr are the program's standard files (nil:
	// /dev/null for input, discarded output).
	Stdin, Stdout, Stderr *os.File
	// Reps is the number of aborts forced at each instruction (default 1).
	Reps int
	// Timeout stops the torture after this long (0: no limit); the
	// program then runs on untouched for Grace before it is killed.
	Timeout time.Duration
	// Grace bounds how long the program may run after Timeout (default
	// 10s).
	Grace time.Duration
	// Inject is the mean interval between random real aborts (CPU
	// migrations, SIGURG); 0 turns them off.
	Inject time.Duration
	// Filter, if not nil, selects the sections to torture.
	Filter func(*scan.Section) bool
	// Progress, if not nil, receives a progress line every ProgressEvery
	// (default 1s).
	Progress      io.Writer
	ProgressEvery time.Duration
	// Seed seeds the random injection (0: time-based).
	Seed int64
}

// SectionReport is the outcome for one critical section.
type SectionReport struct {
	Object string `json:"object"`
	Symbol string `json:"symbol,omitempty"`
	// Start and Abort are link-time addresses (load address minus bias).
	Start uint64 `json:"start"`
	Abort uint64 `json:"abort"`
	// Points is the number of instruction boundaries in the section,
	// Covered how many were aborted Reps times.
	Points  int `json:"points"`
	Covered int `json:"covered"`
	// Aborts counts the aborts forced in the section.
	Aborts int `json:"aborts"`
	// Unprotected counts breakpoint hits while rseq_cs did not cover the
	// instruction (stepped over without an abort).
	Unprotected int `json:"unprotected"`
	// SignalAborts counts signals delivered to a handler while a thread
	// was inside the section with rseq_cs set: real aborts by the kernel
	// (random SIGURG injections, or the program's own signals).
	SignalAborts int `json:"signal_aborts"`
	// BadSignature counts aborts that found a wrong signature before
	// abort_ip (the kernel kills the thread with SIGSEGV; so did torture).
	BadSignature int `json:"bad_signature"`
	// Missed lists the offsets of the points not covered.
	Missed []uint64 `json:"missed,omitempty"`
	// Note explains a section that could not be tortured.
	Note string `json:"note,omitempty"`
}

// Report is the outcome of a run.
type Report struct {
	Sections []SectionReport `json:"sections"`
	Points   int             `json:"points"`
	Covered  int             `json:"covered"`
	Aborts   int             `json:"aborts"`
	// Migrations and Signals count the random real aborts attempted.
	Migrations int `json:"migrations"`
	Signals    int `json:"signals"`
	// Exited is true when the program exited normally with ExitCode;
	// otherwise Signal killed it.
	Exited   bool   `json:"exited"`
	ExitCode int    `json:"exit_code"`
	Signal   string `json:"signal,omitempty"`
	// Killed is set when torture killed the program at the end of Grace.
	Killed bool `json:"killed"`
	// TimedOut is set when Timeout ended the torture.
	TimedOut bool          `json:"timed_out"`
	Duration time.Duration `json:"duration_ns"`
	// LastAbort is when the last abort was forced, from the start.
	LastAbort time.Duration `json:"last_abort_ns"`
	// Processes and Threads count the tasks followed.
	Processes int `json:"processes"`
	Threads   int `json:"threads"`
	// Notes holds scan errors and other remarks.
	Notes []string `json:"notes,omitempty"`
}

// Coverage returns Covered/Points as a percentage (100 with no points).
func (r *Report) Coverage() float64 {
	if r.Points == 0 {
		return 100
	}
	return 100 * float64(r.Covered) / float64(r.Points)
}

// AbortsPerSecond returns the forced aborts per second from the start of the
// program to the last abort.
func (r *Report) AbortsPerSecond() float64 {
	if r.LastAbort <= 0 {
		return 0
	}
	return float64(r.Aborts) / r.LastAbort.Seconds()
}
