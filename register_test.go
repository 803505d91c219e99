//go:build linux && (amd64 || arm64)

package rseq

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// allowedCPUs returns the CPUs the process may run on.
func allowedCPUs(t testing.TB) []int {
	cpus := allowedCPUsOrNil()
	if len(cpus) == 0 {
		t.Fatal("sched_getaffinity failed or allows no CPU")
	}
	return cpus
}

// checkIDsOnEveryCPU pins the calling goroutine's (locked) thread to each
// allowed CPU in turn and compares the ids with getcpu, like the kernel's
// basic_test.
func checkIDsOnEveryCPU(cpus []int) []string {
	var bad []string
	var orig unix.CPUSet
	unix.SchedGetaffinity(0, &orig)
	defer unix.SchedSetaffinity(0, &orig)
	for _, c := range cpus {
		var set unix.CPUSet
		set.Set(c)
		if err := unix.SchedSetaffinity(0, &set); err != nil {
			bad = append(bad, err.Error())
			continue
		}
		gc, gn := getcpu()
		if got := CPU(); got != gc || got != c {
			bad = append(bad, "CPU() = "+itoa(got)+" on CPU "+itoa(c)+", getcpu says "+itoa(gc))
		}
		if got := NodeID(); got != gn {
			bad = append(bad, "NodeID() = "+itoa(got)+", getcpu says "+itoa(gn))
		}
		if got := ConcurrencyID(); got < 0 || got >= PossibleCPUs() {
			bad = append(bad, "ConcurrencyID() = "+itoa(got)+" out of range")
		}
	}
	return bad
}

func itoa(i int) string { return strconv.Itoa(i) }

func TestIDsAgreeWithGetcpu(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if features.Usable && features.Mode == ModeOwn && unix.Gettid() != unix.Getpid() && AreaAddress() == 0 {
		t.Fatal("a locked non-main thread has no area in own mode")
	}
	for _, b := range checkIDsOnEveryCPU(allowedCPUs(t)) {
		t.Error(b)
	}
}

// TestRegistrationManyThreads runs with GOMAXPROCS above the CPU count,
// kills threads (locked goroutines that exit) and creates new ones, and
// checks every thread's ids and areas.
func TestRegistrationManyThreads(t *testing.T) {
	requireVerifiedRuntime(t)
	if features.Mode != ModeOwn {
		t.Skipf("mode %v", features.Mode)
	}
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4*runtime.NumCPU() + 1))
	cpus := allowedCPUs(t)
	rounds := 8
	if testing.Short() {
		rounds = 3
	}
	var mu sync.Mutex
	var failures []string
	for round := range rounds {
		// Threads alive at once must have distinct areas.
		var live sync.WaitGroup
		seen := map[uintptr]int{}
		release := make(chan struct{})
		var ready sync.WaitGroup
		for i := range 24 {
			live.Add(1)
			ready.Add(1)
			go func() {
				defer live.Done()
				runtime.LockOSThread() // never unlocked: the thread exits with the goroutine
				a := AreaAddress()
				tid := unix.Gettid()
				bad := checkIDsOnEveryCPU(cpus)
				mu.Lock()
				if a == 0 && tid != unix.Getpid() {
					bad = append(bad, "no area on a new thread")
				}
				if a != 0 {
					if other, dup := seen[a]; dup && other != tid {
						bad = append(bad, "area shared by two live threads")
					}
					seen[a] = tid
				}
				for _, b := range bad {
					failures = append(failures, "round "+itoa(round)+" goroutine "+itoa(i)+": "+b)
				}
				mu.Unlock()
				ready.Done()
				<-release
			}()
		}
		ready.Wait()
		close(release)
		live.Wait()
	}
	for _, f := range failures {
		t.Error(f)
	}
	// Areas of dead threads are recycled: after a sweep, no more areas
	// are in use than the process has threads.
	var used, threads int
	for try := 0; try < 50; try++ {
		areas.mu.Lock()
		sweepAreas()
		used = 0
		for _, r := range areas.all {
			if r.used {
				used++
			}
		}
		areas.mu.Unlock()
		tasks, _ := os.ReadDir("/proc/self/task")
		threads = len(tasks)
		if used <= threads {
			break
		}
		time.Sleep(20 * time.Millisecond) // exiting threads finish asynchronously
	}
	if used > threads {
		t.Errorf("%d areas in use with %d threads alive: dead threads' areas are not recycled", used, threads)
	}
	t.Logf("%d areas in use, %d threads alive, after %d rounds of 24 dying threads", used, threads, rounds)
}

