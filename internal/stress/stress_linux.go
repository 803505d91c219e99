//go:build linux

package stress

import (
	"math/rand/v2"
	"runtime"
	"slices"
	"time"

	"golang.org/x/sys/unix"
)

type cpuSet = unix.CPUSet

func getAffinity(set *cpuSet) error          { return unix.SchedGetaffinity(0, set) }
func setAffinity(tid int, set *cpuSet) error { return unix.SchedSetaffinity(tid, set) }
func gettid() int                            { return unix.Gettid() }
func canSignal() error                       { return nil }

func (f *fire) affinityStorm() {
	defer f.wg.Done()
	var cpus []int
	for i := 0; i < len(f.origMask)*64; i++ {
		if f.origMask.IsSet(i) {
			cpus = append(cpus, i)
		}
	}
	if len(cpus) == 0 {
		return
	}
	for !f.stopped() {
		for _, tid := range tasks() {
			var set unix.CPUSet
			for _, c := range cpus {
				if rand.IntN(2) == 0 {
					set.Set(c)
				}
			}
			if set.Count() == 0 {
				set.Set(cpus[rand.IntN(len(cpus))])
			}
			// ESRCH for a thread that exited meanwhile is expected.
			if unix.SchedSetaffinity(tid, &set) == nil {
				f.affCalls.Add(1)
			}
		}
		f.affRounds.Add(1)
		pause(f.opts.AffinityInterval, 200*time.Microsecond)
	}
}

func (f *fire) signalStorm() {
	defer f.wg.Done()
	// A thread of its own that sleeps in the kernel between rounds, so the
	// storm keeps its pace however busy the Go scheduler is.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	d := f.opts.SignalInterval
	if d <= 0 {
		d = 100 * time.Microsecond
	}
	ts := unix.NsecToTimespec(d.Nanoseconds())
	pid := unix.Getpid()
	var tids []int
	for k := 0; !f.stopped(); k++ {
		if k%16 == 0 {
			tids = tasks() // threads come and go; refresh now and then
		}
		for _, tid := range tids {
			// ESRCH for a thread that exited meanwhile is expected.
			if unix.Tgkill(pid, tid, unix.SIGURG) == nil {
				f.signals.Add(1)
			}
		}
		_ = unix.Nanosleep(&ts, nil)
	}
}

// signalCost measures what one signal costs this process: the round trip
// of a SIGURG sent to the calling thread (the system call, the delivery,
// Go's handler and the return). It returns the median of 15, which a
// preemption in the middle of one does not move; 0 if tgkill fails.
func signalCost() time.Duration {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	pid, tid := unix.Getpid(), unix.Gettid()
	var d [15]time.Duration
	for i := range d {
		start := time.Now()
		if unix.Tgkill(pid, tid, unix.SIGURG) != nil {
			return 0
		}
		d[i] = time.Since(start)
	}
	slices.Sort(d[:])
	return d[len(d)/2]
}
