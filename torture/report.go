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
	// Stop, if not nil, ends the run early when it is closed (on SIGINT,
	// say): the program is killed and Run returns the partial report with
	// Interrupted set.
	Stop <-chan struct{}
	// Progress, if not nil, receives a progress line every ProgressEvery
	// (default 1s).
	Progress      io.Writer
	ProgressEvery time.Duration
	// Seed seeds the random injection (0: time-based).
	Seed int64
	// Stalls is the number of commit stalls and of post-commit stalls
	// to make in each section (0: DefaultStalls; negative: none). A
	// post-commit stall holds a thread right after its commit while the
	// other threads run on that CPU; a commit stall holds a thread at its
	// commit, after a migrating abort, while the others run everywhere
	// else (see the package documentation).
	Stalls int
	// StallTime is how long a stall lets the other threads run (0:
	// DefaultStallTime).
	StallTime time.Duration
	// NoMigrate keeps forced aborts from moving threads to another CPU
	// (and so turns the commit stalls off). By default about half of
	// them do, and every thread moved is stalled at the commit of its
	// restarted pass.
	NoMigrate bool
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
	// MigratedAborts counts the forced aborts that moved the thread to
	// another CPU before it resumed.
	MigratedAborts int `json:"migrated_aborts"`
	// CommitStalls counts the passes held at their commit instruction
	// (after a migrating abort) while the other threads ran on the other
	// CPUs; PostCommitStalls the passes held right after their commit
	// while the other threads ran on their CPU.
	CommitStalls     int `json:"commit_stalls"`
	PostCommitStalls int `json:"post_commit_stalls"`
	// Entered is set when a thread reached one of the section's points.
	Entered bool `json:"entered"`
	// Missed lists the offsets of the points not covered, other than the
	// unreachable ones, and Reasons says why for each (same order).
	Missed  []uint64 `json:"missed,omitempty"`
	Reasons []string `json:"missed_reasons,omitempty"`
	// Unreachable lists the offsets of the points of an entered section
	// that no pass reached although nothing kept them from it (a loop
	// that never iterates in this run, a branch never taken): the
	// program's run never needed them.
	Unreachable []uint64 `json:"unreachable,omitempty"`
	// Note explains a section that could not be tortured.
	Note string `json:"note,omitempty"`
}

// Report is the outcome of a run.
type Report struct {
	Sections []SectionReport `json:"sections"`
	// Points and Covered count every point of every section.
	Points  int `json:"points"`
	Covered int `json:"covered"`
	// Entered and NotEntered count the sections (with points) the
	// program entered and never entered; Unreachable the points of
	// entered sections unreachable in this run (see SectionReport).
	Entered     int `json:"entered"`
	NotEntered  int `json:"not_entered"`
	Unreachable int `json:"unreachable"`
	// EnteredPoints counts the points of the entered sections, less the
	// unreachable ones, and EnteredCovered those covered: the default
	// measure of coverage (EnteredCoverage).
	EnteredPoints  int `json:"entered_points"`
	EnteredCovered int `json:"entered_covered"`
	Aborts         int `json:"aborts"`
	// Stalls is the number of stalls of each kind wanted per section;
	// CommitStalls and PostCommitStalls are the totals made.
	Stalls           int `json:"stalls"`
	CommitStalls     int `json:"commit_stalls"`
	PostCommitStalls int `json:"post_commit_stalls"`
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
	TimedOut bool `json:"timed_out"`
	// Interrupted is set when Config.Stop ended the run: the program was
	// killed and the report is partial.
	Interrupted bool          `json:"interrupted"`
	Duration    time.Duration `json:"duration_ns"`
	// LastAbort is when the last abort was forced, from the start.
	LastAbort time.Duration `json:"last_abort_ns"`
	// Processes and Threads count the tasks followed.
	Processes int `json:"processes"`
	Threads   int `json:"threads"`
	// Notes holds scan errors and other remarks.
	Notes []string `json:"notes,omitempty"`
}

// Coverage returns Covered/Points, every point of every section, as a
// percentage (100 with no points).
func (r *Report) Coverage() float64 {
	return percent(r.Covered, r.Points)
}

// EnteredCoverage returns EnteredCovered/EnteredPoints as a percentage
// (100 with no points): the coverage of the sections the program entered,
// less their points unreachable in this run.
func (r *Report) EnteredCoverage() float64 {
	return percent(r.EnteredCovered, r.EnteredPoints)
}

func percent(n, of int) float64 {
	if of == 0 {
		return 100
	}
	return 100 * float64(n) / float64(of)
}

// StallsDone reports whether every section got the stalls wanted: its
// post-commit stalls, and its commit stalls too when commits is true (they
// need a program allowed on two CPUs or more).
func (r *Report) StallsDone(commits bool) bool {
	for _, s := range r.Sections {
		if s.Points == 0 {
			continue
		}
		if s.PostCommitStalls < r.Stalls || commits && s.CommitStalls < r.Stalls {
			return false
		}
	}
	return true
}

// AbortsPerSecond returns the forced aborts per second from the start of the
// program to the last abort.
func (r *Report) AbortsPerSecond() float64 {
	if r.LastAbort <= 0 {
		return 0
	}
	return float64(r.Aborts) / r.LastAbort.Seconds()
}