// TestKernelErrorRules checks the rseq system call's error rules through
// the package's own registration code, on a locked thread.
func TestKernelErrorRules(t *testing.T) {
	requireVerifiedRuntime(t)
	if features.Mode != ModeOwn {
		t.Skipf("mode %v: the package does not register areas itself", features.Mode)
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	a := AreaAddress()
	if a == 0 {
		t.Skip("this thread uses the fallback (main thread of a PIE binary?)")
	}
	// Unregister the package's area for the duration of the test; the
	// thread is locked and runs nothing else.
	if e := sysRseq(a, regLen, 1, Signature); e != 0 {
		t.Fatalf("unregister own area: %v", e)
	}
	defer func() {
		if e := sysRseq(a, regLen, 0, Signature); e != 0 {
			t.Fatalf("re-register own area: %v", e)
		}
	}()
	scratch, err := allocArea(unix.Gettid())
	if err != nil {
		t.Fatal(err)
	}
	defer releaseArea(scratch)
	sliceFlagErr := unix.EINVAL
	if kernelAtLeast(t, 7, 0) {
		sliceFlagErr = 0
	}
	cases := []struct {
		name   string
		area   uintptr
		length uint32
		flags  int
		sig    uint32
		want   unix.Errno
	}{
		{"undefined flag", scratch, regLen, 1 << 30, Signature, unix.EINVAL},
		// RSEQ_FLAG_SLICE_EXT_DEFAULT_ON: Linux 7.0 and later accept it,
		// even where the kernel was built without the extension.
		{"slice-extension flag", scratch, regLen, 2, Signature, sliceFlagErr},
		{"unregister what the slice-extension flag registered", scratch, regLen, 1, Signature, sliceFlagErr},
		{"misaligned area", scratch + 8, regLen, 0, Signature, unix.EINVAL},
		{"length 31", scratch, 31, 0, Signature, unix.EINVAL},
		{"register", scratch, regLen, 0, Signature, 0},
		{"same area twice", scratch, regLen, 0, Signature, unix.EBUSY},
		{"another area while registered", a, regLen, 0, Signature, unix.EINVAL},
		{"same area, other signature", scratch, regLen, 0, Signature + 1, unix.EPERM},
		{"unregister with a wrong signature", scratch, regLen, 1, Signature + 1, unix.EPERM},
		{"unregister", scratch, regLen, 1, Signature, 0},
	}
	for _, c := range cases {
		if got := sysRseq(c.area, c.length, c.flags, c.sig); got != c.want {
			t.Errorf("%s: rseq() = %v (%d), want %v (%d)", c.name, got, int(got), c.want, int(c.want))
		}
	}
}

// kernelAtLeast reports whether the running kernel's release is at least
// major.minor.
func kernelAtLeast(t *testing.T, major, minor int) bool {
	t.Helper()
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		t.Fatal(err)
	}
	rel := unix.ByteSliceToString(u.Release[:])
	var maj, mnr int
	if _, err := fmt.Sscanf(rel, "%d.%d", &maj, &mnr); err != nil {
		t.Fatalf("kernel release %q: %v", rel, err)
	}
	return maj > major || maj == major && mnr >= minor
}

func TestParseCPUList(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int
		ok   bool
	}{{"0", 1, true}, {"0-1", 2, true}, {"0-3,8-11", 12, true}, {"5,2", 6, true}, {"", 0, false}, {"a-b", 0, false}} {
		got, ok := parseCPUList(c.in)
		if got != c.want || ok != c.ok {
			t.Errorf("parseCPUList(%q) = %d, %v; want %d, %v", c.in, got, ok, c.want, c.ok)
		}
	}
}

