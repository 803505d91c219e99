package percpu

import (
	"math"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/gorseq/rseq"
)

// MaxHistogramBounds is the most bucket upper bounds a Histogram takes.
const MaxHistogramBounds = 1 << 12

// Histogram counts observations in fixed buckets, sharded per CPU, with the
// bucket semantics of Prometheus and of OpenTelemetry's explicit-bucket
// histograms: an observation v goes into the first bucket whose upper bound
// b has v <= b, and into the last, unbounded (+Inf) bucket when there is no
// such bound (NaN goes there too). A Histogram also keeps the count and the
// sum of its observations.
//
// Observe finds the bucket in Go (a linear search up to 32 bounds, a binary
// search beyond), then takes the calling CPU's shard with one restartable
// section (rseq.CompareAndStoreCPU, which reads the CPU, finds the shard
// and stores 1 in its lock word if it holds 0, and commits only if the
// thread still runs on that CPU: one call, no atomic instruction), adds 1
// to the bucket and the count and v to the sum with plain stores, and releases the shard with a release-ordered store, as
// Value.Update does. Two goroutines contend for a shard only when one was
// descheduled or moved while holding it; the other spins briefly, then
// yields.
//
// Snapshot reads the shards from outside, one at a time: for each shard
// with observations it stores 2 into the free lock word
// (rseq.CompareAndStoreRemote), fences that CPU (rseq.Fence: one
// membarrier system call, a few microseconds, so that no section that saw
// the word free can still take it), copies the shard and frees it. Shards
// that never saw an observation are skipped without a fence. Observers on
// the CPU being read wait for that copy (well under a microsecond for tens
// of buckets) and nothing else. Cost: one fence per CPU that observed, a
// few microseconds each, plus rseq.Slots() loads: 4 to 6 µs for 16
// buckets on both CPUs of the 2-core x86-64 VM this was developed on
// (BenchmarkHistogramSnapshot; client_golang's Write takes as long).
//
// Consistency: every observation is counted exactly once, in its bucket,
// the count and the sum together, never partly. A snapshot sees each
// shard in a state between two observations, so its Count is the sum of
// its bucket counts and its Sum is the sum of the same observations, even
// while observations run. It is not a cut across CPUs at one instant: an
// observation on a CPU already read is left for the next snapshot, one on
// a CPU not yet read is included. Successive snapshots never go back. The
// sum is a float64 added per shard in observation order, then across
// shards: integer-valued observations sum exactly while the sums stay
// below 2^53.
//
// Memory: rseq.Slots() shards of (3 + buckets) * 8 bytes (lock word, count,
// sum, then one count per bucket, the +Inf one included), each rounded up
// to 128 bytes: one 128-byte shard per CPU for up to 13 buckets (12
// bounds, Prometheus' default 11 among them), 256 bytes for up to 29.
//
// Where the membarrier fence does not work when the Histogram is made, it
// runs in locked mode: Observe takes the shard's lock word with an atomic
// compare-and-swap instead of a section, and Snapshot needs no fence. If
// the fence starts failing later, Snapshot returns the error (see there).
//
// Make it with NewHistogram: the zero Histogram has no buckets, and its
// methods panic naming NewHistogram.
type Histogram struct {
	bounds []float64 // upper bounds, strictly increasing, all finite or -Inf
	mem    []uint64  // keeps the shards alive
	base   unsafe.Pointer
	stride uintptr
	fenced bool
	mu     sync.Mutex // serializes Snapshot
}

// Layout of a Histogram shard, in words: the lock word, the count, the bits
// of the float64 sum, then one count per bucket.
const (
	histLock    = 0
	histCount   = 1
	histSum     = 2
	histBuckets = 3
)

// rseq.CompareAndStoreCPU locks the word at the start of the shard: the
// lock word must stay the first (this fails to compile otherwise).
const _ = -uint(histLock)

// NewHistogram returns a Histogram with the given bucket upper bounds (and
// the +Inf bucket after them). The bounds must be strictly increasing and
// not NaN; a last bound of +Inf is dropped, as Prometheus does, since the
// +Inf bucket is always there. No bounds at all gives one bucket, +Inf:
// just a count and a sum. The slice is copied.
func NewHistogram(bounds []float64) (*Histogram, error) {
	if n := len(bounds); n > 0 && math.IsInf(bounds[n-1], 1) {
		bounds = bounds[:n-1]
	}
	if len(bounds) > MaxHistogramBounds {
		return nil, errorf("NewHistogram: %d bucket bounds, more than %d", len(bounds), MaxHistogramBounds)
	}
	for i, b := range bounds {
		switch {
		case math.IsNaN(b):
			return nil, errorf("NewHistogram: bucket bound %d is NaN", i)
		case math.IsInf(b, 1):
			return nil, errorf("NewHistogram: bucket bound %d is +Inf, which only the last may be", i)
		case i > 0 && b <= bounds[i-1]:
			return nil, errorf("NewHistogram: bucket bounds not strictly increasing: %v after %v", b, bounds[i-1])
		}
	}
	h := &Histogram{bounds: append([]float64(nil), bounds...), fenced: fenced()}
	nw := uintptr(histBuckets + len(bounds) + 1)
	h.stride = (nw*8 + line - 1) / line * line
	h.mem, h.base = words(rseq.Slots(), h.stride)
	return h, nil
}

// Bounds returns the bucket upper bounds, without the +Inf bucket's. The
// caller must not change the slice.
func (h *Histogram) Bounds() []float64 {
	h.check()
	return h.bounds
}

// check panics for the zero Histogram.
func (h *Histogram) check() {
	if h.base == nil {
		zeroUse("Histogram", "NewHistogram")
	}
}

