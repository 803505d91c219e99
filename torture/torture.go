//go:build linux && (amd64 || arm64)

package torture

import (
	"fmt"
	"math/rand"
	"time"

	"github.com/gorseq/rseq/internal/ptrace"
	"github.com/gorseq/rseq/scan"
	"golang.org/x/sys/unix"
)

// The tracer's shared state and the report's totals. The jobs live in
// their own files: process.go (process lifecycle), space.go (address
// spaces), breakpoint.go (the breakpoint engine), abort.go (abort
// emulation), inject.go (random injection) and stall.go (stalls and
// migrating aborts).

// section is the shared state of one section, aggregated over every address
// space it is mapped into.
type section struct {
	rep  *SectionReport
	hits []int // aborts per point
	offs []uint64
	// reached counts the stops at each point, whatever came of them;
	// unprot those where rseq_cs did not cover the point.
	reached, unprot []int
	// why says why a point could not be armed or aborted, for the
	// report of a point that ends up missed ("" when nothing failed).
	why []string
	// post is the post-commit offset (the first byte after the commit),
	// where the post-commit stalls stop threads; commit is the index of
	// the commit instruction (the last point), where the commit stalls do.
	post   uint64
	commit int
	// noCommitStalls is set when a commit stall was due but could not be
	// made: the commit point is no longer armed for them.
	noCommitStalls bool
	// movedWindows counts the commit-stall windows opened on another CPU
	// than the thread's.
	movedWindows int
}

func (s *section) complete(i, reps int) bool { return s.hits[i] >= reps }

type tracer struct {
	cfg      Config
	reps     int
	root     int
	threads  map[int]*thread
	sections map[string]*section
	files    map[string]*scan.Object
	order    []string
	rep      Report
	stopped  bool // torture over: breakpoints removed
	rng      *rand.Rand
	lastPin  *thread
	start    time.Time
	// noted holds the keys of the problems already noted once.
	noted map[string]bool
	// stopDue and rescanDue ask the tracer's thread to end the torture
	// and to rescan the address spaces (see periodic and doDue).
	stopDue, rescanDue bool
	// stalls is the number of stalls of each kind wanted per section,
	// migrate whether forced aborts may move threads (see stall.go).
	stalls  int
	migrate bool
	// stall is the stall in progress, if any: one at a time.
	stall *stall
	// stalls2 is set where commit stalls are possible: two CPUs or more.
	stalls2 bool
	// fullMask is the program's CPU affinity when it started.
	fullMask unix.CPUSet
}

func (t *tracer) note(format string, args ...any) {
	if len(t.rep.Notes) < 50 {
		t.rep.Notes = append(t.rep.Notes, fmt.Sprintf(format, args...))
	}
}

// noteOnce notes a problem the first time key is seen.
func (t *tracer) noteOnce(key, format string, args ...any) {
	if t.noted[key] {
		return
	}
	t.noted[key] = true
	t.note(format, args...)
}

// gone reports whether process or thread id has exited (or is exiting):
// requests failing on it need no note.
func gone(id int) bool {
	st := ptrace.ThreadState(id, id)
	return st == 0 || st == 'Z' || st == 'X'
}

// sectionName names a section for a note.
func sectionName(r *SectionReport) string {
	if r.Symbol != "" {
		return r.Symbol
	}
	return fmt.Sprintf("%s@%#x", r.Object, r.Start)
}

// totals fills the report's per-section and overall figures.
//
// A section was entered when a thread stopped at one of its points. A
// point not covered is unreachable in this run when nothing stopped it
// from being covered: it was never reached, nothing failed there, every
// point of the section that was reached is covered (so no pass was still
// being aborted before it), and the torture ran to its end (no --timeout,
// no interruption). Any other point not covered is missed, with the reason.
func (t *tracer) totals() {
	rep := &t.rep
	rep.Sections = rep.Sections[:0]
	rep.Points, rep.Covered = 0, 0
	rep.Entered, rep.NotEntered, rep.Unreachable = 0, 0, 0
	rep.EnteredPoints, rep.EnteredCovered = 0, 0
	rep.CommitStalls, rep.PostCommitStalls = 0, 0
	cut := rep.TimedOut || rep.Interrupted
	for _, key := range t.order {
		sec := t.sections[key]
		r := *sec.rep
		r.Covered, r.Missed, r.Reasons, r.Unreachable = 0, nil, nil, nil
		r.Entered = false
		pending := false // a reached point still needs aborts
		for i, h := range sec.hits {
			if sec.reached[i] > 0 {
				r.Entered = true
				if h < t.reps {
					pending = true
				}
			}
		}
		for i, h := range sec.hits {
			if h >= t.reps {
				r.Covered++
				continue
			}
			off := sec.offs[i]
			why := sec.why[i]
			switch {
			case why != "":
			case sec.reached[i] > 0:
				why = fmt.Sprintf("reached %d time(s), aborted %d of the %d times wanted", sec.reached[i], h, t.reps)
				if u := sec.unprot[i]; u > 0 {
					why += fmt.Sprintf("; %d time(s) rseq_cs did not cover it (run without a registration, or with rseq_cs clear)", u)
				}
				if cut {
					why += "; the torture ended first"
				}
			case !r.Entered:
			case cut:
				why = "not reached before the torture ended"
			case pending:
				why = "not reached: the passes that could reach it were still being aborted at earlier points"
			default:
				r.Unreachable = append(r.Unreachable, off)
				continue
			}
			r.Missed = append(r.Missed, off)
			if why == "" {
				why = "the section was never entered"
				if cut {
					why = "the section was not entered before the torture ended"
				}
			}
			r.Reasons = append(r.Reasons, why)
		}
		rep.Points += r.Points
		rep.Covered += r.Covered
		if r.Points > 0 {
			if r.Entered {
				rep.Entered++
				rep.EnteredPoints += r.Points - len(r.Unreachable)
				rep.EnteredCovered += r.Covered
			} else {
				rep.NotEntered++
			}
		}
		rep.Unreachable += len(r.Unreachable)
		rep.CommitStalls += r.CommitStalls
		rep.PostCommitStalls += r.PostCommitStalls
		rep.Sections = append(rep.Sections, r)
	}
}
