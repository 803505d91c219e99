package rseq

//go:generate go run ./internal/gensections

import (
	"sync"
	"sync/atomic"
	"unsafe"
)

// Per-CPU operations.
//
// Each operation works on one slot of a per-CPU array: slot i starts at
// base + i*stride, and the array has Slots() slots. On a thread with an rseq
// area an operation is a restartable critical section in assembly: it runs on
// the slot of the CPU (or concurrency id) the thread is on, with plain loads
// and stores and no atomic instruction, and the kernel restarts it if the
// thread is preempted, migrated or signalled before its single commit store.
//
// Two kinds of operation exist:
//
//   - Add, AddIndirect and Pop (and the handle-array operations of
//     handles.go) choose the slot inside the section, from the index the
//     thread runs on, and return it.
//   - CompareAndStore, CompareBothAndStore, StoreThenCommit and
//     CopyThenCommit take the slot the caller computed its addresses for
//     (from Index.Slot) and return Moved, without touching memory, when the
//     thread no longer runs on it; the caller then reads Index.Slot again and
//     retries. They return CompareFailed when a comparison fails.
//
// What slots may hold: words the operations write are uintptr or int64
// values, never Go pointers; the assembly stores them without write
// barriers, so a slot must not be a pointer-typed Go variable. A word that
// holds an address (a list head, the pointer AddIndirect follows) must refer
// to memory the Go GC does not manage, or to memory kept alive by other
// references, and reading it must not be the only thing keeping it alive.
// CopyThenCommit copies bytes: source and destination must hold no Go
// pointers.
//
// Fallback: where a thread cannot use rseq the same operations give the same
// results under a lock. A restartable section's plain store and a fallback's
// update never touch the same word: threads without an area use the shared
// slot (SharedSlot), which restartable sections never touch, and when no
// thread of the process runs sections (Features().Operations is false) every
// slot is updated under the fallback's locks. The fallback serializes
// operations by the address of their commit word (the slot's word for Add,
// AddIndirect and Pop; v for the others), so operations that must exclude
// each other must name the same commit word.

// Memory ordering, for readers on other CPUs (a section and the next one on
// the same slot always run on one CPU, which sees its own stores in order):
//
//   - Add, AddIndirect, Pop and the handle operations commit with a plain
//     word store: another CPU reads the old or the new word, never a torn
//     one (use sync/atomic loads), with no order against the section's other
//     stores. A consumer that needs more locks the slot from outside and
//     calls Fence: the target CPU executes a full barrier before Fence
//     returns.
//   - StoreThenCommit(Release) and CopyThenCommit(Release) publish their
//     speculative stores with the commit: an acquire load of the commit word
//     (sync/atomic) on another CPU that sees the new value sees them too. On
//     amd64 every store is a release; on arm64 the commit is STLR.
//   - CompareAndStore and CompareBothAndStore load *v with acquire semantics
//     (on arm64 LDAR; on amd64 every load): taking a lock word that another
//     CPU released with a release store (sync/atomic) orders the caller's
//     later loads after that CPU's earlier stores.
//   - Under the fallback, every operation runs under a mutex.

// Index selects what numbers the slots of a per-CPU array.
//
// An array is numbered one way for its whole life: every operation on it
// must pass the same Index. Slot k belongs to CPU k under ByCPU and to
// concurrency id k under ByConcurrencyID, and the thread with CPU k and the
// thread with concurrency id k generally run at the same time on different
// CPUs: mixing the two on one array lets two sections update one slot at
// once, and updates are lost. An Array binds base, stride and Index, so that
// its methods cannot mix them. (The structures of package percpu use ByCPU
// throughout.)
type Index uint8

const (
	// ByCPU indexes slots by CPU number.
	ByCPU Index = iota
	// ByConcurrencyID indexes slots by the thread's concurrency id
	// (mm_cid), which stays dense when a process uses few of many CPUs.
	// Where the kernel has no mm_cid it is the CPU number.
	ByConcurrencyID
)

// String returns "cpu" or "concurrency-id".
func (ix Index) String() string {
	if ix == ByConcurrencyID {
		return "concurrency-id"
	}
	return "cpu"
}

// Status is the outcome of an operation that compares before it commits.
type Status uint8

const (
	// Committed: the comparison held and the commit store was made.
	Committed Status = iota
	// CompareFailed: a comparison failed; nothing was stored.
	CompareFailed
	// Moved: the thread does not run on the slot the caller gave; nothing
	// was stored. Read Index.Slot again and retry.
	Moved
)

