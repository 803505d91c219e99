//go:build !linux

package rseq

import "runtime"

// Outside Linux there is no way to ask for the current CPU: the ids are 0,
// which keeps per-CPU structures correct (everything in slot 0) if slow.
func getcpu() (cpu, node int) { return 0, 0 }

func nodeSlow() int { return 0 }

var possibleCPUs, cpuBoundKnown = runtime.NumCPU(), true

// PossibleCPUs returns the number of CPU ids the package may report.
func PossibleCPUs() int { return possibleCPUs }

var nodeOfCPU []uint16
