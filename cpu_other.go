//go:build !linux || !(amd64 || arm64)

package rseq

// CPU returns the number of the CPU the calling thread is running on. The
// answer may be stale as soon as it is returned, since the goroutine can be
// moved at any time; it was exact at the instant it was read.
//
// Where the thread has an rseq area CPU reads cpu_id from it (a few loads,
// no atomic instruction); elsewhere it makes the getcpu system call.
func CPU() int { return cpuSlow() }
