package rseq

import (
	"fmt"
	"syscall"
)

// Mode says where the rseq areas of the process's threads come from.
type Mode uint8

const (
	// ModeNone: no thread uses rseq. Ids come from the getcpu system call and
	// per-CPU operations from the lock-based fallback.
	ModeNone Mode = iota
	// ModeOwn: the package registers an area of its own on each thread the
	// first time the thread uses it (a Go program without cgo).
	ModeOwn
	// ModeGlibc: the process runs with cgo and glibc (2.35 or later) has
	// registered an area on every thread; the package uses glibc's area.
	ModeGlibc
)

// String returns "none", "own" or "glibc".
func (m Mode) String() string {
	switch m {
	case ModeNone:
		return "none"
	case ModeOwn:
		return "own"
	case ModeGlibc:
		return "glibc"
	}
	return fmt.Sprintf("Mode(%d)", uint8(m))
}

// Support describes the rseq support of the running kernel and process, as
// discovered once at package initialisation.
type Support struct {
	// Usable reports whether threads of this process read their ids from an
	// rseq area. When false, Reason says why and Errno holds the error of
	// the probe or registration that failed, if one did.
	Usable bool
	Reason string
	Errno  syscall.Errno

	// Mode is where the threads' areas come from.
	Mode Mode

	// FeatureSize and Alignment are the kernel's AT_RSEQ_FEATURE_SIZE and
	// AT_RSEQ_ALIGN. Where the auxiliary vector has neither (kernels before
	// 6.3) they are 20 and 32, the original ABI, and FromAuxv is false.
	FeatureSize int
	Alignment   int
	FromAuxv    bool

	// AreaSize is the length of the areas registered (own mode) or glibc's
	// __rseq_size (glibc mode).
	AreaSize int

	// Signature is the abort signature registered with the areas.
	Signature uint32

	// NodeID and ConcurrencyID report whether the kernel fills the node_id
	// and mm_cid fields of the area. SliceExtension reports whether it
	// offers the time-slice extension (slice_ctrl): the kernel sets an
	// availability bit in the area's flags when it registers it, which
	// needs Linux 7.0 built with CONFIG_RSEQ_SLICE_EXTENSION (the feature
	// size is 33 from 7.0 whether the option is on or not).
	NodeID         bool
	ConcurrencyID  bool
	SliceExtension bool

	// Cgo reports whether the thread pointer is owned by the C library
	// (the process runs with cgo).
	Cgo bool

	// Glibc reports whether glibc's rseq symbols were found, and if so
	// GlibcOffset and GlibcSize hold __rseq_offset and __rseq_size.
	Glibc       bool
	GlibcOffset int64
	GlibcSize   uint32

	// Operations reports whether the per-CPU operations run as restartable
	// sections; when false OperationsReason says why and they use the
	// fallback.
	Operations       bool
	OperationsReason string

	// Notes lists facts of this process worth knowing, such as a thread
	// that uses the fallback while others use rseq.
	Notes []string

	// GoVersion is the runtime's version and RuntimeVerified whether the
	// package's runtime assumptions were checked for it (see runtime_linux.go).
	GoVersion       string
	RuntimeVerified bool
}

// Fields returns the names of the struct rseq fields the kernel maintains,
// in ABI order.
func (f Support) Fields() []string {
	if !f.Usable {
		return nil
	}
	names := []string{"cpu_id_start", "cpu_id", "rseq_cs", "flags"}
	if f.NodeID {
		names = append(names, "node_id")
	}
	if f.ConcurrencyID {
		names = append(names, "mm_cid")
	}
	if f.SliceExtension {
		names = append(names, "slice_ctrl")
	}
	return names
}

// Features returns what the package discovered at initialisation. It is
// computed once; the result is the same for every call, and the caller may
// change it (Notes is a copy).
func Features() Support {
	f := features
	f.Notes = append([]string(nil), features.Notes...)
	return f
}
