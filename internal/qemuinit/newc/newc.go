// Package newc writes cpio archives in the "new ASCII" (newc) format, the
// format the Linux kernel unpacks as an initramfs.
//
// The archive is reproducible: inode numbers are assigned in order, owners
// are root and modification times are zero. Parent directories are created
// automatically, before their contents, as the kernel requires.
package newc

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strings"
)

// File type bits of the cpio mode field (the same values as in stat(2)).
const (
	typeDir     = 0o040000
	typeRegular = 0o100000
	typeSymlink = 0o120000
	typeCharDev = 0o020000
)

// maxSize is the largest file size a newc header can hold (32 bits).
const maxSize = 1<<32 - 1

// trailerName marks the end of a cpio archive.
const trailerName = "TRAILER!!!"

// A Writer writes entries of a newc archive to an underlying io.Writer.
// Close must be called to write the trailer.
type Writer struct {
	w      io.Writer
	ino    uint32
	off    int64
	names  map[string]bool // every entry written so far
	dirs   map[string]bool // the directories among them
	err    error           // the first write error; later calls return it
	closed bool
}

// NewWriter returns a Writer that writes an archive to w.
func NewWriter(w io.Writer) *Writer {
	return &Writer{w: w, names: map[string]bool{}, dirs: map[string]bool{}}
}

// cleanName checks an archive path and returns it without a leading slash.
// Paths are relative to the root of the unpacked archive.
func cleanName(name string) (string, error) {
	if strings.ContainsRune(name, 0) {
		return "", fmt.Errorf("newc: name %q contains a NUL byte", name)
	}
	n := strings.TrimLeft(name, "/")
	if n == "" {
		return "", fmt.Errorf("newc: empty name %q", name)
	}
	for _, elem := range strings.Split(n, "/") {
		if elem == "" || elem == "." || elem == ".." {
			return "", fmt.Errorf("newc: name %q is not a clean path (empty, . or .. element)", name)
		}
	}
	return n, nil
}

// Dir adds a directory, and any missing parents with mode 0755.
// Adding a directory that already exists is not an error.
func (w *Writer) Dir(name string, perm fs.FileMode) error {
	n, err := w.begin(name)
	if err != nil {
		return err
	}
	if w.dirs[n] {
		return nil
	}
	if w.names[n] {
		return fmt.Errorf("newc: %q already exists and is not a directory", n)
	}
	if err := w.parents(n); err != nil {
		return err
	}
	w.dirs[n] = true
	return w.header(n, typeDir|uint32(perm.Perm()), 2, 0, 0, 0)
}

// File adds a regular file of size bytes read from r. r must deliver
// exactly size bytes.
func (w *Writer) File(name string, perm fs.FileMode, size int64, r io.Reader) error {
	if size < 0 || size > maxSize {
		return fmt.Errorf("newc: %q: size %d does not fit a newc header (0 to %d bytes)", name, size, int64(maxSize))
	}
	n, err := w.newEntry(name)
	if err != nil {
		return err
	}
	if err := w.header(n, typeRegular|uint32(perm.Perm()), 1, uint32(size), 0, 0); err != nil {
		return err
	}
	copied, err := io.Copy(w.counting(), io.LimitReader(r, size))
	if err != nil {
		return w.fail(fmt.Errorf("newc: %q: %w", n, err))
	}
	if copied != size {
		return w.fail(fmt.Errorf("newc: %q: reader gave %d bytes, want %d", n, copied, size))
	}
	return w.pad()
}

// Bytes adds a regular file holding data.
func (w *Writer) Bytes(name string, perm fs.FileMode, data []byte) error {
	return w.File(name, perm, int64(len(data)), bytes.NewReader(data))
}

// Symlink adds a symbolic link name pointing at target.
func (w *Writer) Symlink(name, target string) error {
	if target == "" || strings.ContainsRune(target, 0) {
		return fmt.Errorf("newc: symlink %q: bad target %q", name, target)
	}
	n, err := w.newEntry(name)
	if err != nil {
		return err
	}
	if err := w.header(n, typeSymlink|0o777, 1, uint32(len(target)), 0, 0); err != nil {
		return err
	}
	if _, err := io.WriteString(w.counting(), target); err != nil {
		return w.fail(err)
	}
	return w.pad()
}

// CharDev adds a character device node with the given major and minor
// numbers (for example /dev/console is 5, 1).
func (w *Writer) CharDev(name string, perm fs.FileMode, major, minor uint32) error {
	n, err := w.newEntry(name)
	if err != nil {
		return err
	}
	return w.header(n, typeCharDev|uint32(perm.Perm()), 1, 0, major, minor)
}

// Close writes the trailer. It does not close the underlying writer.
func (w *Writer) Close() error {
	if w.err != nil {
		return w.err
	}
	if w.closed {
		return errors.New("newc: archive already closed")
	}
	if err := w.header(trailerName, 0, 1, 0, 0, 0); err != nil {
		return err
	}
	w.closed = true
	return nil
}

// begin checks that the writer is usable and the name valid.
func (w *Writer) begin(name string) (string, error) {
	if w.err != nil {
		return "", w.err
	}
	if w.closed {
		return "", errors.New("newc: write after Close")
	}
	return cleanName(name)
}

// newEntry checks a name for a non-directory entry and creates its parents.
func (w *Writer) newEntry(name string) (string, error) {
	n, err := w.begin(name)
	if err != nil {
		return "", err
	}
	if w.names[n] {
		return "", fmt.Errorf("newc: duplicate entry %q", n)
	}
	if err := w.parents(n); err != nil {
		return "", err
	}
	w.names[n] = true
	return n, nil
}

// parents adds the missing parent directories of n, outermost first.
func (w *Writer) parents(n string) error {
	dir := path.Dir(n)
	if dir == "." || w.dirs[dir] {
		return nil
	}
	return w.Dir(dir, 0o755)
}

// header writes one entry header and its padded name.
func (w *Writer) header(name string, mode, nlink, size, rdevMajor, rdevMinor uint32) error {
	w.ino++
	w.names[name] = true
	ino := w.ino
	if name == trailerName {
		ino = 0
	}
	// Fields: magic, ino, mode, uid, gid, nlink, mtime, filesize, devmajor,
	// devminor, rdevmajor, rdevminor, namesize (with the NUL), check.
	h := fmt.Sprintf("070701%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%s\x00",
		ino, mode, 0, 0, nlink, 0, size, 0, 0, rdevMajor, rdevMinor, len(name)+1, 0, name)
	if _, err := io.WriteString(w.counting(), h); err != nil {
		return w.fail(err)
	}
	return w.pad()
}

// pad writes zero bytes up to the next multiple of 4.
func (w *Writer) pad() error {
	if r := w.off % 4; r != 0 {
		if _, err := w.counting().Write(make([]byte, 4-r)); err != nil {
			return w.fail(err)
		}
	}
	return nil
}

func (w *Writer) fail(err error) error {
	if w.err == nil {
		w.err = err
	}
	return err
}

// counter counts the bytes written through it into Writer.off.
type counter struct{ w *Writer }

func (c counter) Write(p []byte) (int, error) {
	n, err := c.w.w.Write(p)
	c.w.off += int64(n)
	return n, err
}

func (w *Writer) counting() io.Writer { return counter{w} }
