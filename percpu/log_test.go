package percpu

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"unsafe"

	"github.com/gorseq/rseq"
)

// record makes record id of the log test: the id, then a pattern that
// depends on it, of a length that depends on it.
func record(id uint64, fixed int) []byte {
	n := fixed
	if n == 0 {
		n = 8 + int(id%97)
	}
	r := make([]byte, n)
	binary.LittleEndian.PutUint64(r, id)
	for i := 8; i < n; i++ {
		r[i] = byte(id*31 + uint64(i))
	}
	return r
}

func checkRecord(r []byte, fixed int) (uint64, bool) {
	if len(r) < 8 {
		return 0, false
	}
	id := binary.LittleEndian.Uint64(r)
	want := record(id, fixed)
	if string(want) != string(r) {
		return id, false
	}
	return id, true
}

func testLogExact(t *testing.T, fixed int) {
	l, err := NewLog(4096, fixed)
	if err != nil {
		t.Fatal(err)
	}
	const G = 6
	var counts []int
	var mu sync.Mutex
	seen := make(map[uint64]int)
	torn := 0
	drain := func() {
		err := l.Drain(func(cpu int, r []byte) {
			id, ok := checkRecord(r, fixed)
			mu.Lock()
			if !ok {
				torn++
			}
			seen[id]++
			mu.Unlock()
		})
		if err != nil {
			t.Error(err)
		}
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	underFire(t, []string{"copyCommit"}, func() {
		go func() {
			defer close(done)
			for {
				select {
				case <-stop:
					return
				default:
				}
				drain()
				runtime.Gosched()
			}
		}()
		counts = until(G, func(g, i int) bool {
			r := record(uint64(g)<<32|uint64(i), fixed)
			for {
				err := l.Append(r)
				if err == nil {
					return true
				}
				if !errors.Is(err, ErrFull) {
					t.Errorf("Append: %v", err)
					return false
				}
				runtime.Gosched()
			}
		})
		close(stop)
		<-done
	})
	drain()
	if torn != 0 {
		t.Errorf("%d torn records", torn)
	}
	n := total(counts)
	t.Logf("%d records", n)
	if len(seen) != n {
		t.Errorf("%d distinct records came out, want %d", len(seen), n)
	}
	for id, c := range seen {
		if c != 1 {
			t.Fatalf("record %#x came out %d times", id, c)
		}
		if g, i := int(id>>32), int(id&(1<<32-1)); g >= G || i >= counts[g] {
			t.Fatalf("record %#x was never appended", id)
		}
	}
}

func TestLogExact(t *testing.T) {
	t.Run("variable", func(t *testing.T) { testLogExact(t, 0) })
	t.Run("fixed", func(t *testing.T) { testLogExact(t, 48) })
	withLocked(t, func(t *testing.T) { testLogExact(t, 0) })
}

func TestLogErrors(t *testing.T) {
	if _, err := NewLog(4096, MaxRecord+1); err == nil {
		t.Error("NewLog took a record size above MaxRecord")
	}
	if _, err := NewLog(8, 0); err == nil {
		t.Error("NewLog took 8 bytes per CPU")
	}
	l, err := NewLog(64, 16)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Append(make([]byte, 15)); err == nil || errors.Is(err, ErrFull) {
		t.Errorf("Append of a 15-byte record to a 16-byte log: %v", err)
	}
	v, _ := NewLog(64, 0)
	if err := v.Append(make([]byte, MaxRecord+1)); err == nil || errors.Is(err, ErrFull) {
		t.Errorf("Append above MaxRecord: %v", err)
	}
	if err := v.Append(make([]byte, 60)); err == nil || errors.Is(err, ErrFull) {
		t.Errorf("Append of a record larger than the log: %v", err)
	}
	// 64 bytes hold three 10-byte records (24 bytes each with header
	// and padding) per CPU, not four.
	fulls := 0
	for i := 0; i < 3*rseqSlots()+1; i++ {
		if err := v.Append(make([]byte, 10)); errors.Is(err, ErrFull) {
			fulls++
		} else if err != nil {
			t.Fatal(err)
		}
	}
	got := 0
	if err := v.Drain(func(int, []byte) { got++ }); err != nil {
		t.Fatal(err)
	}
	if fulls == 0 || got+fulls != 3*rseqSlots()+1 {
		t.Errorf("%d appended and %d full, want some full and a total of %d", got, fulls, 3*rseqSlots()+1)
	}
	if err := v.Append(nil); err != nil {
		t.Errorf("empty record: %v", err)
	}
	var lens []int
	v.Drain(func(_ int, r []byte) { lens = append(lens, len(r)) })
	if len(lens) != 1 || lens[0] != 0 {
		t.Errorf("empty record came out as %v", lens)
	}
}

// TestLogDrainKeepsCorruptData: bytes of a CPU's log that do not parse come
// back in a *CorruptError, every record before them reaches f, and the other
// CPUs are drained as usual.
func TestLogDrainKeepsCorruptData(t *testing.T) {
	for _, recSize := range []int{0, 16} {
		t.Run(fmt.Sprintf("recordSize=%d", recSize), func(t *testing.T) {
			l, err := NewLog(4096, recSize)
			if err != nil {
				t.Fatal(err)
			}
			rec := func(s string) []byte {
				if recSize == 0 {
					return []byte(s)
				}
				return []byte(fmt.Sprintf("%-16s", s))
			}
			var badSlot int
			var badEnd uintptr
			var junk []byte
			onOneCPU(t, func() {
				for _, r := range []string{"one", "two"} {
					if err := l.Append(rec(r)); err != nil {
						t.Fatal(err)
					}
				}
				// Tear the log as a broken section would: 12 bytes that
				// are no record, then (where records carry their length,
				// so that parsing could resume) a good record after them.
				badSlot = rseq.ByCPU.Slot()
				tl := l.tail(badSlot)
				badEnd = atomic.LoadUintptr(tl)
				junk = []byte{0xff, 0xff, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8}
				copy(unsafe.Slice((*byte)(l.data(badSlot, badEnd)), len(junk)), junk)
				atomic.StoreUintptr(tl, badEnd+uintptr(len(junk)))
				if recSize > 0 {
					return
				}
				if err := l.Append(rec("three")); err != nil {
					t.Fatal(err)
				}
			})
			var got []string
			err = l.Drain(func(cpu int, r []byte) { got = append(got, strings.TrimSpace(string(r))) })
			var ce *CorruptError
			if !errors.As(err, &ce) {
				t.Fatalf("Drain: %v, want a *CorruptError", err)
			}
			if fmt.Sprint(got) != "[one two]" {
				t.Errorf("records before the bad bytes: %q, want [one two]", got)
			}
			if ce.CPU != badSlot || ce.Offset != int(badEnd) {
				t.Errorf("CorruptError at CPU %d offset %d, want CPU %d offset %d", ce.CPU, ce.Offset, badSlot, badEnd)
			}
			if !bytes.HasPrefix(ce.Data, junk) || recSize == 0 && !bytes.Contains(ce.Data, rec("three")) {
				t.Errorf("CorruptError.Data %q lacks the bad bytes or the record after them", ce.Data)
			}
			// The log is empty and usable afterwards.
			if err := l.Append(rec("four")); err != nil {
				t.Fatal(err)
			}
			got = nil
			if err := l.Drain(func(_ int, r []byte) { got = append(got, strings.TrimSpace(string(r))) }); err != nil || fmt.Sprint(got) != "[four]" {
				t.Errorf("after the error: %q, %v; want [four]", got, err)
			}
		})
	}
}
