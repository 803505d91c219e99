package testenv

import (
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"

	"github.com/gorseq/rseq"
)

// AbortLedger keeps, for a test binary in a qemu guest, the account of
// aborts over the whole run. Under TCG an interrupt lands only between
// translated blocks and a guest runs few passes through a section, so a
// test's own abort floor there is a target that a slow host can miss by
// chance (cmpStore once took 2 aborts in a minute on the CI machine, with
// another guest on its two cores). The ledger turns those targets into a
// requirement the run can always meet when restarts work: the sections the
// tests put under fire must have aborted over the run (each of them, with
// EachSection; at least one of them otherwise). The torture package forces
// an abort at every instruction of every section besides.
//
// Outside a qemu guest the ledger stays out of the way: tests apply their
// floors themselves.
type AbortLedger struct {
	// EachSection requires every targeted section to have aborted, not
	// only one of them.
	EachSection bool

	mu       sync.Mutex
	targeted map[string]bool
	short    int
}

// Target records that a test ran the named sections under fire, where
// they can abort (Abortable).
func (l *AbortLedger) Target(sections ...string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.targeted == nil {
		l.targeted = map[string]bool{}
	}
	for _, s := range sections {
		if Abortable(s) {
			l.targeted[s] = true
		}
	}
}

// Short records that a test ended with a section short of its own target.
func (l *AbortLedger) Short() {
	l.mu.Lock()
	l.short++
	l.mu.Unlock()
}

// Wrap returns m with the ledger's check after its run.
func (l *AbortLedger) Wrap(m interface{ Run() int }) interface{ Run() int } {
	return ledgerRun{l, m}
}

type ledgerRun struct {
	l *AbortLedger
	m interface{ Run() int }
}

func (r ledgerRun) Run() int {
	before := AbortCounts()
	code := r.m.Run()
	if code != 0 || !InQemu() || !rseq.Features().Operations {
		return code
	}
	if err := r.l.check(before, AbortCounts()); err != nil {
		fmt.Fprintln(os.Stderr, "FAIL:", err)
		return 1
	}
	return code
}

// check compares the abort counts before and after the run, prints them
// and returns an error when the run fails the ledger's requirement.
func (l *AbortLedger) check(before, after map[string]uint64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	var total uint64
	var parts, never []string
	for name, n := range after {
		if d := n - before[name]; d != 0 && Abortable(name) {
			total += d
			parts = append(parts, fmt.Sprintf("%s=%d", name, d))
		}
	}
	for name := range l.targeted {
		if after[name] == before[name] {
			never = append(never, name)
		}
	}
	sort.Strings(parts)
	sort.Strings(never)
	fmt.Fprintf(os.Stderr, "qemu: aborts over the run: %s (%d tests short of their own target)\n", strings.Join(parts, " "), l.short)
	switch {
	case len(l.targeted) == 0:
		return nil
	case l.EachSection && len(never) > 0:
		return fmt.Errorf("sections %s never aborted over the whole run under fire in this guest: their restart path is not proven here", strings.Join(never, ", "))
	case total == 0:
		return fmt.Errorf("no section aborted over the whole run under fire in this guest")
	}
	return nil
}

// AbortCounts returns every section's abort count (rseq.Stats), by name.
func AbortCounts() map[string]uint64 {
	m := map[string]uint64{}
	for _, s := range rseq.Stats() {
		m[s.Name] = s.Aborts
	}
	return m
}