// bucket returns the index of v's bucket: the first bound >= v, or
// len(bounds) for the +Inf bucket (NaN included).
func (h *Histogram) bucket(v float64) int {
	b := h.bounds
	if len(b) <= 32 {
		for i, x := range b {
			if v <= x {
				return i
			}
		}
		return len(b)
	}
	lo, hi := 0, len(b) // the answer is in [lo, hi]
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if v <= b[m] {
			hi = m
		} else {
			lo = m + 1
		}
	}
	return lo
}

// shardWord returns word i of the shard of slot.
func (h *Histogram) shardWord(slot, i int) *uintptr {
	return (*uintptr)(unsafe.Add(h.base, uintptr(slot)*h.stride+uintptr(i)*8))
}

// Observe adds v to the histogram: one restartable section on the calling
// thread's CPU to take its shard, then plain stores (see the type).
func (h *Histogram) Observe(v float64) {
	h.check()
	i := h.bucket(v)
	// The uncontended case in line, one call that takes the calling CPU's
	// shard; lock retries and handles locked mode.
	slot, ok := 0, false
	if h.fenced {
		slot, ok = rseq.CompareAndStoreCPU(h.base, h.stride, unlocked, lockedHere)
	}
	if !ok {
		slot = h.lock()
	}
	shard := unsafe.Add(h.base, uintptr(slot)*h.stride)
	b := (*uint64)(unsafe.Add(shard, (histBuckets+i)*8))
	*b++
	s := (*float64)(unsafe.Add(shard, histSum*8))
	*s += v
	c := (*uintptr)(unsafe.Add(shard, histCount*8))
	// The count is read without the lock by Snapshot to skip unused
	// shards, so it is stored as a word other threads may load.
	setWord(c, *c+1)
	setWord((*uintptr)(shard), unlocked) // release: the stores above come first
}

// lock takes the lock of the calling CPU's shard and returns its slot.
func (h *Histogram) lock() int {
	if !h.fenced {
		return h.lockAtomic()
	}
	tries := 0
	for {
		if slot, ok := rseq.CompareAndStoreCPU(h.base, h.stride, unlocked, lockedHere); ok {
			return slot
		}
		backoff(&tries) // held: a goroutine descheduled in Observe, or Snapshot
	}
}

// lockAtomic is lock in locked mode: an atomic compare-and-swap on the
// shard of the CPU the thread runs on (any shard would be correct).
func (h *Histogram) lockAtomic() int {
	tries := 0
	for {
		slot := lockedSlot()
		if rseq.CompareAndStoreRemote(h.shardWord(slot, histLock), unlocked, lockedHere) {
			return slot
		}
		backoff(&tries)
	}
}

// HistogramSnapshot is what Histogram.Snapshot returns.
type HistogramSnapshot struct {
	// Bounds are the bucket upper bounds, without +Inf's: the Histogram's
	// own slice, not to be changed.
	Bounds []float64
	// Counts holds the observations of each bucket (not cumulative):
	// len(Bounds)+1 entries, the last for the +Inf bucket.
	Counts []uint64
	// Count is the number of observations: the sum of Counts.
	Count uint64
	// Sum is the sum of the same observations.
	Sum float64
}

// Cumulative returns the cumulative bucket counts, as Prometheus exposes
// them: entry i counts the observations <= Bounds[i], and the last one (the
// +Inf bucket) equals Count. It allocates a new slice.
func (s *HistogramSnapshot) Cumulative() []uint64 {
	out := make([]uint64, len(s.Counts))
	var t uint64
	for i, c := range s.Counts {
		t += c
		out[i] = t
	}
	return out
}

// Snapshot returns the histogram's buckets, count and sum, consistent with
// each other (see the type). It allocates the Counts slice; SnapshotInto
// reuses one.
func (h *Histogram) Snapshot() (HistogramSnapshot, error) {
	var s HistogramSnapshot
	err := h.SnapshotInto(&s)
	return s, err
}

// SnapshotInto is Snapshot into s, reusing s.Counts when it has the
// capacity. Calls of Snapshot and SnapshotInto are serialized.
//
// It returns an error, and stops, only if it cannot exclude the
// restartable sections of a CPU (the membarrier system call refused after
// the Histogram was made, by a seccomp filter installed later, say). s then
// holds the shards read before, still consistent with each other but not
// complete; the Histogram keeps every observation and stays usable, and a
// later snapshot, once the fence works again, sees everything.
func (h *Histogram) SnapshotInto(s *HistogramSnapshot) error {
	h.check()
	n := len(h.bounds) + 1
	if cap(s.Counts) < n {
		s.Counts = make([]uint64, n)
	}
	s.Bounds, s.Counts, s.Count, s.Sum = h.bounds, s.Counts[:n], 0, 0
	clear(s.Counts)
	h.mu.Lock()
	defer h.mu.Unlock()
	for slot := 0; slot < rseq.Slots(); slot++ {
		if atomic.LoadUintptr(h.shardWord(slot, histCount)) == 0 {
			// Nothing observed here yet; an observation that commits
			// after this load is one the snapshot may leave out.
			continue
		}
		lw := h.shardWord(slot, histLock)
		if _, err := lockRemote(lw, slot, h.fenced,
			func(w uintptr) bool { return w == unlocked },
			func(uintptr) uintptr { return lockedFar }); err != nil {
			return err
		}
		shard := unsafe.Add(h.base, uintptr(slot)*h.stride)
		s.Count += uint64(atomic.LoadUintptr(h.shardWord(slot, histCount)))
		s.Sum += *(*float64)(unsafe.Add(shard, histSum*8))
		for i := range s.Counts {
			s.Counts[i] += *(*uint64)(unsafe.Add(shard, uintptr(histBuckets+i)*8))
		}
		unlockRemote(lw, lockedFar, unlocked)
	}
	return nil
}
