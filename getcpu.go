//go:build linux

package rseq

import (
	"os"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// getcpu makes the getcpu system call: the substitute for the area's ids on
// threads without rseq.
func getcpu() (cpu, node int) {
	var c, n uint32
	_, _, e := unix.RawSyscall(unix.SYS_GETCPU, uintptr(unsafe.Pointer(&c)), uintptr(unsafe.Pointer(&n)), 0)
	if e != 0 {
		// getcpu cannot fail with valid pointers; a seccomp filter might
		// refuse it. CPU 0 is then the only honest answer left.
		return 0, 0
	}
	return int(c), int(n)
}

func nodeSlow() int {
	_, n := getcpu()
	return n
}

// nodeOfCPU maps CPU numbers to NUMA nodes, from sysfs; empty when sysfs
// does not say.
var nodeOfCPU = readNodeMap(possibleCPUs)

func readNodeMap(n int) []uint16 {
	dirs, err := os.ReadDir("/sys/devices/system/node")
	if err != nil {
		return nil
	}
	m := make([]uint16, n)
	seen := make([]bool, n)
	for _, d := range dirs {
		node, err := strconv.Atoi(strings.TrimPrefix(d.Name(), "node"))
		if err != nil || !strings.HasPrefix(d.Name(), "node") {
			continue
		}
		b, err := os.ReadFile("/sys/devices/system/node/" + d.Name() + "/cpulist")
		if err != nil {
			return nil
		}
		for _, part := range strings.Split(strings.TrimSpace(string(b)), ",") {
			if part == "" {
				continue
			}
			lo, hi, isRange := strings.Cut(part, "-")
			if !isRange {
				hi = lo
			}
			a, err1 := strconv.Atoi(lo)
			z, err2 := strconv.Atoi(hi)
			if err1 != nil || err2 != nil || a < 0 || z >= n || a > z {
				return nil
			}
			for c := a; c <= z; c++ {
				m[c], seen[c] = uint16(node), true
			}
		}
	}
	for _, ok := range seen {
		if !ok {
			return nil // a CPU of no node: trust getcpu instead
		}
	}
	return m
}

// possibleCPUs is the number of CPU ids the kernel may ever report (its
// nr_cpu_ids): one more than the highest id in
// /sys/devices/system/cpu/possible, or, without sysfs, a bound taken from
// the kernel's cpumask size (kernelCPUBound). Per-CPU arrays have this many
// slots plus the shared one, and sections index them without a check: no
// CPU number or concurrency id is ever at or above it, whatever CPUs come
// online or join the process's affinity later.
var possibleCPUs, cpuBoundKnown = readPossibleCPUs("/sys/devices/system/cpu/possible")

// PossibleCPUs returns the number of CPU ids the kernel may report (the
// highest possible CPU number plus one). Every CPU number and concurrency id
// is below it.
func PossibleCPUs() int { return possibleCPUs }

// readPossibleCPUs returns possibleCPUs and whether the kernel said it;
// where nothing does, 1 and false: sections are then off and the fallback
// puts every id past the bound in slot 0.
func readPossibleCPUs(path string) (int, bool) {
	b, err := os.ReadFile(path)
	if err == nil {
		if n, ok := parseCPUList(strings.TrimSpace(string(b))); ok {
			return n, true
		}
	}
	if n := kernelCPUBound(); n > 0 {
		return n, true
	}
	return 1, false
}

// kernelCPUBound returns a number no CPU id reaches, or 0, without sysfs (a
// minimal container or initramfs): the smallest mask length, in bits, that
// sched_getaffinity accepts. The kernel refuses (EINVAL) a mask shorter
// than nr_cpu_ids bits, so the answer is nr_cpu_ids rounded up to a
// multiple of 64. The affinity mask itself would not do: CPUs can join it
// later, up to nr_cpu_ids.
func kernelCPUBound() int {
	fits := func(words int) bool {
		buf := make([]uint64, words)
		_, _, e := unix.RawSyscall(unix.SYS_SCHED_GETAFFINITY, 0, uintptr(words*8), uintptr(unsafe.Pointer(&buf[0])))
		return e == 0
	}
	const maxWords = 1 << 12 // 262144 CPUs, far above any NR_CPUS
	if !fits(maxWords) {
		return 0 // no answer (a seccomp filter?)
	}
	lo, hi := 0, maxWords // fits(hi); !fits(lo) or lo == 0
	for hi-lo > 1 {
		mid := (lo + hi) / 2
		if fits(mid) {
			hi = mid
		} else {
			lo = mid
		}
	}
	return hi * 64
}

// parseCPUList returns one more than the highest CPU in a kernel CPU list
// such as "0-3,8-11".
func parseCPUList(s string) (int, bool) {
	if s == "" {
		return 0, false
	}
	hi := -1
	for _, part := range strings.Split(s, ",") {
		lo, rest, isRange := strings.Cut(part, "-")
		last := lo
		if isRange {
			last = rest
		}
		if _, err := strconv.Atoi(lo); err != nil {
			return 0, false
		}
		n, err := strconv.Atoi(last)
		if err != nil || n < 0 {
			return 0, false
		}
		if n > hi {
			hi = n
		}
	}
	return hi + 1, true
}
