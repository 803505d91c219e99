//go:build linux && (amd64 || arm64)

package rseq

import (
	"bufio"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// sliceCtrl reads slice_ctrl of the calling thread's area: request in the
// low byte, granted in the next.
func sliceCtrl(t *testing.T) uint32 {
	t.Helper()
	v, ok := areaField(offSliceCtrl)
	if !ok {
		t.Fatal("the thread has no area")
	}
	return v
}

// expectSlice is what the CI guest says the kernel offers
// (GORSEQ_EXPECT_SLICE_EXTENSION), or "" where nobody said.
func expectSlice() string { return os.Getenv("GORSEQ_EXPECT_SLICE_EXTENSION") }

// requireSlice skips a test where the kernel does not offer the extension,
// unless the environment says it must.
func requireSlice(t *testing.T) {
	t.Helper()
	if Features().SliceExtension {
		return
	}
	if expectSlice() == "true" {
		t.Fatalf("GORSEQ_EXPECT_SLICE_EXTENSION=true, but the kernel does not offer the extension: %+v", Features())
	}
	t.Skip("the kernel does not offer the time-slice extension (Linux 7.0+ with CONFIG_RSEQ_SLICE_EXTENSION, an area longer than 32 bytes)")
}

// TestSliceNoopWithoutExtension: where the kernel lacks the extension,
// requests are not made, End does nothing, and slice_ctrl stays as the
// kernel left it.
func TestSliceNoopWithoutExtension(t *testing.T) {
	if Features().SliceExtension {
		t.Skip("the kernel offers the extension (TestSliceRequestProtocol)")
	}
	if expectSlice() == "true" {
		t.Fatal("GORSEQ_EXPECT_SLICE_EXTENSION=true, but Features().SliceExtension is false")
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	AreaAddress() // register the thread where the package registers its own
	before := SliceStats()
	ctrl, haveArea := areaField(offSliceCtrl)
	for i := 0; i < 1000; i++ {
		s := SliceRequest()
		if s.Requested() {
			t.Fatal("SliceRequest made a request on a kernel without the extension")
		}
		if s.End() {
			t.Fatal("End reported a grant on a kernel without the extension")
		}
	}
	// Not even the slow path runs: sliceEnable is reached only when the
	// kernel said it offers the extension.
	if got, ok := areaField(offSliceCtrl); ok != haveArea || got != ctrl {
		t.Fatalf("slice_ctrl changed from %#x to %#x", ctrl, got)
	}
	if SliceStats() != before {
		t.Fatalf("counts changed: %+v, then %+v", before, SliceStats())
	}
	if ok, err := SliceAvailable(); ok || err != nil {
		t.Fatalf("SliceAvailable() = %v, %v; want false, nil", ok, err)
	}
	if haveArea {
		fl, _ := areaField(offFlags)
		if fl&(flagSliceExtAvailable|flagSliceExtEnabled) != 0 {
			t.Fatalf("flags %#x have slice bits, but SliceExtension is false", fl)
		}
	}
	t.Logf("kernel without the extension: %d requests were no-ops; slice_ctrl %#x (area: %v, %d bytes)", 1000, ctrl, haveArea, Features().AreaSize)
}

// TestSliceRequestProtocol: the request byte is set by SliceRequest and
// cleared by End on the same thread, the thread is enabled (prctl and the
// flags agree), requests do not nest, and End on another thread or of
// another area leaves the request alone.
func TestSliceRequestProtocol(t *testing.T) {
	requireSlice(t)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	// The kernel clears slice_ctrl whenever it schedules the thread out
	// (and a grant's timer can expire within a few hundred instructions
	// under qemu's TCG), so a check that finds the request gone may have
	// been disturbed: the sequence is tried until one pass is not.
	const attempts = 200
	disturbed := 0
	for {
		msg := sliceProtocolPass(t)
		if msg == "" {
			break
		}
		if disturbed++; disturbed == attempts {
			t.Fatalf("%d passes found the request gone where it should be set; the last: %s", attempts, msg)
		}
	}
	if fl, _ := areaField(offFlags); fl&flagSliceExtEnabled == 0 {
		t.Errorf("flags %#x: the ENABLED bit is not set after the first request", fl)
	}
	if on, err := sliceEnabled(); err != nil || !on {
		t.Errorf("PR_RSEQ_SLICE_EXTENSION_GET: %v, %v; want enabled", on, err)
	}
	t.Logf("a pass undisturbed by the scheduler after %d disturbed ones", disturbed)

	// Disabling on this thread (prctl) sends requests back to the slow
	// path, which enables it again.
	if err := sliceSetEnabled(false); err != nil {
		t.Fatal(err)
	}
	if fl, _ := areaField(offFlags); fl&flagSliceExtEnabled != 0 {
		t.Fatalf("flags %#x: ENABLED still set after disabling", fl)
	}
	s := SliceRequest()
	if !s.Requested() {
		t.Fatal("no request after the thread was disabled and asked again")
	}
	s.End()
	if fl, _ := areaField(offFlags); fl&flagSliceExtEnabled == 0 {
		t.Fatalf("flags %#x: not enabled again", fl)
	}
}

// sliceProtocolPass runs the protocol once on the calling (locked) thread.
// It fails the test for what the scheduler cannot cause, and returns what
// went wrong when a request was found cleared (which it can).
func sliceProtocolPass(t *testing.T) string {
	t.Helper()
	s := SliceRequest()
	if !s.Requested() {
		ok, err := SliceAvailable()
		t.Fatalf("no request made (available %v, %v; slice_ctrl %#x)", ok, err, sliceCtrl(t))
	}
	defer s.End()
	// A grant shows as request 0, granted 1.
	if c := sliceCtrl(t) & 0xffff; c != 1 && c != 0x100 {
		return "slice_ctrl " + strconv.FormatUint(uint64(c), 16) + " after SliceRequest"
	}
	inner := SliceRequest()
	if inner.Requested() {
		t.Fatal("a nested request was made: requests must not nest")
	}
	if inner.End() {
		t.Fatal("the nested (zero) Slice's End reported a grant")
	}
	if c := sliceCtrl(t) & 0xffff; c == 0 {
		return "slice_ctrl 0 after the nested End"
	}
	// End on another thread does nothing (and says so). The other
	// goroutine cannot run on this locked thread.
	var ended atomic.Int32
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if s.End() {
			ended.Store(2)
		} else {
			ended.Store(1)
		}
	}()
	for ended.Load() == 0 {
		spinSink.Add(spinFor(100))
	}
	if ended.Load() == 2 {
		t.Fatal("End on another thread reported a grant")
	}
	if (Slice{area: s.area + 64}).End() {
		t.Fatal("End of another area reported a grant")
	}
	// With one CPU the other thread ran only after this one was scheduled
	// out, which clears slice_ctrl every time: nothing to check then.
	if c := sliceCtrl(t) & 0xffff; c == 0 && len(allowedCPUs(t)) > 1 {
		return "slice_ctrl 0 after End on another thread"
	}
	granted := s.End()
	if c := sliceCtrl(t) & 0xff; c != 0 {
		t.Fatalf("slice_ctrl %#x after End: the request is still set", c)
	}
	if granted && SliceStats().Granted == 0 {
		t.Fatal("End reported a grant that SliceStats did not count")
	}
	return ""
}

// spinFor burns about n iterations of a loop the compiler keeps.
//
//go:noinline
func spinFor(n int) uint64 {
	x := uint64(n)
	for i := 0; i < n; i++ {
		x = x*6364136223846793005 + 1442695040888963407
	}
	return x
}

var spinSink atomic.Uint64

// spinCalibrate returns the nanoseconds one iteration of spinFor takes,
// timing runs long enough for a coarse clock (a kernel whose clock
// source is jiffies advances time.Now in 4 ms steps).
func spinCalibrate() float64 {
	for iters := 1 << 16; ; iters *= 2 {
		start := time.Now()
		spinSink.Add(spinFor(iters))
		if d := time.Since(start); d >= 20*time.Millisecond || iters >= 1<<30 {
			return max(float64(d), 1) / float64(iters)
		}
	}
}

// debugfsRseqStats reads the kernel's rseq counters
// (/sys/kernel/debug/rseq/stats, CONFIG_RSEQ_STATS), mounting debugfs in a
// qemu guest where nothing did. nil where there are none.
func debugfsRseqStats() map[string]uint64 {
	const file = "/sys/kernel/debug/rseq/stats"
	if _, err := os.Stat(file); err != nil && os.Getenv("GORSEQ_QEMU") != "" {
		unix.Mount("debugfs", "/sys/kernel/debug", "debugfs", 0, "")
	}
	f, err := os.Open(file)
	if err != nil {
		return nil
	}
	defer f.Close()
	m := map[string]uint64{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		if n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64); err == nil {
			m[strings.TrimSpace(k)] = n
		}
	}
	return m
}

