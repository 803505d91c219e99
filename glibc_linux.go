//go:build linux && (amd64 || arm64)

package rseq

import (
	"bufio"
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// glibcRseq is glibc's description of its per-thread rseq areas.
type glibcRseq struct {
	offset int64  // __rseq_offset: area = thread pointer + offset
	size   uint32 // __rseq_size: 0 when glibc did not register
}

// findGlibcRseq reads glibc's __rseq_offset and __rseq_size, which the
// dynamic loader exports. ldBase is the loader's load address (AT_BASE);
// where it is 0 (a static executable) the symbols are looked up in the
// executable itself, located through AT_PHDR.
func findGlibcRseq(ldBase, phdr uintptr) (glibcRseq, error) {
	var path string
	var bias uintptr
	if ldBase != 0 {
		p, err := mappingPath(ldBase)
		if err != nil {
			return glibcRseq{}, err
		}
		path, bias = p, ldBase
	} else {
		path = "/proc/self/exe"
	}
	f, err := elf.Open(path)
	if err != nil {
		return glibcRseq{}, fmt.Errorf("reading the dynamic loader's symbols: %w", err)
	}
	defer f.Close()
	if ldBase == 0 {
		if f.Type == elf.ET_DYN {
			for _, p := range f.Progs {
				if p.Type == elf.PT_PHDR {
					bias = phdr - uintptr(p.Vaddr)
				}
			}
			if bias == 0 {
				return glibcRseq{}, errors.New("no dynamic loader and no PT_PHDR to relocate the executable's symbols")
			}
		}
	}
	syms, _ := f.DynamicSymbols()
	if all, err := f.Symbols(); err == nil {
		syms = append(syms, all...)
	}
	var offAddr, sizeAddr uintptr
	for _, s := range syms {
		if elf.ST_TYPE(s.Info) != elf.STT_OBJECT || s.Section == elf.SHN_UNDEF {
			continue
		}
		switch s.Name {
		case "__rseq_offset":
			offAddr = bias + uintptr(s.Value)
		case "__rseq_size":
			sizeAddr = bias + uintptr(s.Value)
		}
	}
	if offAddr == 0 || sizeAddr == 0 {
		return glibcRseq{}, fmt.Errorf("%s exports no __rseq_offset/__rseq_size (glibc before 2.35, or another C library)", path)
	}
	return glibcRseq{offset: int64(peek64(offAddr)), size: peek32(sizeAddr)}, nil
}

// mappingPath returns the file mapped at address start in /proc/self/maps.
func mappingPath(start uintptr) (string, error) {
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 6 {
			continue
		}
		lo, _, _ := strings.Cut(fields[0], "-")
		a, err := strconv.ParseUint(lo, 16, 64)
		if err == nil && uintptr(a) == start {
			return fields[5], nil
		}
	}
	return "", fmt.Errorf("no mapping starts at the dynamic loader's base %#x", start)
}
