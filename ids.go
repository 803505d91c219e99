package rseq

// NodeID returns the NUMA node of the CPU the calling thread runs on: the
// area's node_id where the kernel provides it (Linux 6.3 and later), else
// the node of CPU() in the kernel's CPU-to-node map, else getcpu's node.
func NodeID() int {
	if features.NodeID {
		if v, ok := areaField(offNodeID); ok {
			return int(v)
		}
	}
	if c := CPU(); c < len(nodeOfCPU) {
		return int(nodeOfCPU[c])
	}
	return nodeSlow()
}

// ConcurrencyID returns the calling thread's concurrency id (the kernel's
// mm_cid): a number below the smaller of the process's thread count and
// PossibleCPUs, unique among the process's threads running at the same
// instant, that the kernel keeps stable for a thread as far as it can.
// Per-CPU data indexed by it stays dense when a process runs on few of many
// CPUs.
//
// Where the kernel does not provide mm_cid (before Linux 6.3), or the thread
// has no rseq area, the documented substitute is the CPU number: it has the
// same bound (PossibleCPUs) and the same uniqueness among running threads,
// but is not dense.
func ConcurrencyID() int {
	if features.ConcurrencyID {
		if v, ok := areaField(offMMCID); ok {
			return int(v)
		}
	}
	return CPU()
}

// cpuSlow is CPU without an area at hand: it registers the thread where the
// package registers its own areas and reads the area, or asks getcpu.
func cpuSlow() int {
	if a := ensureArea(); a != 0 {
		// The goroutine may have moved since the registration; read the
		// area of the thread it runs on now.
		if v, ok := areaField(offCPUID); ok {
			return int(v)
		}
	}
	c, _ := getcpu()
	return c
}
