//go:build linux

// Package ptrace holds the small ptrace helpers that rseq ps and rseq torture
// share: attaching with the least disturbance, reading a thread's rseq
// registration (PTRACE_GET_RSEQ_CONFIGURATION), reading and writing a traced
// process's memory, listing threads, and explaining why attaching failed.
//
// Every ptrace request for a tracee must come from the one OS thread that
// attached to it: callers run on a goroutine locked with runtime.LockOSThread.
package ptrace

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// RequestGetRseqConfiguration is PTRACE_GET_RSEQ_CONFIGURATION (Linux 5.13+).
const RequestGetRseqConfiguration = 0x420f

// Offsets of the fields of struct rseq that the tools read or write.
const (
	OffCPUIDStart = 0
	OffCPUID      = 4
	OffRseqCS     = 8
	OffFlags      = 16
	OffNodeID     = 20
	OffMMCID      = 24
)

// RseqConfig is the kernel's struct ptrace_rseq_configuration: a thread's
// registered rseq area.
type RseqConfig struct {
	Pointer   uint64 // address of the registered struct rseq, 0 if none
	Size      uint32 // length given to the rseq system call
	Signature uint32 // signature given to the rseq system call
	Flags     uint32
	pad       uint32
}

// ErrNoRseqConfig reports a kernel without PTRACE_GET_RSEQ_CONFIGURATION.
var ErrNoRseqConfig = errors.New("kernel lacks PTRACE_GET_RSEQ_CONFIGURATION (Linux 5.13 or newer is needed)")

// GetRseqConfig returns the rseq registration of the stopped tracee tid.
func GetRseqConfig(tid int) (RseqConfig, error) {
	var c RseqConfig
	n, _, e := unix.Syscall6(unix.SYS_PTRACE, RequestGetRseqConfiguration, uintptr(tid),
		unsafe.Sizeof(c), uintptr(unsafe.Pointer(&c)), 0, 0)
	if e != 0 {
		if e == unix.EIO || e == unix.EINVAL {
			return c, ErrNoRseqConfig
		}
		return c, fmt.Errorf("PTRACE_GET_RSEQ_CONFIGURATION on thread %d: %w", tid, e)
	}
	if n != unsafe.Sizeof(c) {
		return c, fmt.Errorf("PTRACE_GET_RSEQ_CONFIGURATION on thread %d returned %d bytes, want %d", tid, n, unsafe.Sizeof(c))
	}
	return c, nil
}

// Seize attaches to tid with PTRACE_SEIZE, which does not stop it.
func Seize(tid int, options int) error {
	_, _, e := unix.Syscall6(unix.SYS_PTRACE, unix.PTRACE_SEIZE, uintptr(tid), 0, uintptr(options), 0, 0)
	if e != 0 {
		return e
	}
	return nil
}

// Interrupt stops a seized tracee (PTRACE_INTERRUPT).
func Interrupt(tid int) error { return unix.PtraceInterrupt(tid) }

// Detach detaches from a stopped tracee, delivering sig (0 for none).
func Detach(tid, sig int) error {
	_, _, e := unix.Syscall6(unix.SYS_PTRACE, unix.PTRACE_DETACH, uintptr(tid), 0, uintptr(sig), 0, 0)
	if e != 0 {
		return e
	}
	return nil
}

// SigInfo returns the signal number and si_code of the signal that stopped
// tid; it fails with EINVAL when tid is in a group-stop.
func SigInfo(tid int) (signo, code int32, err error) {
	var buf [128]byte
	_, _, e := unix.Syscall6(unix.SYS_PTRACE, unix.PTRACE_GETSIGINFO, uintptr(tid), 0, uintptr(unsafe.Pointer(&buf[0])), 0, 0)
	if e != 0 {
		return 0, 0, e
	}
	signo = int32(binary.LittleEndian.Uint32(buf[0:]))
	code = int32(binary.LittleEndian.Uint32(buf[8:]))
	return signo, code, nil
}

// Mem gives access to a process's memory through /proc/PID/mem, which the
// kernel allows to a process that may ptrace the target; writes reach
// read-only mappings (text) the way a debugger's do.
type Mem struct {
	f *os.File
}

