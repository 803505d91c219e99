//go:build linux && (amd64 || arm64)

package torture

import (
	"sort"

	"github.com/gorseq/rseq/internal/ptrace"
	"golang.org/x/sys/unix"
)

// Random injection of real aborts: CPU migrations and SIGURG.

// inject forces a real abort at random: it pins a random thread to a CPU
// other than its current one (a migration aborts a section in progress),
// undoing the previous pin, and sends SIGURG where the program catches it.
func (t *tracer) inject() {
	if t.lastPin != nil {
		t.unpin(t.lastPin)
		t.lastPin = nil
	}
	var cands []*thread
	for _, th := range t.threads {
		if !th.orphan && !th.expectStop && th.stepping == nil && th.sp != nil {
			cands = append(cands, th)
		}
	}
	if len(cands) == 0 {
		return
	}
	sort.Slice(cands, func(i, j int) bool { return cands[i].tid < cands[j].tid })
	th := cands[t.rng.Intn(len(cands))]
	var mask unix.CPUSet
	if unix.SchedGetaffinity(th.tid, &mask) == nil && mask.Count() > 1 {
		cur := ptrace.LastCPU(th.tid)
		var cpus []int
		for c := 0; c < len(mask)*64; c++ {
			if mask.IsSet(c) && c != cur {
				cpus = append(cpus, c)
			}
		}
		if len(cpus) > 0 {
			var one unix.CPUSet
			one.Set(cpus[t.rng.Intn(len(cpus))])
			if unix.SchedSetaffinity(th.tid, &one) == nil {
				if !th.pinned {
					th.pinned, th.mask = true, mask
				}
				t.lastPin = th
				t.rep.Migrations++
			}
		}
	}
	if catches(th.sp.pid, unix.SIGURG) {
		if unix.Tgkill(th.sp.pid, th.tid, unix.SIGURG) == nil {
			t.rep.Signals++
		}
	}
}

// unpinAll gives every thread torture pinned its affinity back, unless a
// stall is in progress (finishStall calls it again when it ends).
func (t *tracer) unpinAll() {
	if t.stall != nil {
		return
	}
	for _, th := range t.threads {
		t.unpin(th)
	}
	t.lastPin = nil
}

func (t *tracer) unpin(th *thread) {
	if th.pinned {
		unix.SchedSetaffinity(th.tid, &th.mask)
		th.pinned, th.moved = false, false
	}
}
