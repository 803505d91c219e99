package percpu

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/gorseq/rseq"
)

// MaxRecord is the largest record a Log takes. Appending copies the record
// inside a restartable section, which restarts when the thread is
// interrupted; records are kept short so the copy finishes between
// interruptions.
const MaxRecord = 1024

// Log is a per-CPU log of byte records, appended by producers on their own
// CPU and drained by a consumer from all CPUs: for event tracing and
// batching.
//
// Append copies the record beyond the end of the calling CPU's log and
// commits the new end, in one restartable section (rseq.CopyThenCommit):
// no lock, no atomic instruction. A record is either wholly in the log or
// not at all: Drain never sees a torn, partial or duplicated record. When
// the CPU's log has no room Append returns ErrFull.
//
// Records are fixed-size (NewLog with a record size: the record is copied
// as it is, the cheaper form) or variable-size (record size 0: each record
// gets an 8-byte header holding its length and is padded to 8 bytes; header
// and record are first put together in a scratch buffer from a sync.Pool,
// since one section must copy both; records up to MaxRecord bytes).
//
// Drain locks each CPU's log from outside (rseq.CompareAndStoreRemote of
// its end with a lock bit, then rseq.Fence, a membarrier system call, for
// that CPU), copies the records out and empties the log; appends on that
// CPU wait meanwhile (Drain asks for a time-slice extension while it holds
// the lock, rseq.SliceRequest). Records of one CPU come out in append order.
//
// Memory: rseq.Slots() parts of 128 bytes plus the capacity rounded up to
// 128 bytes. Make it with NewLog: the zero Log has no storage, and its
// methods panic naming NewLog.
type Log struct {
	mem     []uint64
	base    unsafe.Pointer
	stride  uintptr
	cap     uintptr // bytes per CPU
	recSize int     // 0: variable-size records
	fenced  bool
	mu      sync.Mutex // serializes Drain
	scratch []byte     // Drain's copy of one CPU's log
}

// header is the size of a variable-size record's header (its length in
// the first 4 bytes, little-endian; 4 bytes reserved, zero).
const header = 8

// NewLog returns a Log of bytesPerCPU bytes for each CPU. With recordSize
// > 0 every record must be exactly that long; with 0 records may have any
// length up to MaxRecord (and cost 8 bytes more, rounded up to 8).
func NewLog(bytesPerCPU, recordSize int) (*Log, error) {
	if recordSize < 0 || recordSize > MaxRecord {
		return nil, errorf("NewLog: record size %d out of range [0, %d]", recordSize, MaxRecord)
	}
	min := recordSize
	if recordSize == 0 {
		min = header + 8
	}
	if bytesPerCPU < min || bytesPerCPU > 1<<30 {
		return nil, errorf("NewLog: %d bytes per CPU out of range [%d, %d]", bytesPerCPU, min, 1<<30)
	}
	l := &Log{cap: uintptr(bytesPerCPU), recSize: recordSize, fenced: fenced()}
	l.stride = line + (l.cap+line-1)/line*line
	l.mem, l.base = words(rseq.Slots(), l.stride)
	return l, nil
}

func (l *Log) tail(slot int) *uintptr { return word(l.base, slot, l.stride) }

// check panics for the zero Log.
func (l *Log) check() {
	if l.base == nil {
		zeroUse("Log", "NewLog")
	}
}

func (l *Log) data(slot int, off uintptr) unsafe.Pointer {
	return unsafe.Add(l.base, uintptr(slot)*l.stride+line+off)
}

// Append adds rec to the calling CPU's log. It returns ErrFull when that
// log has no room for it, and an error naming the cause for a record of
// the wrong size.
func (l *Log) Append(rec []byte) error {
	l.check()
	if l.recSize > 0 {
		if len(rec) != l.recSize {
			return errorf("Log.Append: record of %d bytes in a log of %d-byte records", len(rec), l.recSize)
		}
		return l.append(unsafe.Pointer(unsafe.SliceData(rec)), uintptr(len(rec)))
	}
	if len(rec) > MaxRecord {
		return errorf("Log.Append: record of %d bytes, more than MaxRecord (%d)", len(rec), MaxRecord)
	}
	// The header and the record must be copied by the same section, so
	// they are put together first. (The buffer would escape to the heap
	// if it lived on the stack: the sections are assembly.)
	buf := scratchPool.Get().(*[header + MaxRecord]byte)
	binary.LittleEndian.PutUint32(buf[:], uint32(len(rec)))
	binary.LittleEndian.PutUint32(buf[4:], 0)
	copy(buf[header:], rec)
	n := (header + uintptr(len(rec)) + 7) &^ 7
	err := l.append(unsafe.Pointer(&buf[0]), n)
	scratchPool.Put(buf)
	return err
}

var scratchPool = sync.Pool{New: func() any { return new([header + MaxRecord]byte) }}

