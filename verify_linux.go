//go:build linux && (amd64 || arm64)

package rseq

import (
	"bytes"
	"fmt"
	"unsafe"
)

// Implemented in ops_linux_GOARCH.s; each jumps to its Go fallback (same
// signature) when the thread has no usable area. Neither keeps a pointer it
// is given beyond the call, hence go:noescape.
//
//go:noescape
func addSection(base unsafe.Pointer, stride, field uintptr, n int64) (slot int)

//go:noescape
func addIndirectSection(base unsafe.Pointer, stride, field, off uintptr, n int64) (slot int)

//go:noescape
func popSection(base unsafe.Pointer, stride, field, empty, nextOff uintptr) (slot int, head uintptr, ok bool)

//go:noescape
func cmpStoreSection(field uintptr, slot int, v *uintptr, expect, new uintptr) Status

//go:noescape
func cmp2StoreSection(field uintptr, slot int, v *uintptr, expect uintptr, v2 *uintptr, expect2, new uintptr) Status

//go:noescape
func storeCommitSection(field uintptr, slot int, v *uintptr, expect uintptr, v2 *uintptr, new2, new uintptr) Status

//go:noescape
func copyCommitSection(field uintptr, slot int, v *uintptr, expect uintptr, dst, src unsafe.Pointer, n uintptr, new uintptr) Status

func slotOf(field uintptr) int

// Implemented in sections_linux_GOARCH.s (generated).
func tableAddrs() (cs, ptrs, exits, funcs uintptr)

// sectionLayout is what internal/gensections measured of one section.
type sectionLayout struct {
	fn                      string
	start, postCommit       uintptr // offsets of start_ip in fn, and post_commit_offset
	abort                   uintptr // offset of abort_ip in fn
	exits                   []uintptr
	startBytes, commitBytes []byte
}

// readMemory returns n bytes at addr, from code or read-only data of this
// binary.
func readMemory(addr uintptr, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = peek8(addr + uintptr(i))
	}
	return b
}

// verifySections checks every descriptor against the code it describes,
// reading memory through read: alignment, version and flags, start, post-
// commit and abort addresses against the generated layout, the first and
// commit instructions' bytes, the signature before the abort handler, and
// the pointer and exit arrays. It returns the first mismatch.
func verifySections(read func(addr uintptr, n int) []byte) error {
	cs, ptrs, exits, funcs := tableAddrs()
	word := func(a uintptr) uint64 {
		b := read(a, 8)
		return uint64(b[0]) | uint64(b[1])<<8 | uint64(b[2])<<16 | uint64(b[3])<<24 |
			uint64(b[4])<<32 | uint64(b[5])<<40 | uint64(b[6])<<48 | uint64(b[7])<<56
	}
	if cs%32 != 0 {
		return fmt.Errorf("__rseq_cs at %#x is not 32-byte aligned", cs)
	}
	e := 0
	for i := range numSections {
		l := &sectionLayouts[i]
		name := sectionNames[i]
		d := cs + uintptr(32*i)
		fn := uintptr(word(funcs + uintptr(8*i)))
		vf := word(d)
		start, pco, abort := uintptr(word(d+8)), uintptr(word(d+16)), uintptr(word(d+24))
		switch {
		case vf != 0:
			return fmt.Errorf("section %s: version/flags %#x, want 0", name, vf)
		case start != fn+l.start || pco != l.postCommit || abort != fn+l.abort:
			return fmt.Errorf("section %s: descriptor {start %#x, post-commit %d, abort %#x} does not match %s at %#x", name, start, pco, abort, l.fn, fn)
		case abort >= start && abort < start+pco:
			return fmt.Errorf("section %s: abort handler inside the section", name)
		case !bytes.Equal(read(start, len(l.startBytes)), l.startBytes):
			return fmt.Errorf("section %s: the instruction at start_ip %#x is not the assembled one (% x)", name, start, l.startBytes)
		case !bytes.Equal(read(start+pco-uintptr(len(l.commitBytes)), len(l.commitBytes)), l.commitBytes):
			return fmt.Errorf("section %s: the commit store does not end at post-commit %#x (want % x)", name, start+pco, l.commitBytes)
		case !bytes.Equal(read(abort-uintptr(len(signatureBytes)), len(signatureBytes)), signatureBytes):
			return fmt.Errorf("section %s: no signature before abort_ip %#x", name, abort)
		case uintptr(word(ptrs+uintptr(8*i))) != d:
			return fmt.Errorf("section %s: __rseq_cs_ptr_array entry does not point to its descriptor", name)
		}
		for _, x := range l.exits {
			p := exits + uintptr(16*e)
			if uintptr(word(p)) != start || uintptr(word(p+8)) != fn+x {
				return fmt.Errorf("section %s: exit point %d does not match", name, e)
			}
			e++
		}
	}
	if e != numExitPoints {
		return fmt.Errorf("exit point table has %d entries, layout %d", numExitPoints, e)
	}
	return nil
}

// Sections returns the package's restartable sections as they lie in this
// process. The same table is in the binary under the symbols
// github.com/gorseq/rseq.__rseq_cs, .__rseq_cs_ptr_array and
// .__rseq_exit_point_array, for tools that read executables.
func Sections() []Section {
	cs, _, _, funcs := tableAddrs()
	out := make([]Section, numSections)
	for i := range out {
		l := &sectionLayouts[i]
		fn := uintptr(peek64(funcs + uintptr(8*i)))
		s := Section{
			Name:       sectionNames[i],
			Descriptor: cs + uintptr(32*i),
			Start:      fn + l.start,
			PostCommit: fn + l.start + l.postCommit,
			Abort:      fn + l.abort,
		}
		for _, x := range l.exits {
			s.Exits = append(s.Exits, fn+x)
		}
		out[i] = s
	}
	return out
}

// initOperations decides whether the operations run as sections, reading
// the code through read to verify them.
func initOperations(f *Support, read func(addr uintptr, n int) []byte) {
	f.Operations, f.OperationsReason = false, ""
	opsMode = areaModeNone
	concurrencyIDField = offCPUIDStart
	if f.ConcurrencyID {
		concurrencyIDField = offMMCID
	}
	switch {
	case !f.Usable:
		f.OperationsReason = "rseq is not usable: " + f.Reason
	case !cpuBoundKnown:
		f.OperationsReason = "no bound on CPU ids is known (no /sys/devices/system/cpu/possible, and sched_getaffinity refused): sections could index past their arrays"
	case raceEnabled:
		f.OperationsReason = "race detector build: the operations use the fallback so that the detector sees every access"
	default:
		if err := verifySections(read); err != nil {
			f.OperationsReason = "section verification failed: " + err.Error()
			return
		}
		opsMode = areaMode
		f.Operations = true
	}
}
