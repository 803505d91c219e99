// Package inspect reads the rseq registration of every thread of a live
// process, the data behind "rseq ps".
//
// It attaches to one thread at a time with PTRACE_SEIZE and PTRACE_INTERRUPT,
// reads the registration (PTRACE_GET_RSEQ_CONFIGURATION), the registers and
// the registered area, and detaches at once, so that at most one thread of
// the target is stopped, for tens of microseconds. It writes nothing into the
// target. Threads that appear meanwhile are picked up; threads that exit are
// counted and skipped.
//
// A thread stopped inside a critical section is not aborted by that stop on
// Linux 6.18: the kernel clears rseq_cs and the rest of that pass runs
// unprotected (older kernels abort it). The report shows the section the
// thread was in when it stopped.
//
// Inspect works on Linux, on every architecture (the stop address comes
// from PtraceRegs.PC); elsewhere it returns an error wrapping
// errors.ErrUnsupported.
package inspect

import "errors"

// Section describes the critical section a thread is in.
type Section struct {
	Descriptor uint64 `json:"descriptor"`
	Start      uint64 `json:"start"`
	PostCommit uint64 `json:"post_commit_offset"`
	Abort      uint64 `json:"abort"`
	Object     string `json:"object,omitempty"`
	Symbol     string `json:"symbol,omitempty"`
}

// Thread is what inspect found about one thread.
type Thread struct {
	TID  int    `json:"tid"`
	Name string `json:"name"`
	// Registered is false when the thread has no rseq area.
	Registered bool `json:"registered"`
	// Area, Size and Signature come from PTRACE_GET_RSEQ_CONFIGURATION.
	Area      uint64 `json:"area"`
	Size      uint32 `json:"size"`
	Signature uint32 `json:"signature"`
	// The fields below are read from the area (when Registered). CPUID is
	// -1 (RSEQ_CPU_ID_UNINITIALIZED) in a thread stopped between its
	// registration and its next return to user space, where the kernel
	// fills in the ids.
	CPUIDStart uint32 `json:"cpu_id_start"`
	CPUID      int32  `json:"cpu_id"`
	NodeID     uint32 `json:"node_id"`
	MMCID      uint32 `json:"mm_cid"`
	AreaFlags  uint32 `json:"flags"`
	// HasNodeCID is false for areas registered with the original 32-byte
	// length on kernels older than 6.3, whose node_id and mm_cid are not
	// written.
	HasNodeCID bool   `json:"has_node_cid"`
	RseqCS     uint64 `json:"rseq_cs"`
	// IP is where the thread was stopped.
	IP uint64 `json:"ip"`
	// InSection is set when IP lies inside the section rseq_cs points to.
	InSection bool `json:"in_section"`
	// Section is the section rseq_cs points to, when set.
	Section *Section `json:"section,omitempty"`
	// Stop says how the thread stopped: "interrupt", "group-stop" (the
	// process was already stopped) or "signal N" (a pending signal, which
	// was delivered on detach).
	Stop string `json:"stop"`
}

// Process is the report for one process.
type Process struct {
	PID     int      `json:"pid"`
	Command string   `json:"command"`
	Threads []Thread `json:"threads"`
	// Vanished counts threads that exited while being inspected.
	Vanished int `json:"vanished"`
	// Notes are non-fatal problems (e.g. a thread that could not be read).
	Notes []string `json:"notes,omitempty"`
}

// Symbolizer names the section that contains addr in process pid; it returns
// ok false when it does not know one.
type Symbolizer func(pid int, addr uint64) (object, symbol string, ok bool)

// ErrExited reports a process that exited before or while it was inspected.
var ErrExited = errors.New("process exited")