// TestFeaturesOnThisKernel checks the discovery against the auxiliary
// vector, and against the legacy ABI where CI boots a kernel without the
// auxv entries (GORSEQ_EXPECT_AUXV=0, set by .ci/qemu-test.sh).
func TestFeaturesOnThisKernel(t *testing.T) {
	f := Features()
	t.Logf("%+v", f)
	size, align, haveSize, haveAlign, _ := auxvValues()
	if haveSize != f.FromAuxv || (haveSize && uintptr(f.FeatureSize) != size) || (haveAlign && uintptr(f.Alignment) != align) {
		t.Errorf("features %d/%d (from auxv %v) disagree with auxv %d/%d (%v/%v)", f.FeatureSize, f.Alignment, f.FromAuxv, size, align, haveSize, haveAlign)
	}
	if !haveSize && (f.FeatureSize != 20 || f.Alignment != 32 || f.NodeID || f.ConcurrencyID) {
		t.Errorf("without auxv entries the original ABI applies: got %+v", f)
	}
	if os.Getenv("GORSEQ_EXPECT_AUXV") == "0" {
		if f.FromAuxv {
			t.Error("GORSEQ_EXPECT_AUXV=0 but the kernel reported AT_RSEQ_FEATURE_SIZE")
		}
		if !f.Usable || f.AreaSize != 32 {
			t.Errorf("legacy kernel: want usable rseq with 32-byte areas, got %+v", f)
		}
	}
	if f.Usable && f.Mode == ModeOwn && int(regLen) != f.AreaSize {
		t.Errorf("AreaSize %d, registered %d", f.AreaSize, regLen)
	}
	if f.Usable && !f.Operations && !raceEnabled {
		t.Errorf("operations disabled: %s", f.OperationsReason)
	}
	// What the CI guests expect of their kernels (.ci/qemu-test.sh).
	if os.Getenv("GORSEQ_EXPECT_AUXV") == "1" && !f.FromAuxv {
		t.Error("GORSEQ_EXPECT_AUXV=1 but the kernel reported no AT_RSEQ_FEATURE_SIZE")
	}
	for _, e := range []struct {
		env string
		got int
	}{{"GORSEQ_EXPECT_FEATURE_SIZE", f.FeatureSize}, {"GORSEQ_EXPECT_ALIGN", f.Alignment}, {"GORSEQ_EXPECT_AREA_SIZE", f.AreaSize}} {
		if want := os.Getenv(e.env); want != "" && want != strconv.Itoa(e.got) {
			t.Errorf("%s=%s, but the package found %d (%+v)", e.env, want, e.got, f)
		}
	}
	// An area longer than 32 bytes has the kernel's feature size rounded
	// up to its alignment (33 and 64 make 64 on Linux 7.x).
	if f.Usable && f.Mode == ModeOwn && f.FeatureSize > 32 {
		if want := (f.FeatureSize + f.Alignment - 1) &^ (f.Alignment - 1); f.AreaSize != want {
			t.Errorf("feature size %d, alignment %d: area of %d bytes, want %d", f.FeatureSize, f.Alignment, f.AreaSize, want)
		}
	}
	// The time-slice extension is what the area's flags say, never what
	// the feature size suggests.
	if v, ok := areaField(offFlags); ok && f.SliceExtension != (v&flagSliceExtAvailable != 0) {
		t.Errorf("SliceExtension %v, but the area's flags are %#x", f.SliceExtension, v)
	}
	if want := os.Getenv("GORSEQ_EXPECT_SLICE_EXTENSION"); want != "" && want != strconv.FormatBool(f.SliceExtension) {
		t.Errorf("GORSEQ_EXPECT_SLICE_EXTENSION=%s, but SliceExtension is %v", want, f.SliceExtension)
	}
}

