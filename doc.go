// Package rseq brings Linux restartable sequences (rseq) to Go programs,
// without cgo.
//
// A restartable sequence is a short critical section that runs on "the
// current CPU" with plain loads and stores: if the thread is preempted,
// migrated or signalled before the section's last instruction, its commit
// store, the kernel moves it to an abort handler, which restarts it. Per-CPU
// data updated this way needs no atomic instruction and no lock.
//
// # Registration
//
// The kernel needs a struct rseq area registered on each thread. In a Go
// program without cgo the package registers one lazily, the first time a
// thread uses it, from memory the Go garbage collector does not manage, with
// the length and alignment the kernel asks for (AT_RSEQ_FEATURE_SIZE and
// AT_RSEQ_ALIGN, or the original 32-byte ABI), and finds it again through a
// thread-local slot of the runtime: a load or two. When the process runs with
// cgo, glibc (2.35 and later) has registered an area on every thread and the
// package uses it (thread pointer + __rseq_offset) instead of a second one.
// Features reports what was found, and why rseq is not usable where it is not
// (no rseq system call, a seccomp filter, glibc's tunable, an unverified Go
// release or architecture). The assumptions about the Go runtime are listed
// in runtime_linux.go and runtime_linux_GOARCH.go and checked by the
// package's TestRuntimeAssumptions.
//
// # Platforms and Go releases
//
// Restartable sections run on linux/amd64 and linux/arm64; every other
// platform builds and runs the fallback. The package trusts the Go releases
// whose runtime was checked: Go 1.26 and Go 1.27 (their release candidates
// included). On any other release, a devel toolchain among them, it falls
// back and Features says why; GORSEQ=unverified in the environment enables
// rseq there all the same, where live checks of the runtime's thread layout
// pass (on the initialising thread, and again on every thread the package
// registers).
//
// # Ids
//
// CPU, NodeID and ConcurrencyID read the calling thread's area; without one
// they ask the getcpu system call (the concurrency id is then the CPU
// number). The answers are exact at the instant they are read.
//
// # Per-CPU operations
//
// Add, AddIndirect, Pop, CompareAndStore, CompareBothAndStore,
// StoreThenCommit and CopyThenCommit are the operations librseq offers;
// TakeHandle, ClaimHandle, PutHandle and RestoreHandle move handles
// (indices into a table of Go pointers) through a per-CPU handle array (a
// HandleArray), for object pools; AddCPU, AddFloat64CPU, IncCPUIfZero and
// CompareAndStoreCPU are the hot operations of percpu's counters, reader
// lock and shard locks, on arrays indexed ByCPU, each one call. Each is
// a restartable section in assembly (ops_linux_amd64.s, ops_linux_arm64.s)
// on a slot of a
// per-CPU array. Each section's struct rseq_cs descriptor is generated from
// the assembled code (internal/gensections) and verified against the code
// bytes at start-up; the sections are listed at run time by Sections and in
// the binary under the symbols github.com/gorseq/rseq.__rseq_cs,
// .__rseq_cs_ptr_array and .__rseq_exit_point_array. Threads without an area
// take a lock-based fallback that gives the same results and never races
// with a section's plain stores (see the operations' documentation in
// ops.go). Stats counts aborts and fallbacks per section.
//
// In CPU profiles the time spent inside a section shows on the first
// instruction of its abort handler (the LOCK INCQ of the abort count in
// `go tool pprof -disasm` on amd64, the MOVD of its address on arm64): the
// profiling signal aborts the section, and
// the kernel moves the thread to the abort handler before the signal
// handler records where it was.
//
// The structures built on these operations — counters, sharded values,
// pools, buffers and logs — are in package percpu.
package rseq
