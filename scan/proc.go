package scan

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// mapping is one line of /proc/PID/maps.
type mapping struct {
	start, end, offset uint64
	dev                string
	inode              uint64
	path               string
}

// parseMaps reads /proc/PID/maps text.
func parseMaps(r io.Reader) ([]mapping, error) {
	var out []mapping
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		// start-end perms offset dev inode path
		fields := strings.Fields(line)
		if len(fields) < 5 {
			return nil, fmt.Errorf("malformed maps line %q", line)
		}
		lo, hi, ok := strings.Cut(fields[0], "-")
		if !ok {
			return nil, fmt.Errorf("malformed maps line %q", line)
		}
		var m mapping
		var err1, err2, err3, err4 error
		m.start, err1 = strconv.ParseUint(lo, 16, 64)
		m.end, err2 = strconv.ParseUint(hi, 16, 64)
		m.offset, err3 = strconv.ParseUint(fields[2], 16, 64)
		m.inode, err4 = strconv.ParseUint(fields[4], 10, 64)
		if err := errors.Join(err1, err2, err3, err4); err != nil || m.end < m.start {
			return nil, fmt.Errorf("malformed maps line %q", line)
		}
		m.dev = fields[3]
		if len(fields) > 5 {
			// The path is the rest of the line after the fifth field; it
			// may hold spaces.
			rest := line
			for k := 0; k < 5; k++ {
				rest = strings.TrimLeft(rest, " ")
				if i := strings.IndexByte(rest, ' '); i >= 0 {
					rest = rest[i:]
				}
			}
			m.path = strings.TrimLeft(rest, " ")
		}
		out = append(out, m)
	}
	return out, sc.Err()
}

// ScanProcess scans every ELF object mapped into process pid (executables,
// shared libraries and the vDSO), with Object.Bias set to its load bias
// and every address relocated to where it is mapped. Descriptors and code
// are read from the process's memory (/proc/PID/mem) where it is readable,
// else from the files. Objects that cannot be scanned are reported in errs
// and skipped; if the process exits during the scan the objects scanned so
// far are returned with an error saying so.
func ScanProcess(pid int, opt Options) (objs []*Object, errs []error) {
	dir := fmt.Sprintf("/proc/%d", pid)
	mf, err := os.Open(dir + "/maps")
	if err != nil {
		return nil, []error{fmt.Errorf("process %d: %w", pid, err)}
	}
	maps, err := parseMaps(mf)
	mf.Close()
	if err != nil {
		return nil, []error{fmt.Errorf("process %d: reading maps: %w", pid, err)}
	}
	if len(maps) == 0 {
		return nil, []error{fmt.Errorf("process %d: no mappings (a zombie or a kernel thread)", pid)}
	}
	mem, err := os.Open(dir + "/mem")
	if err != nil {
		errs = append(errs, fmt.Errorf("process %d: cannot read its memory (%w); using the files' contents", pid, err))
		mem = nil
	} else {
		defer mem.Close()
	}

	type object struct {
		key  string
		maps []mapping
	}
	var order []*object
	byKey := map[string]*object{}
	for _, m := range maps {
		var key string
		switch {
		case m.inode != 0 && strings.HasPrefix(m.path, "/"):
			key = m.dev + ":" + strconv.FormatUint(m.inode, 10) + ":" + m.path
		case m.path == "[vdso]":
			key = m.path
		default:
			continue
		}
		o := byKey[key]
		if o == nil {
			o = &object{key: key}
			byKey[key] = o
			order = append(order, o)
		}
		o.maps = append(o.maps, m)
	}

	gone := func() bool {
		_, err := os.Stat(dir)
		return err != nil
	}
	for _, o := range order {
		obj, err := scanMapped(dir, o.maps, mem, opt)
		if gone() {
			errs = append(errs, fmt.Errorf("process %d exited during the scan", pid))
			return objs, errs
		}
		if err != nil {
			if !errors.Is(err, ErrNotELF) {
				errs = append(errs, fmt.Errorf("process %d: %w", pid, err))
			}
			continue
		}
		objs = append(objs, obj)
	}
	return objs, errs
}

// memReader reads process memory, remembering whether a read failed.
type memReader struct {
	f      *os.File
	failed bool
}

func (m *memReader) ReadAt(b []byte, off int64) (int, error) {
	n, err := m.f.ReadAt(b, off)
	if err == nil && n < len(b) {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		m.failed = true
	}
	return n, err
}

// scanMapped scans one object given its mappings.
func scanMapped(dir string, maps []mapping, mem *os.File, opt Options) (*Object, error) {
	first := maps[0]
	name := first.path
	var r io.ReaderAt
	var size int64
	if name == "[vdso]" {
		if mem == nil {
			return nil, fmt.Errorf("[vdso]: %w", ErrNotELF) // silently skipped
		}
		size = int64(first.end - first.start)
		r = io.NewSectionReader(mem, int64(first.start), size)
	} else {
		path := strings.TrimSuffix(name, " (deleted)")
		var f *os.File
		var err error
		for _, p := range []string{
			fmt.Sprintf("%s/map_files/%x-%x", dir, first.start, first.end),
			dir + "/root" + path,
			path,
		} {
			if f, err = os.Open(p); err == nil {
				break
			}
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		defer f.Close()
		st, err := f.Stat()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		if !st.Mode().IsRegular() {
			return nil, fmt.Errorf("%s: %w (not a regular file)", name, ErrNotELF)
		}
		r, size = f, st.Size()
	}
	img, err := openImage(r, size, name)
	if err != nil {
		return nil, err
	}
	// The load bias: a PT_LOAD whose file offset falls in a mapping.
	found := false
	for _, seg := range img.loads {
		for _, m := range maps {
			if name == "[vdso]" {
				img.bias = m.start - (img.loads[0].vaddr - img.loads[0].off)
				found = true
				break
			}
			if m.offset <= seg.off && seg.off-m.offset < m.end-m.start {
				img.bias = m.start + (seg.off - m.offset) - seg.vaddr
				found = true
				break
			}
		}
		if found {
			break
		}
	}
	if !found {
		return nil, fmt.Errorf("%s: no mapping matches its loadable segments; cannot work out its load address", name)
	}
	var mr *memReader
	if mem != nil {
		mr = &memReader{f: mem}
		img.mem = mr
		img.memFallback = true
	}
	obj, err := img.scan(opt)
	if err != nil {
		return nil, err
	}
	if mr != nil && mr.failed {
		obj.Findings = append(obj.Findings, Finding{Severity: Info, Rule: "unreadable", Section: -1,
			Message: "some of the object's memory could not be read from the process; the file's contents were used there"})
	}
	return obj, nil
}
