package main

import (
	"fmt"
	"os"
	"time"

	"github.com/gorseq/rseq/internal/perftrace"
	"golang.org/x/sys/unix"
)

// ringPages is the size of each CPU's ring buffer: 64 pages hold about
// 4000 abort records.
const ringPages = 64

// perfSource reads rseq:rseq_ip_fixup (and rseq:rseq_update) through
// perftrace.
type perfSource struct {
	s                        *perftrace.Session
	regsIP, start, len, abrt perftrace.Field
	notes                    []string
}

// openStatSource opens the events on every CPU, enabled.
func openStatSource(updates bool) (statSource, error) {
	tfs, err := perftrace.OpenTracefs()
	if err != nil {
		return nil, err
	}
	var notes []string
	if tfs.Mounted {
		notes = append(notes, "tracefs was not mounted: mounted it on "+tfs.Dir+" to read the event formats, and unmounted it")
	}
	fix, err := tfs.Format("rseq", "rseq_ip_fixup")
	if err != nil {
		tfs.Close()
		return nil, err
	}
	formats := []*perftrace.Format{fix}
	if updates {
		up, err := tfs.Format("rseq", "rseq_update")
		if err != nil {
			tfs.Close()
			return nil, err
		}
		formats = append(formats, up)
	}
	tfs.Close()
	src := &perfSource{notes: notes}
	for _, f := range []struct {
		name string
		dst  *perftrace.Field
	}{{"regs_ip", &src.regsIP}, {"start_ip", &src.start}, {"post_commit_offset", &src.len}, {"abort_ip", &src.abrt}} {
		fd, ok := fix.Field(f.name)
		if !ok {
			return nil, fmt.Errorf("the format of rseq:rseq_ip_fixup has no field %s (a kernel this tool does not know)", f.name)
		}
		*f.dst = fd
	}
	s, err := perftrace.Open(formats, ringPages)
	if err != nil {
		return nil, err
	}
	if err := s.Enable(); err != nil {
		s.Close()
		return nil, err
	}
	src.s = s
	return src, nil
}

func (p *perfSource) Wait(d time.Duration) error { return p.s.Wait(d) }

func (p *perfSource) Read(abort func(abortEvent), update func(pid int)) {
	p.s.Read(func(smp perftrace.Sample) {
		if smp.Event == 1 {
			update(smp.PID)
			return
		}
		ip, ok1 := p.regsIP.Uint(smp.Raw)
		start, ok2 := p.start.Uint(smp.Raw)
		n, ok3 := p.len.Uint(smp.Raw)
		a, ok4 := p.abrt.Uint(smp.Raw)
		if ok1 && ok2 && ok3 && ok4 {
			abort(abortEvent{PID: smp.PID, TID: smp.TID, IP: ip, Start: start, Len: n, Abort: a})
		}
	})
}

func (p *perfSource) Lost() (uint64, uint64) { return p.s.Lost(0), p.s.Lost(1) }

func (p *perfSource) Stop() error     { return p.s.Disable() }
func (p *perfSource) Close()          { p.s.Close() }
func (p *perfSource) Notes() []string { return p.notes }

// isTerminal reports whether f is a terminal (the table is then redrawn in
// place).
func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}
