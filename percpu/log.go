package percpu

import (
	"encoding/binary"
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
// CPU wait meanwhile. Records of one CPU come out in append order.
//
// Memory: rseq.Slots() parts of 128 bytes plus the capacity rounded up to
// 128 bytes.
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

func (l *Log) data(slot int, off uintptr) unsafe.Pointer {
	return unsafe.Add(l.base, uintptr(slot)*l.stride+line+off)
}

// Append adds rec to the calling CPU's log. It returns ErrFull when that
// log has no room for it, and an error naming the cause for a record of
// the wrong size.
func (l *Log) Append(rec []byte) error {
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
	end := lockRemote(t, slot, false, unlockedWord, lockedWord)
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
// may Append to the same Log. Drain returns an error only if it finds a
// record it cannot parse, which would mean a torn record.
func (l *Log) Drain(f func(cpu int, rec []byte)) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	for slot := 0; slot < rseq.Slots(); slot++ {
		t := l.tail(slot)
		if atomic.LoadUintptr(t) == 0 {
			continue
		}
		end := lockRemote(t, slot, l.fenced, unlockedWord, lockedWord)
		if uintptr(cap(l.scratch)) < end {
			l.scratch = make([]byte, end)
		}
		buf := l.scratch[:end]
		copy(buf, unsafe.Slice((*byte)(l.data(slot, 0)), end))
		unlockRemote(t, lockedWord(end), 0)
		if err := l.parse(slot, buf, f); err != nil {
			return err
		}
	}
	return nil
}

func (l *Log) parse(slot int, buf []byte, f func(int, []byte)) error {
	if l.recSize > 0 {
		if len(buf)%l.recSize != 0 {
			return errorf("Log.Drain: CPU %d log holds %d bytes, not a whole number of %d-byte records", slot, len(buf), l.recSize)
		}
		for off := 0; off < len(buf); off += l.recSize {
			f(slot, buf[off:off+l.recSize])
		}
		return nil
	}
	for off := 0; off < len(buf); {
		if len(buf)-off < header {
			return errorf("Log.Drain: CPU %d log: %d stray bytes at offset %d", slot, len(buf)-off, off)
		}
		n := int(binary.LittleEndian.Uint32(buf[off:]))
		size := (header + n + 7) &^ 7
		if n > MaxRecord || binary.LittleEndian.Uint32(buf[off+4:]) != 0 || off+size > len(buf) {
			return errorf("Log.Drain: CPU %d log: bad record header at offset %d", slot, off)
		}
		f(slot, buf[off+header:off+header+n])
		off += size
	}
	return nil
}