// String returns "committed", "compare-failed" or "moved".
func (s Status) String() string {
	switch s {
	case Committed:
		return "committed"
	case CompareFailed:
		return "compare-failed"
	case Moved:
		return "moved"
	}
	return "Status(?)"
}

// Slots returns how many slots a per-CPU array needs: PossibleCPUs() slots
// for the CPUs (or concurrency ids) plus the shared slot.
func Slots() int { return possibleCPUs + 1 }

// SharedSlot returns the index of the slot that threads without an rseq area
// use, under the fallback's lock, while other threads run sections. It is
// always Slots()-1.
func SharedSlot() int { return possibleCPUs }

// concurrencyIDField is the offset of the struct rseq field that numbers
// the slots for ByConcurrencyID: mm_cid where the kernel fills it, else
// cpu_id_start. It is set during initialisation. ByCPU's field is always
// cpu_id_start, a constant.
var concurrencyIDField uintptr = offCPUIDStart

// INDEX_FIELD (area_linux_*.h) gives ByCPU the offset 0 as a constant:
// this fails to compile if cpu_id_start moves.
const _ = -uint(offCPUIDStart)

// field returns the area field behind ix. ByCPU's is a constant, so that
// a call with ByCPU, inlined, passes 0 and reads no variable first.
func (ix Index) field() uintptr {
	if ix&1 == 0 {
		return offCPUIDStart
	}
	return concurrencyIDField
}

// Slot returns the slot the calling thread should compute addresses for
// before a compare-and-commit operation: its CPU number or concurrency id
// where it runs sections, SharedSlot otherwise (when the process runs no
// sections at all, its CPU or concurrency id again). Like CPU, the answer can
// be stale by the time it is used; the operation then returns Moved.
func (ix Index) Slot() int { return slotOf(ix.field()) }

// slotSlow is Slot for a thread without a usable area at hand; slotOf
// (assembly) jumps here.
func slotSlow(field uintptr) int {
	if opsMode != areaModeNone {
		// Sections run, so opsMode == areaMode: the area's own field is
		// the slot.
		if ensureArea() != 0 {
			if v, ok := areaField(field); ok {
				return int(v)
			}
		}
		return possibleCPUs
	}
	return fallbackSlot(field)
}

// opsMode is areaMode when the operations run as restartable sections, and
// areaModeNone when they all use the fallback. The sections' LOAD_AREA
// reads it; initOperations (verify_linux.go) sets it.
var opsMode uint8

// Add adds n to the int64 at the start of the calling thread's slot and
// returns the slot:
//
//	slot = index of the calling thread
//	*(*int64)(base + slot*stride) += n
func Add(base unsafe.Pointer, stride uintptr, ix Index, n int64) (slot int) {
	return addSection(base, stride, ix.field(), n)
}

// AddIndirect adds n to an int64 reached through a pointer word in the
// calling thread's slot, and returns the slot (two loads, one add, one
// store):
//
//	slot = index of the calling thread
//	p := *(*uintptr)(base + slot*stride)
//	*(*int64)(p + off) += n
func AddIndirect(base unsafe.Pointer, stride uintptr, ix Index, off uintptr, n int64) (slot int) {
	return addIndirectSection(base, stride, ix.field(), off, n)
}

// Pop removes the first node of the singly linked list whose head word is at
// the start of the calling thread's slot:
//
//	slot = index of the calling thread
//	v := (*uintptr)(base + slot*stride)
//	if *v != empty {
//		head, ok = *v, true
//		*v = *(*uintptr)(*v + nextOff)
//	}
//
// Nodes are addresses (see the package's rules on what slots may hold).
func Pop(base unsafe.Pointer, stride uintptr, ix Index, empty, nextOff uintptr) (slot int, head uintptr, ok bool) {
	return popSection(base, stride, ix.field(), empty, nextOff)
}

// CompareAndStore, on the thread's slot:
//
//	if slot != index of the calling thread { return Moved }
//	if *v != expect { return CompareFailed }
//	*v = new
func CompareAndStore(ix Index, slot int, v *uintptr, expect, new uintptr) Status {
	return cmpStoreSection(ix.field(), slot, v, expect, new)
}

// CompareBothAndStore, on the thread's slot:
//
//	if slot != index of the calling thread { return Moved }
//	if *v != expect || *v2 != expect2 { return CompareFailed }
//	*v = new
func CompareBothAndStore(ix Index, slot int, v *uintptr, expect uintptr, v2 *uintptr, expect2, new uintptr) Status {
	return cmp2StoreSection(ix.field(), slot, v, expect, v2, expect2, new)
}