// OpenMem opens the memory of process pid for reading and, if write is set,
// writing.
func OpenMem(pid int, write bool) (*Mem, error) {
	flag := os.O_RDONLY
	if write {
		flag = os.O_RDWR
	}
	f, err := os.OpenFile("/proc/"+strconv.Itoa(pid)+"/mem", flag, 0)
	if err != nil {
		return nil, err
	}
	return &Mem{f: f}, nil
}

// Close releases the file.
func (m *Mem) Close() error { return m.f.Close() }

// Read fills b from address addr.
func (m *Mem) Read(addr uint64, b []byte) error {
	n, err := m.f.ReadAt(b, int64(addr))
	if err != nil && n != len(b) {
		return fmt.Errorf("reading %d bytes at %#x: %w", len(b), addr, err)
	}
	return nil
}

// Write stores b at address addr.
func (m *Mem) Write(addr uint64, b []byte) error {
	n, err := m.f.WriteAt(b, int64(addr))
	if err != nil || n != len(b) {
		return fmt.Errorf("writing %d bytes at %#x: %v", len(b), addr, err)
	}
	return nil
}

// Uint64 reads a little-endian u64 at addr.
func (m *Mem) Uint64(addr uint64) (uint64, error) {
	var b [8]byte
	if err := m.Read(addr, b[:]); err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint64(b[:]), nil
}

// Threads lists the thread ids of process pid: the thread group leader
// (whose id is pid) first, then the others in increasing order. Thread ids
// are not in creation order once the kernel's ids wrap around pid_max, so
// the leader is put first by its id, not by sorting.
func Threads(pid int) ([]int, error) {
	ents, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/task")
	if err != nil {
		return nil, err
	}
	tids := make([]int, 0, len(ents))
	for _, e := range ents {
		if t, err := strconv.Atoi(e.Name()); err == nil {
			tids = append(tids, t)
		}
	}
	leaderFirst(pid, tids)
	return tids, nil
}

// leaderFirst sorts the thread ids of process pid: pid first, then the
// others in increasing order.
func leaderFirst(pid int, tids []int) {
	slices.SortFunc(tids, func(a, b int) int {
		switch {
		case a == b:
			return 0
		case a == pid:
			return -1
		case b == pid:
			return 1
		}
		return cmp.Compare(a, b)
	})
}

// ThreadName returns the comm of thread tid of process pid ("" if gone).
func ThreadName(pid, tid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/comm", pid, tid))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// Explain turns the failure of attaching to pid into an error that names the
// cause: the Yama ptrace_scope setting, a different owner, a missing
// CAP_SYS_PTRACE, or a process that is gone.
func Explain(pid int, err error) error {
	if errors.Is(err, unix.ESRCH) {
		if _, serr := os.Stat(fmt.Sprintf("/proc/%d", pid)); serr != nil {
			return fmt.Errorf("process %d does not exist (or exited)", pid)
		}
		return fmt.Errorf("process %d exited while being attached: %w", pid, err)
	}
	if !errors.Is(err, unix.EPERM) {
		return fmt.Errorf("attaching to process %d: %w", pid, err)
	}
	var causes []string
	hasCap := haveCapSysPtrace()
	if scope, ok := yamaScope(); ok && scope > 0 {
		switch scope {
		case 1:
			if !hasCap {
				causes = append(causes, "kernel.yama.ptrace_scope is 1 (only a parent may trace its descendants without CAP_SYS_PTRACE)")
			}
		case 2:
			if !hasCap {
				causes = append(causes, "kernel.yama.ptrace_scope is 2 (only processes with CAP_SYS_PTRACE may trace)")
			}
		default:
			causes = append(causes, fmt.Sprintf("kernel.yama.ptrace_scope is %d (ptrace is disabled for everyone)", scope))
		}
	}
	if uids, ok := procUIDs(pid); ok {
		me := os.Geteuid()
		differ := false
		for _, u := range uids {
			if u != me {
				differ = true
			}
		}
		if differ && !hasCap {
			causes = append(causes, fmt.Sprintf("process %d belongs to another user (uid %d, you are uid %d) and you lack CAP_SYS_PTRACE", pid, uids[0], me))
		}
	}
	if d, ok := procDumpable(pid); ok && !d && !hasCap {
		causes = append(causes, fmt.Sprintf("process %d is not dumpable (set-uid, or it called prctl(PR_SET_DUMPABLE, 0)) and you lack CAP_SYS_PTRACE", pid))
	}
	if len(causes) == 0 {
		causes = append(causes, "refused by the kernel or a security module (another tracer already attached? check /proc/"+strconv.Itoa(pid)+"/status TracerPid)")
		if tp, ok := tracerPid(pid); ok && tp != 0 {
			causes[0] = fmt.Sprintf("process %d is already traced by process %d", pid, tp)
		}
	}
	return fmt.Errorf("no permission to trace process %d: %s", pid, strings.Join(causes, "; "))
}

func yamaScope() (int, bool) {
	b, err := os.ReadFile("/proc/sys/kernel/yama/ptrace_scope")
	if err != nil {
		return 0, false
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	return n, err == nil
}

func statusField(pid int, name string) (string, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return "", false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, name+":"); ok {
			return strings.TrimSpace(v), true
		}
	}
	return "", false
}

