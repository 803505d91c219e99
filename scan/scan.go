package scan

import (
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"
)

// Severity ranks a Finding. Higher values are more serious.
type Severity int

// The severities, from least to most serious.
const (
	// Info marks something worth knowing that is legitimate in many
	// sections (for example a speculative store before the commit).
	Info Severity = iota
	// Warning marks a construct the kernel accepts but that breaks the
	// assumptions of debuggers and instrumentation tools, or an ABI rule the
	// kernel does not enforce.
	Warning
	// Error marks a section the kernel will refuse (the thread is killed
	// with SIGSEGV) or that cannot be atomic as written.
	Error
)

// String returns "info", "warning" or "error".
func (s Severity) String() string {
	switch s {
	case Info:
		return "info"
	case Warning:
		return "warning"
	case Error:
		return "error"
	}
	return fmt.Sprintf("Severity(%d)", int(s))
}

// MarshalText encodes the severity as its name, so JSON output reads
// "error" rather than 2.
func (s Severity) MarshalText() ([]byte, error) {
	if s < Info || s > Error {
		return nil, fmt.Errorf("scan: invalid severity %d", int(s))
	}
	return []byte(s.String()), nil
}

// UnmarshalText decodes a severity name written by MarshalText.
func (s *Severity) UnmarshalText(b []byte) error {
	v, err := ParseSeverity(string(b))
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// ParseSeverity converts "info", "warning" (or "warn") or "error", in any
// case, to a Severity.
func ParseSeverity(name string) (Severity, error) {
	switch strings.ToLower(strings.TrimSpace(name)) {
	case "info":
		return Info, nil
	case "warning", "warn":
		return Warning, nil
	case "error":
		return Error, nil
	}
	return 0, fmt.Errorf("scan: unknown severity %q (want info, warning or error)", name)
}

// Instruction is one decoded machine instruction of a critical section.
type Instruction struct {
	Addr uint64 // address, relocated like the section's Start
	Len  int    // length in bytes
	Text string // disassembly in the GNU (AT&T on x86) syntax
}

// Section is one restartable critical section: the contents of one
// struct rseq_cs descriptor and what the scanner learnt about it.
type Section struct {
	// Object is the file path of the ELF object holding the descriptor.
	Object string
	// Symbol names Start as "function+0xoff" where the object has a symbol
	// covering it, else "".
	Symbol string
	// Descriptor is the address of the struct rseq_cs.
	Descriptor uint64
	// Version and Flags are the descriptor's first two fields; both must
	// be zero.
	Version, Flags uint32
	// Start is start_ip, PostCommitOffset the length of the section and
	// Abort abort_ip. All addresses are relocated by the object's load bias
	// when a process is scanned.
	Start, PostCommitOffset, Abort uint64
	// Signature holds the 4 bytes before Abort, read in the object's byte
	// order (the value the kernel compares with the registered signature).
	// SignatureOK reports whether they look like a signature for the
	// object's machine (see the package documentation).
	Signature   uint32
	SignatureOK bool
	// Exits lists the exit addresses recorded for this section in
	// __rseq_exit_point_array, in table order.
	Exits []uint64
	// Via says where the descriptor was found: "__rseq_cs",
	// "__rseq_cs_ptr_array" (only through a pointer), "__rseq_table" or
	// "go-symbols".
	Via string
	// Instructions holds the decoded instructions of
	// [Start, Start+PostCommitOffset) when Options.Disassemble was set and
	// the machine and bytes could be decoded.
	Instructions []Instruction
}

// End returns the post-commit address, Start + PostCommitOffset.
func (s *Section) End() uint64 { return s.Start + s.PostCommitOffset }

// Contains reports whether addr lies in [Start, Start+PostCommitOffset).
func (s *Section) Contains(addr uint64) bool {
	return addr >= s.Start && addr-s.Start < s.PostCommitOffset
}

// Finding is one problem (or remark) about a section or an object.
type Finding struct {
	Severity Severity
	// Rule is the stable name of the rule, e.g. "bad-signature"; the
	// package documentation lists them.
	Rule string
	// Section is the index into Object.Sections the finding is about, or -1
	// when it concerns the object as a whole.
	Section int
	// Message explains the finding in plain words.
	Message string
}

// Object is the result of scanning one ELF file or one object mapped into
// a process.
type Object struct {
	Path string
	// Machine names the architecture: "x86-64", "i386", "aarch64",
	// "s390x", "ppc64", ...
	Machine string
	// Class is 32 or 64.
	Class     int
	BigEndian bool
	// Bias is the load bias added to every address: zero for a file,
	// the load address minus the link address for a mapped object.
	Bias     uint64
	Sections []Section
	Findings []Finding
}

// MaxSeverity returns the highest severity among the object's findings and
// whether there is any finding at all.
func (o *Object) MaxSeverity() (Severity, bool) {
	max, any := Info, false
	for _, f := range o.Findings {
		if !any || f.Severity > max {
			max, any = f.Severity, true
		}
	}
	return max, any
}

// Options controls a scan.
type Options struct {
	// Disassemble decodes each section (x86-64, i386 and arm64) and applies
	// the instruction rules: syscall, call, indirect-branch,
	// commit-not-last, store-before-commit and unlisted-exit.
	Disassemble bool
}

// ScanFile scans the ELF file at path. Anything but a regular file (or a
// symbolic link to one) is refused before it is opened: opening a FIFO
// would wait for a writer, and reading a device could go on forever.
func ScanFile(path string, opt Options) (*Object, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, notRegular(path, st.Mode())
	}
	// O_NONBLOCK: should the path turn into a FIFO between the Stat and
	// the open, the open does not wait; the type is checked again on the
	// file opened.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err = f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, notRegular(path, st.Mode())
	}
	return Scan(f, st.Size(), path, opt)
}

// notRegular is the error for a path that is not a regular file.
func notRegular(path string, m os.FileMode) error {
	kind := "a special file"
	switch {
	case m.IsDir():
		kind = "a directory"
	case m&os.ModeNamedPipe != 0:
		kind = "a FIFO"
	case m&os.ModeSocket != 0:
		kind = "a socket"
	case m&os.ModeCharDevice != 0:
		kind = "a character device"
	case m&os.ModeDevice != 0:
		kind = "a block device"
	}
	return fmt.Errorf("%s: not a regular file (%s)", path, kind)
}

// Scan scans the ELF image of the given size read through r; name is used
// as Object.Path and in messages. Addresses are link-time addresses.
func Scan(r io.ReaderAt, size int64, name string, opt Options) (*Object, error) {
	img, err := openImage(r, size, name)
	if err != nil {
		return nil, err
	}
	return img.scan(opt)
}

// FindSection returns the section, among all the objects, whose
// [Start, Start+PostCommitOffset) holds addr.
func FindSection(objs []*Object, addr uint64) (*Section, bool) {
	for _, o := range objs {
		if o == nil {
			continue
		}
		for i := range o.Sections {
			if o.Sections[i].Contains(addr) {
				return &o.Sections[i], true
			}
		}
	}
	return nil, false
}