// StoreThenCommit, on the thread's slot:
//
//	if slot != index of the calling thread { return Moved }
//	if *v != expect { return CompareFailed }
//	*v2 = new2 // speculative: meaningful only once *v commits it
//	*v = new   // commit
//
// The store to v2 can happen more than once, or without the commit that
// gives it meaning, when the section is restarted: v2 must be memory that
// means nothing until v changes (a buffer entry beyond the committed end).
// The commit is release-ordered on every platform (on amd64 every store is;
// on arm64 it is STLR), so StoreThenCommitRelease is the same operation.
func StoreThenCommit(ix Index, slot int, v *uintptr, expect uintptr, v2 *uintptr, new2, new uintptr) Status {
	return storeCommitSection(ix.field(), slot, v, expect, v2, new2, new)
}

// StoreThenCommitRelease is StoreThenCommit whose commit store is ordered
// after the speculative store for other threads (release semantics).
func StoreThenCommitRelease(ix Index, slot int, v *uintptr, expect uintptr, v2 *uintptr, new2, new uintptr) Status {
	return storeCommitSection(ix.field(), slot, v, expect, v2, new2, new)
}

// CopyThenCommit, on the thread's slot:
//
//	if slot != index of the calling thread { return Moved }
//	if *v != expect { return CompareFailed }
//	copy(dst[:n], src[:n]) // speculative, like StoreThenCommit's v2
//	*v = new               // commit
//
// dst and src must hold no Go pointers. The copy runs inside the section,
// so n should stay small (hundreds of bytes): a section that runs longer
// than a scheduler tick restarts ever more often.
func CopyThenCommit(ix Index, slot int, v *uintptr, expect uintptr, dst, src unsafe.Pointer, n uintptr, new uintptr) Status {
	return copyCommitSection(ix.field(), slot, v, expect, dst, src, n, new)
}

// CopyThenCommitRelease is CopyThenCommit with the commit store ordered
// after the copy for other threads (release semantics). CopyThenCommit's
// commit is release-ordered too, on amd64 and arm64: the same code.
func CopyThenCommitRelease(ix Index, slot int, v *uintptr, expect uintptr, dst, src unsafe.Pointer, n uintptr, new uintptr) Status {
	return copyCommitSection(ix.field(), slot, v, expect, dst, src, n, new)
}

// CompareAndStoreRemote compares and stores a commit word of a slot that
// belongs to another CPU, for consumers that drain or lock per-CPU data from
// outside. It is an atomic compare-and-swap, made under the fallback's lock
// for v. It is not enough alone: a restartable section on the slot's CPU may
// have read v before this store and commit after it. Call Fence for that CPU
// afterwards and read v again: sections that had read v are then finished
// or restarted, and the value read is final until the next section runs.
// Give the remote writer values that sections never store (say, 2 where a
// per-CPU lock's sections store 1), so the re-read tells who won.
//
// The recipe as stated is for ByCPU arrays, where Fence(slot) reaches the
// CPU that owns the slot. In a ByConcurrencyID array the thread that holds
// concurrency id k may run on any CPU: call FenceAll instead.
func CompareAndStoreRemote(v *uintptr, expect, new uintptr) bool {
	mu := fallbackLock(uintptr(unsafe.Pointer(v)))
	mu.Lock()
	ok := atomic.CompareAndSwapUintptr(v, expect, new)
	mu.Unlock()
	return ok
}

// fallbackLocks serialize the fallback's operations, chosen by the address
// of the commit word.
var fallbackLocks [64]struct {
	sync.Mutex
	_ [64 - unsafe.Sizeof(sync.Mutex{})]byte
}

func fallbackLock(addr uintptr) *sync.Mutex {
	h := (addr >> 3) ^ (addr >> 9) ^ (addr >> 15)
	return &fallbackLocks[h%uintptr(len(fallbackLocks))].Mutex
}

// Section describes one restartable critical section of the package, at
// its address in the running process.
type Section struct {
	// Name is the operation, e.g. "add" or "copyCommit".
	Name string
	// Descriptor is the address of its struct rseq_cs.
	Descriptor uintptr
	// Start is start_ip, PostCommit is start_ip + post_commit_offset (the
	// first address after the commit store) and Abort is abort_ip.
	Start, PostCommit, Abort uintptr
	// Exits lists the addresses the section may leave through other than
	// the abort handler and the fall-through at PostCommit.
	Exits []uintptr
}