// TestReadOnlyFieldsEnforced shows that the running kernel kills a process
// that writes a read-only field of its area (Linux 6.19 and later, for
// areas longer than 32 bytes: cpu_id_start, cpu_id, node_id and mm_cid are
// checked when the kernel next updates them), by doing it in a child
// process. Where it is enforced, every other test of the package, percpu
// and torture that runs on the same kernel proves that they write none of
// those fields: a write would have killed them.
func TestReadOnlyFieldsEnforced(t *testing.T) {
	if os.Getenv("GORSEQ_RO_CHILD") == "1" {
		readOnlyChild()
		return
	}
	requireVerifiedRuntime(t)
	f := Features()
	switch {
	case f.Mode != ModeOwn:
		t.Skipf("mode %v: the test writes into an area the package registered", f.Mode)
	case !kernelAtLeast(t, 6, 19) || f.AreaSize <= 32:
		if os.Getenv("GORSEQ_EXPECT_RO_ENFORCED") == "1" {
			t.Fatalf("GORSEQ_EXPECT_RO_ENFORCED=1, but the kernel is older than 6.19 or the area is %d bytes", f.AreaSize)
		}
		t.Skipf("the kernel enforces read-only fields from Linux 6.19, on areas longer than 32 bytes (area: %d bytes)", f.AreaSize)
	case len(allowedCPUs(t)) < 2:
		t.Skip("needs two CPUs to make the kernel update the ids")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestReadOnlyFieldsEnforced$", "-test.v")
	cmd.Env = append(os.Environ(), "GORSEQ_RO_CHILD=1")
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("the child that wrote cpu_id was not killed (%v):\n%s", err, out)
	}
	// The kernel may notice on the way out of the write itself, or of the
	// write that prints the second marker: the first marker is printed
	// before the forbidden write, and is what proves the child got there.
	if !strings.Contains(string(out), "GORSEQ_RO_CHILD writing cpu_id") {
		t.Fatalf("the child died before it wrote cpu_id:\n%s", out)
	}
	if strings.Contains(string(out), "GORSEQ_RO_CHILD: writing cpu_id:") {
		t.Fatalf("the child could not write cpu_id:\n%s", out)
	}
	// The kernel sends SIGSEGV (si_code SI_KERNEL, 0x80): either it kills
	// the child, or the Go runtime's handler catches it and crashes, which
	// it reports as "[signal SIGSEGV: segmentation violation code=0x80" or,
	// when the signal lands while it is already crashing (the kernel checks
	// again on the way out of the crash report's writes), as "SIGSEGV:
	// segmentation violation" with "sigcode=128".
	ws, _ := ee.Sys().(syscall.WaitStatus)
	kernelSEGV := strings.Contains(string(out), "[signal SIGSEGV: segmentation violation code=0x80") ||
		strings.Contains(string(out), "SIGSEGV: segmentation violation") && strings.Contains(string(out), "sigcode=128")
	caught := ws.Exited() && ws.ExitStatus() == 2 && kernelSEGV
	if !caught && (!ws.Signaled() || ws.Signal() != syscall.SIGSEGV) {
		t.Fatalf("the child that wrote cpu_id ended with %v, want SIGSEGV from the kernel:\n%s", ee, out)
	}
	t.Logf("the kernel sent SIGSEGV to the child that wrote cpu_id (%v)", ee)
}

// readOnlyChild writes cpu_id in its thread's area, then moves between CPUs
// until the kernel notices. It returns only if the kernel never does.
func readOnlyChild() {
	runtime.LockOSThread()
	a := AreaAddress()
	if a == 0 {
		fmt.Println("GORSEQ_RO_CHILD: no area")
		os.Exit(2)
	}
	cpus := allowedCPUsOrNil()
	// The forbidden write, through /proc/self/mem (the area is not Go memory).
	mem, err := os.OpenFile("/proc/self/mem", os.O_RDWR, 0)
	if err == nil {
		fmt.Println("GORSEQ_RO_CHILD writing cpu_id")
		_, err = mem.WriteAt([]byte{0x77, 0x77, 0, 0}, int64(a+offCPUID))
	}
	if err != nil {
		fmt.Println("GORSEQ_RO_CHILD: writing cpu_id:", err)
		os.Exit(2)
	}
	fmt.Println("GORSEQ_RO_CHILD wrote cpu_id")
	deadline := time.Now().Add(5 * time.Second)
	for i := 0; time.Now().Before(deadline); i++ {
		var set unix.CPUSet
		set.Set(cpus[i%len(cpus)])
		unix.SchedSetaffinity(0, &set)
		time.Sleep(time.Millisecond)
	}
	fmt.Println("GORSEQ_RO_CHILD survived")
	os.Exit(0)
}