func procUIDs(pid int) ([]int, bool) {
	v, ok := statusField(pid, "Uid")
	if !ok {
		return nil, false
	}
	var uids []int
	for _, f := range strings.Fields(v) {
		n, err := strconv.Atoi(f)
		if err != nil {
			return nil, false
		}
		uids = append(uids, n)
	}
	return uids, len(uids) > 0
}

func tracerPid(pid int) (int, bool) {
	v, ok := statusField(pid, "TracerPid")
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(v)
	return n, err == nil
}

func procDumpable(pid int) (bool, bool) {
	// /proc/PID/mem and friends become root-owned when a process is not
	// dumpable; the owner of /proc/PID/environ tells.
	var st unix.Stat_t
	if err := unix.Stat(fmt.Sprintf("/proc/%d/environ", pid), &st); err != nil {
		return false, false
	}
	uids, ok := procUIDs(pid)
	if !ok {
		return false, false
	}
	return !(st.Uid == 0 && uids[0] != 0), true
}

// haveCapSysPtrace reports whether this process's effective capabilities
// include CAP_SYS_PTRACE (19).
func haveCapSysPtrace() bool {
	v, ok := statusField(os.Getpid(), "CapEff")
	if !ok {
		return false
	}
	n, err := strconv.ParseUint(v, 16, 64)
	return err == nil && n&(1<<19) != 0
}

// CaughtSignals returns the mask of signals process pid has handlers for
// (bit n-1 for signal n), from /proc/PID/status SigCgt.
func CaughtSignals(pid int) uint64 {
	v, ok := statusField(pid, "SigCgt")
	if !ok {
		return 0
	}
	n, _ := strconv.ParseUint(v, 16, 64)
	return n
}

// statFields returns the fields of /proc/PID/task/TID/stat that follow the
// command name, so that index 0 is field 3 of proc(5) (the state) and index
// n is field n+3; nil if the thread is gone.
func statFields(pid, tid int) []string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/stat", pid, tid))
	if err != nil {
		return nil
	}
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(string(b[i+1:]))
}

// statInt returns field n (numbered as in proc(5)) of thread tid's stat as
// an integer, or -1.
func statInt(pid, tid, n int) int {
	f := statFields(pid, tid)
	if len(f) <= n-3 {
		return -1
	}
	v, err := strconv.Atoi(f[n-3])
	if err != nil {
		return -1
	}
	return v
}

// ThreadState returns the state letter of thread tid of process pid from
// its stat ('R', 'S', 'Z', ...), or 0 if the thread is gone.
func ThreadState(pid, tid int) byte {
	f := statFields(pid, tid)
	if len(f) == 0 || f[0] == "" {
		return 0
	}
	return f[0][0]
}

// ParentPID returns the parent process id of pid (field 4 of its stat), or
// -1 if the process is gone.
func ParentPID(pid int) int { return statInt(pid, pid, 4) }

// LastCPU returns the CPU thread tid last ran on (field 39 of its stat), or
// -1 if the thread is gone.
func LastCPU(tid int) int { return statInt(tid, tid, 39) }
