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

// possibleCPUs is the number of CPU ids the kernel may ever report: one more
// than the highest id in /sys/devices/system/cpu/possible.
var possibleCPUs = readPossibleCPUs()

// PossibleCPUs returns the number of CPU ids the kernel may report (the
// highest possible CPU number plus one). Every CPU number and concurrency id
// is below it.
func PossibleCPUs() int { return possibleCPUs }

func readPossibleCPUs() int {
	b, err := os.ReadFile("/sys/devices/system/cpu/possible")
	if err == nil {
		if n, ok := parseCPUList(strings.TrimSpace(string(b))); ok {
			return n
		}
	}
	// Without sysfs (a minimal container or initramfs), the affinity mask's
	// width bounds the ids the process can see.
	var set unix.CPUSet
	if unix.SchedGetaffinity(0, &set) == nil {
		hi := -1
		for i := 0; i < len(set)*64; i++ {
			if set.IsSet(i) {
				hi = i
			}
		}
		if hi >= 0 {
			return hi + 1
		}
	}
	return 1
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