func allowedCPUsOrNil() []int {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return nil
	}
	var cpus []int
	for c := 0; c < len(set)*64; c++ {
		if set.IsSet(c) {
			cpus = append(cpus, c)
		}
	}
	return cpus
}

// TestFeaturesNotesAreACopy: a caller that changes the Notes it was given
// must not change what the next caller sees.
func TestFeaturesNotesAreACopy(t *testing.T) {
	saved := features.Notes
	defer func() { features.Notes = saved }()
	features.Notes = []string{"first", "second"}
	f := Features()
	f.Notes[0] = "changed"
	_ = append(f.Notes[:1], "appended")
	if got := Features().Notes; got[0] != "first" || got[1] != "second" {
		t.Errorf("Features().Notes = %q after a caller changed its copy", got)
	}
}

// TestCPUBoundWithoutSysfs: without sysfs, the bound on CPU ids comes from
// the kernel's cpumask size and covers every possible CPU, not only those
// the process may run on now.
func TestCPUBoundWithoutSysfs(t *testing.T) {
	n, known := readPossibleCPUs("/nonexistent/possible")
	if !known || n <= 0 || n%64 != 0 {
		t.Fatalf("without sysfs: bound %d (known %v), want a positive multiple of 64", n, known)
	}
	if sys, ok := readPossibleCPUs("/sys/devices/system/cpu/possible"); ok && n < sys {
		t.Errorf("without sysfs the bound is %d, below the %d possible CPUs sysfs lists", n, sys)
	} else if ok && n >= sys+64 {
		t.Errorf("without sysfs the bound is %d, not the %d possible CPUs rounded up to 64", n, sys)
	}
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err == nil {
		for c := n; c < len(set)*64; c++ {
			if set.IsSet(c) {
				t.Errorf("CPU %d is in the affinity mask but at or above the bound %d", c, n)
			}
		}
	}
	t.Logf("bound without sysfs: %d; PossibleCPUs: %d", n, PossibleCPUs())
}

// TestRegistrationErrorsNamed: an EINVAL from registering is told apart by
// its cause: another area on the thread, or a length or alignment the
// kernel refuses (which used to be blamed on the PIE loader, or left
// Usable true while every thread fell back).
func TestRegistrationErrorsNamed(t *testing.T) {
	requireVerifiedRuntime(t)
	if features.Mode != ModeOwn {
		t.Skipf("mode %v: the package does not register areas itself", features.Mode)
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	a := AreaAddress()
	if a == 0 {
		t.Skip("this thread uses the fallback (main thread of a PIE binary?)")
	}
	scratch, err := allocArea(unix.Gettid())
	if err != nil {
		t.Fatal(err)
	}
	defer releaseArea(scratch)

	// With the package's area registered, a second one is refused.
	e := sysRseq(scratch, regLen, 0, Signature)
	if e != unix.EINVAL {
		t.Fatalf("registering a second area: %v, want EINVAL", e)
	}
	err = describeRegistrationError(scratch, regLen, e)
	if errors.Is(err, errLengthOrAlignment) || !errors.Is(err, unix.EINVAL) || !errors.Is(err, errAnotherArea) {
		t.Errorf("second area: %v; want it named as another area, wrapping EINVAL", err)
	}

	// Without it, a length the kernel refuses is named as such.
	if e := sysRseq(a, regLen, 1, Signature); e != 0 {
		t.Fatalf("unregister own area: %v", e)
	}
	defer func() {
		if e := sysRseq(a, regLen, 0, Signature); e != 0 {
			t.Fatalf("re-register own area: %v", e)
		}
	}()
	const badLen = 24 // shorter than any struct rseq
	e = sysRseq(scratch, badLen, 0, Signature)
	if e != unix.EINVAL {
		t.Fatalf("registering with length 24: %v, want EINVAL", e)
	}
	err = describeRegistrationError(scratch, badLen, e)
	if !errors.Is(err, errLengthOrAlignment) || !errors.Is(err, unix.EINVAL) {
		t.Errorf("length 24: %v; want errLengthOrAlignment wrapping EINVAL", err)
	}
	// The probe left nothing registered.
	if e := sysRseq(scratch, origAreaSize, 1, Signature); e != unix.EINVAL {
		t.Errorf("the probe left the scratch area registered (unregister: %v)", e)
	}
}
