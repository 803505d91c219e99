// Package perftrace reads kernel tracepoints through perf_event_open: it
// finds tracefs (mounting it for a moment where it is not mounted and the
// caller may), parses an event's format file, opens one sampling event per
// CPU for every process on the system, and reads the samples from the
// events' ring buffers. It is what `rseq stat` is built on.
//
// The format parsing is portable; opening events works on Linux only, and
// returns an error wrapping errors.ErrUnsupported elsewhere.
package perftrace

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"
)

// Field is one field of a tracepoint's record, as its format file describes
// it: the bytes [Offset, Offset+Size) of the raw sample data.
type Field struct {
	Name   string
	Type   string // the C type, e.g. "unsigned long"
	Offset int
	Size   int
	Signed bool
}

// Format is a tracepoint's format file: its perf type id (the perf_event
// config of a PERF_TYPE_TRACEPOINT event) and its fields, the common ones
// included.
type Format struct {
	System, Name string
	ID           uint64
	Fields       []Field
}

// ParseFormat parses the text of tracefs's events/SYSTEM/NAME/format.
func ParseFormat(system string, text []byte) (*Format, error) {
	f := &Format{System: system}
	haveID := false
	sc := bufio.NewScanner(bytes.NewReader(text))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(line, "name:"):
			f.Name = strings.TrimSpace(strings.TrimPrefix(line, "name:"))
		case strings.HasPrefix(line, "ID:"):
			id, err := strconv.ParseUint(strings.TrimSpace(strings.TrimPrefix(line, "ID:")), 10, 64)
			if err != nil {
				return nil, fmt.Errorf("format of %s: bad ID line %q", system, line)
			}
			f.ID, haveID = id, true
		case strings.HasPrefix(line, "field:"):
			fd, err := parseField(line)
			if err != nil {
				return nil, fmt.Errorf("format of %s/%s: %v", system, f.Name, err)
			}
			f.Fields = append(f.Fields, fd)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if f.Name == "" || !haveID {
		return nil, fmt.Errorf("format of %s: no name or ID line", system)
	}
	return f, nil
}

// parseField parses one line such as
//
//	field:unsigned long regs_ip;	offset:8;	size:8;	signed:0;
func parseField(line string) (Field, error) {
	var fd Field
	haveOff, haveSize := false, false
	for _, part := range strings.Split(line, ";") {
		part = strings.TrimSpace(part)
		key, val, ok := strings.Cut(part, ":")
		if !ok {
			continue
		}
		switch key {
		case "field":
			decl := strings.TrimSpace(val)
			// The name is the last word, less any array suffix.
			i := strings.LastIndexAny(decl, " \t*")
			if i < 0 {
				return fd, fmt.Errorf("bad field declaration %q", decl)
			}
			fd.Type = strings.TrimSpace(decl[:i+1])
			name := decl[i+1:]
			if j := strings.IndexByte(name, '['); j >= 0 {
				name = name[:j]
			}
			fd.Name = name
		case "offset", "size", "signed":
			n, err := strconv.Atoi(strings.TrimSpace(val))
			if err != nil || n < 0 {
				return fd, fmt.Errorf("bad %s in %q", key, line)
			}
			switch key {
			case "offset":
				fd.Offset, haveOff = n, true
			case "size":
				fd.Size, haveSize = n, true
			default:
				fd.Signed = n != 0
			}
		}
	}
	if fd.Name == "" || !haveOff || !haveSize {
		return fd, fmt.Errorf("incomplete field line %q", line)
	}
	return fd, nil
}

// Field returns the field called name.
func (f *Format) Field(name string) (Field, bool) {
	for _, fd := range f.Fields {
		if fd.Name == name {
			return fd, true
		}
	}
	return Field{}, false
}

// Uint reads an unsigned integer field of 1, 2, 4 or 8 bytes from raw
// sample data in the machine's byte order (little-endian on every
// architecture this project supports). It reports false when the data is
// too short or the size is not one of those.
func (fd Field) Uint(raw []byte) (uint64, bool) {
	if fd.Offset < 0 || fd.Offset+fd.Size > len(raw) {
		return 0, false
	}
	b := raw[fd.Offset : fd.Offset+fd.Size]
	switch fd.Size {
	case 1:
		return uint64(b[0]), true
	case 2:
		return uint64(binary.LittleEndian.Uint16(b)), true
	case 4:
		return uint64(binary.LittleEndian.Uint32(b)), true
	case 8:
		return binary.LittleEndian.Uint64(b), true
	}
	return 0, false
}

// Int reads a field like Uint, sign-extending signed fields.
func (fd Field) Int(raw []byte) (int64, bool) {
	u, ok := fd.Uint(raw)
	if !ok {
		return 0, false
	}
	if fd.Signed && fd.Size < 8 {
		shift := 64 - 8*uint(fd.Size)
		return int64(u<<shift) >> shift, true
	}
	return int64(u), true
}