func (l *Log) append(src unsafe.Pointer, n uintptr) error {
	if n > l.cap {
		return errorf("Log.Append: record of %d bytes does not fit a log of %d bytes per CPU", n, l.cap)
	}
	if !l.fenced {
		return l.appendLocked(src, n)
	}
	tries := 0
	for {
		slot := rseq.ByCPU.Slot()
		t := l.tail(slot)
		end := atomic.LoadUintptr(t)
		if !unlockedWord(end) {
			backoff(&tries) // a Drain holds this CPU's log
			continue
		}
		if end+n > l.cap {
			return ErrFull
		}
		if rseq.CopyThenCommitRelease(rseq.ByCPU, slot, t, end, l.data(slot, end), src, n, end+n) == rseq.Committed {
			return nil
		}
	}
}

func (l *Log) appendLocked(src unsafe.Pointer, n uintptr) error {
	slot := lockedSlot()
	t := l.tail(slot)
	end := lockLocal(t, slot, unlockedWord, lockedWord)
	if end+n > l.cap {
		unlockRemote(t, lockedWord(end), end)
		return ErrFull
	}
	copy(unsafe.Slice((*byte)(l.data(slot, end)), n), unsafe.Slice((*byte)(src), n))
	unlockRemote(t, lockedWord(end), end+n)
	return nil
}

// Drain calls f with every record of every CPU's log, in append order for
// each CPU, and empties the logs. cpu is the index of the part the record
// was appended to (rseq.SharedSlot() for threads without rseq). rec is
// valid only during the call. The logs are unlocked before f runs, so f
// may Append to the same Log.
//
// Drain returns an error in two cases, neither of which loses data:
//
//   - It cannot exclude the restartable sections of a CPU (the membarrier
//     system call refused after the Log was made). Drain stops there: the
//     records given to f so far are out of the logs, every other record is
//     still in its log, and the Log stays usable.
//   - A CPU's log holds bytes that do not parse as records (which would
//     mean a torn record). f gets every record before them; the bytes
//     from the first one that does not parse to the end of that CPU's log
//     come back in a *CorruptError, and Drain goes on with the other CPUs.
//     All such errors are joined (errors.As finds each).
func (l *Log) Drain(f func(cpu int, rec []byte)) error {
	l.check()
	l.mu.Lock()
	defer l.mu.Unlock()
	var corrupt []error
	for slot := 0; slot < rseq.Slots(); slot++ {
		t := l.tail(slot)
		if atomic.LoadUintptr(t) == 0 {
			continue
		}
		end, err := lockRemote(t, slot, l.fenced, unlockedWord, lockedWord)
		if err != nil {
			return errors.Join(append(corrupt, err)...)
		}
		if uintptr(cap(l.scratch)) < end {
			l.scratch = make([]byte, end)
		}
		// Appends on that CPU wait while the word is held here: ask the
		// kernel not to schedule this thread out meanwhile.
		s := rseq.SliceRequest()
		buf := l.scratch[:end]
		copy(buf, unsafe.Slice((*byte)(l.data(slot, 0)), end))
		unlockRemote(t, lockedWord(end), 0)
		s.End()
		if err := l.parse(slot, buf, f); err != nil {
			corrupt = append(corrupt, err)
		}
	}
	return errors.Join(corrupt...)
}

// CorruptError is what Log.Drain returns for bytes of a CPU's log that do
// not parse as records.
type CorruptError struct {
	CPU    int    // the part of the log (rseq.SharedSlot() for threads without rseq)
	Offset int    // where the bytes began in that part
	Reason string // what is wrong with the first of them
	Data   []byte // the bytes, from Offset to the end of the part
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("percpu: Log.Drain: CPU %d log: %s at offset %d (%d bytes kept in the error)", e.CPU, e.Reason, e.Offset, len(e.Data))
}

// parse calls f with the records in buf, one CPU's log, and returns a
// *CorruptError holding a copy of whatever does not parse.
func (l *Log) parse(slot int, buf []byte, f func(int, []byte)) error {
	bad := func(off int, why string) error {
		return &CorruptError{CPU: slot, Offset: off, Reason: why, Data: append([]byte(nil), buf[off:]...)}
	}
	if l.recSize > 0 {
		whole := len(buf) / l.recSize * l.recSize
		for off := 0; off < whole; off += l.recSize {
			f(slot, buf[off:off+l.recSize])
		}
		if whole != len(buf) {
			return bad(whole, fmt.Sprintf("%d bytes, not a whole %d-byte record", len(buf)-whole, l.recSize))
		}
		return nil
	}
	for off := 0; off < len(buf); {
		if len(buf)-off < header {
			return bad(off, fmt.Sprintf("%d stray bytes", len(buf)-off))
		}
		n := int(binary.LittleEndian.Uint32(buf[off:]))
		size := (header + n + 7) &^ 7
		if n > MaxRecord || binary.LittleEndian.Uint32(buf[off+4:]) != 0 || off+size > len(buf) {
			return bad(off, "bad record header")
		}
		f(slot, buf[off+header:off+header+n])
		off += size
	}
	return nil
}