// pinTo pins the calling (locked) thread to cpu and returns the undo.
func pinTo(t *testing.T, cpu int) func() {
	var orig, one unix.CPUSet
	if err := unix.SchedGetaffinity(0, &orig); err != nil {
		t.Error(err)
		return func() {}
	}
	one.Set(cpu)
	if err := unix.SchedSetaffinity(0, &one); err != nil {
		t.Error(err)
	}
	return func() { unix.SchedSetaffinity(0, &orig) }
}

// TestSliceGranted: a thread that spends nearly all its time in short
// critical sections under a request, on a CPU it shares with a busy
// thread, is granted extensions when the scheduler wants to switch to the
// other thread, and End gives the CPU back (rseq_slice_yield). Run where
// the kernel offers the extension (the CI guest amd64/7.3-slice).
func TestSliceGranted(t *testing.T) {
	requireSlice(t)
	cpus := allowedCPUs(t)
	cpu := cpus[len(cpus)-1]
	// A section of about 1 µs: well inside the 5 µs grant, so that a grant
	// given in it is still in force when End comes.
	perIter := spinCalibrate()
	n := max(int(1000/perIter), 1)
	kBefore := debugfsRseqStats()
	before := SliceStats()

	limit := 10 * time.Second
	if testing.Short() && os.Getenv("GORSEQ_QEMU") == "" {
		limit = 3 * time.Second
	}
	const wantGrants = 20
	var stop atomic.Bool
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // the busy thread
		defer wg.Done()
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		defer pinTo(t, cpu)()
		var x uint64
		for !stop.Load() {
			x += spinFor(100)
		}
		spinSink.Add(x)
	}()
	var requests, made, grants int
	func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		defer pinTo(t, cpu)()
		deadline := time.Now().Add(limit)
		var x uint64
		for grants < wantGrants {
			if requests%1024 == 0 && time.Now().After(deadline) {
				break
			}
			requests++
			s := SliceRequest()
			if s.Requested() {
				made++
			}
			x += spinFor(n)
			if s.End() {
				grants++
			}
		}
		spinSink.Add(x)
	}()
	stop.Store(true)
	wg.Wait()
	after := SliceStats()
	kAfter := debugfsRseqStats()
	var kdelta []string
	for _, k := range []string{"sgrant", "syield", "sexpir", "srevok", "sabort"} {
		if kBefore != nil && kAfter != nil {
			kdelta = append(kdelta, k+"="+strconv.FormatUint(kAfter[k]-kBefore[k], 10))
		}
	}
	t.Logf("CPU %d, sections of %d iterations (%.0f ns each): %d requests (%d made), %d grants seen by End; SliceStats granted %d, yielded %d; kernel (debugfs rseq/stats): %s",
		cpu, n, float64(n)*perIter, requests, made, grants, after.Granted-before.Granted, after.Yielded-before.Yielded, strings.Join(kdelta, " "))
	if made == 0 {
		t.Fatal("no request was made")
	}
	if grants == 0 {
		t.Fatalf("no extension was granted in %d requests made within %v, with a busy thread on the same CPU", made, limit)
	}
	if d := after.Granted - before.Granted; d < uint64(grants) {
		t.Errorf("SliceStats counted %d grants, End reported %d", d, grants)
	}
	if after.Yielded == before.Yielded {
		t.Errorf("no rseq_slice_yield returned 1 in %d grants", grants)
	}
	if kBefore != nil && kAfter != nil && kAfter["syield"] == kBefore["syield"] {
		t.Errorf("the kernel counted no yield (rseq/stats syield)")
	}
}

func BenchmarkSliceRequestEnd(b *testing.B) {
	b.ReportMetric(0, "grants")
	before := SliceStats()
	for b.Loop() {
		s := SliceRequest()
		s.End()
	}
	b.ReportMetric(float64(SliceStats().Granted-before.Granted), "grants")
}
