//go:build linux && (amd64 || arm64)

package rseq

import (
	"bufio"
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// glibcRseq is glibc's description of its per-thread rseq areas.
type glibcRseq struct {
	offset int64  // __rseq_offset: area = thread pointer + offset
	size   uint32 // __rseq_size: 0 when glibc did not register
	file   string // the object that exports them (the dynamic loader, or a static executable)
}

// mappedObject is a file mapped into the process, at the address of its
// mapping at file offset 0.
type mappedObject struct {
	path  string
	start uintptr
}

// findGlibcRseq reads glibc's __rseq_offset and __rseq_size, which the
// dynamic loader exports (a static executable: the executable itself). It
// looks for them in the objects /proc/self/maps lists, the one at ldBase
// (AT_BASE: the dynamic loader) first, then any other whose name says it
// is a dynamic loader, then the rest: AT_BASE is 0 not only in static
// executables but also where the loader runs as the program
// (ld.so --library-path DIR PROGRAM), and there AT_PHDR describes the
// program while /proc/self/exe is the loader. Each object's symbols are
// relocated by where the object is mapped, so a value is read only from
// memory that object maps.
func findGlibcRseq(ldBase uintptr) (glibcRseq, error) {
	objs, err := mappedObjects()
	if err != nil {
		return glibcRseq{}, err
	}
	rank := func(o mappedObject) int {
		switch {
		case ldBase != 0 && o.start == ldBase:
			return 0
		case strings.HasPrefix(filepath.Base(o.path), "ld-"):
			return 1
		}
		return 2
	}
	var firstErr error
	for r := 0; r <= 2; r++ {
		for _, o := range objs {
			if rank(o) != r {
				continue
			}
			g, found, err := glibcSymbols(o)
			if found {
				return g, err
			}
			if err != nil && firstErr == nil && r < 2 {
				firstErr = err
			}
		}
	}
	if firstErr != nil {
		return glibcRseq{}, firstErr
	}
	return glibcRseq{}, errors.New("no mapped object exports __rseq_offset and __rseq_size (glibc before 2.35, or another C library)")
}

// glibcSymbols reads __rseq_offset and __rseq_size in o, if o exports them.
func glibcSymbols(o mappedObject) (g glibcRseq, found bool, err error) {
	f, err := elf.Open(o.path)
	if err != nil {
		return glibcRseq{}, false, fmt.Errorf("reading the symbols of %s: %w", o.path, err)
	}
	defer f.Close()
	syms, _ := f.DynamicSymbols()
	if f.Type == elf.ET_EXEC || len(syms) == 0 {
		if all, err := f.Symbols(); err == nil {
			syms = append(syms, all...)
		}
	}
	var offVal, sizeVal uint64
	for _, s := range syms {
		if elf.ST_TYPE(s.Info) != elf.STT_OBJECT || s.Section == elf.SHN_UNDEF {
			continue
		}
		switch s.Name {
		case "__rseq_offset":
			offVal = s.Value
		case "__rseq_size":
			sizeVal = s.Value
		}
	}
	if offVal == 0 || sizeVal == 0 {
		return glibcRseq{}, false, nil
	}
	// The object's lowest PT_LOAD is what its offset-0 mapping holds.
	lowest := ^uint64(0)
	for _, p := range f.Progs {
		if p.Type == elf.PT_LOAD && p.Vaddr < lowest {
			lowest = p.Vaddr
		}
	}
	if lowest == ^uint64(0) {
		return glibcRseq{}, true, fmt.Errorf("%s has no PT_LOAD segment", o.path)
	}
	pageMask := uint64(os.Getpagesize() - 1)
	bias := o.start - uintptr(lowest&^pageMask)
	g = glibcRseq{
		offset: int64(peek64(bias + uintptr(offVal))),
		size:   peek32(bias + uintptr(sizeVal)),
		file:   o.path,
	}
	return g, true, nil
}

// mappedObjects lists the files mapped into the process at file offset 0,
// in address order, each once.
func mappedObjects() ([]mappedObject, error) {
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var objs []mappedObject
	seen := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// start-end perms offset dev inode path
		fields := strings.Fields(sc.Text())
		if len(fields) != 6 || strings.Trim(fields[2], "0") != "" {
			continue // anonymous, not at offset 0, or deleted since
		}
		path := fields[5]
		if !strings.HasPrefix(path, "/") || seen[path] {
			continue
		}
		lo, _, _ := strings.Cut(fields[0], "-")
		a, err := strconv.ParseUint(lo, 16, 64)
		if err != nil {
			continue
		}
		seen[path] = true
		objs = append(objs, mappedObject{path: path, start: uintptr(a)})
	}
	return objs, sc.Err()
}
