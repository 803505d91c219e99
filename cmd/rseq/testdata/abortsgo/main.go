// Command abortsgo runs three of the library's restartable sections
// (rseq.Add, rseq.CopyThenCommit and percpu.Counter.Add: the sections "add",
// "copyCommit" and "addCPU") on several threads while it forces aborts, and
// prints the library's own abort counters (rseq.Stats) before and after:
// the tests of `rseq stat` compare them with what stat saw.
//
// copyCommit copies 512 bytes in a loop inside its section: under qemu's
// TCG, which takes interrupts only between translation blocks, a
// straight-line section is almost never interrupted, and a loop gives it a
// block boundary on every iteration.
//
// Usage: abortsgo [THREADS [DURATION]] (2 threads, 300ms).
//
// Protocol on stdin and stdout, so that a test can attach before any
// section runs:
//
//	ready PID                        (then it waits for a line on stdin)
//	before add=N addCPU=N copyCommit=N  (rseq.Stats at the start of the window)
//	after add=N addCPU=N copyCommit=N   (at its end, after every worker stopped)
//	done SUM                         (then it waits for stdin to close)
//
// Aborts are forced three ways while the window lasts: the workers are
// locked to their threads and moved between CPUs with sched_setaffinity,
// they are sent SIGUSR1 with tgkill, and the threads are preempted as
// usual. Exit status 0, 1 when the counts do not add up, 2 on a setup error.
package main

import (
	"bufio"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/gorseq/rseq"
	"github.com/gorseq/rseq/percpu"
	"golang.org/x/sys/unix"
)

func counts() string {
	var add, addCPU, copyCommit uint64
	for _, s := range rseq.Stats() {
		switch s.Name {
		case "add":
			add = s.Aborts
		case "addCPU":
			addCPU = s.Aborts
		case "copyCommit":
			copyCommit = s.Aborts
		}
	}
	return fmt.Sprintf("add=%d addCPU=%d copyCommit=%d", add, addCPU, copyCommit)
}

const copyLen = 512

func main() {
	threads, window := 2, 300*time.Millisecond
	if len(os.Args) > 1 {
		n, err := strconv.Atoi(os.Args[1])
		if err != nil || n < 1 {
			fmt.Fprintln(os.Stderr, "abortsgo: bad THREADS", os.Args[1])
			os.Exit(2)
		}
		threads = n
	}
	if len(os.Args) > 2 {
		d, err := time.ParseDuration(os.Args[2])
		if err != nil || d <= 0 {
			fmt.Fprintln(os.Stderr, "abortsgo: bad DURATION", os.Args[2])
			os.Exit(2)
		}
		window = d
	}
	if f := rseq.Features(); !f.Operations {
		fmt.Fprintln(os.Stderr, "abortsgo: the operations do not run as restartable sections:", f.OperationsReason)
		os.Exit(2)
	}
	// SIGUSR1 only interrupts; the runtime handles it.
	signal.Notify(make(chan os.Signal, 1), unix.SIGUSR1)

	slots := rseq.Slots()
	const stride = 64
	mem := make([]byte, slots*stride+stride)
	base := unsafe.Pointer(&mem[0])
	counter := percpu.NewCounter()
	// Per slot: a version word (v) that copyCommit commits, and a buffer
	// it copies into.
	versions := make([]uintptr, slots*8)
	bufs := make([]byte, slots*copyLen)
	src := make([]byte, copyLen)
	var commits atomic.Int64

	in := bufio.NewScanner(os.Stdin)
	fmt.Printf("ready %d\n", os.Getpid())
	if !in.Scan() {
		os.Exit(2)
	}
	fmt.Printf("before %s\n", counts())

	var stop atomic.Bool
	var wg sync.WaitGroup
	tids := make(chan int, threads)
	var ops atomic.Int64
	for range threads {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			tids <- unix.Gettid()
			var n, c int64
			for !stop.Load() {
				for range 64 {
					slot := rseq.Add(base, stride, rseq.ByCPU, 1)
					counter.Add(1)
					v := &versions[slot*8]
					old := atomic.LoadUintptr(v)
					if rseq.CopyThenCommit(rseq.ByCPU, slot, v, old, unsafe.Pointer(&bufs[slot*copyLen]), unsafe.Pointer(&src[0]), copyLen, old+1) == rseq.Committed {
						c++
					}
				}
				n += 64
			}
			ops.Add(n)
			commits.Add(c)
		}()
	}
	var ids []int
	for range threads {
		ids = append(ids, <-tids)
	}
	ncpu := runtime.NumCPU()
	deadline := time.Now().Add(window)
	for i := 0; time.Now().Before(deadline); i++ {
		for k, tid := range ids {
			var set unix.CPUSet
			set.Set((i + k) % ncpu)
			unix.SchedSetaffinity(tid, &set) // a thread may refuse; aborts still come from signals
			unix.Tgkill(os.Getpid(), tid, unix.SIGUSR1)
		}
		time.Sleep(time.Millisecond)
	}
	stop.Store(true)
	wg.Wait()
	fmt.Printf("after %s\n", counts())

	// The sums must be exact: every add happened once.
	var sum int64
	for i := range slots {
		sum += *(*int64)(unsafe.Add(base, i*stride))
	}
	var vsum int64
	for i := range slots {
		vsum += int64(versions[i*8])
	}
	if sum != ops.Load() || counter.Load() != ops.Load() || vsum != commits.Load() {
		fmt.Printf("FAIL: add sum %d, counter %d, want %d; versions %d, want %d\n", sum, counter.Load(), ops.Load(), vsum, commits.Load())
		os.Exit(1)
	}
	fmt.Printf("done %d\n", sum)
	for in.Scan() {
	}
}
