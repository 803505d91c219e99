package newc

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
)

// entry is one parsed archive member.
type entry struct {
	name             string
	ino, mode, nlink uint32
	rmaj, rmin       uint32
	data             string
}

// parse decodes a newc archive independently of the writer, checking the
// magic, the 4-byte alignment and the trailer.
func parse(t *testing.T, b []byte) []entry {
	t.Helper()
	var out []entry
	off := 0
	align := func() {
		for off%4 != 0 {
			if b[off] != 0 {
				t.Fatalf("non-zero padding byte at %d", off)
			}
			off++
		}
	}
	for {
		if off+110 > len(b) {
			t.Fatalf("archive truncated at %d (no trailer)", off)
		}
		h := string(b[off : off+110])
		if h[:6] != "070701" {
			t.Fatalf("bad magic %q at %d", h[:6], off)
		}
		field := func(i int) uint32 {
			v, err := strconv.ParseUint(h[6+8*i:14+8*i], 16, 32)
			if err != nil {
				t.Fatalf("bad field %d at %d: %v", i, off, err)
			}
			return uint32(v)
		}
		e := entry{ino: field(0), mode: field(1), nlink: field(4), rmaj: field(9), rmin: field(10)}
		if uid, gid, mtime, check := field(2), field(3), field(5), field(12); uid|gid|mtime|check != 0 {
			t.Errorf("uid/gid/mtime/check = %d/%d/%d/%d, want zeros", uid, gid, mtime, check)
		}
		size, namesize := int(field(6)), int(field(11))
		off += 110
		name := string(b[off : off+namesize])
		if !strings.HasSuffix(name, "\x00") {
			t.Fatalf("name %q not NUL-terminated", name)
		}
		e.name = name[:namesize-1]
		off += namesize
		align()
		e.data = string(b[off : off+size])
		off += size
		align()
		if e.name == "TRAILER!!!" {
			if off != len(b) {
				t.Fatalf("%d bytes after the trailer", len(b)-off)
			}
			return out
		}
		out = append(out, e)
	}
}

func TestArchiveLayout(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	if err := w.Bytes("/init", 0o755, []byte("#!init")); err != nil {
		t.Fatal(err)
	}
	if err := w.Bytes("tests/pkg/pkg.test", 0o700, []byte("12345")); err != nil {
		t.Fatal(err)
	}
	if err := w.CharDev("dev/console", 0o600, 5, 1); err != nil {
		t.Fatal(err)
	}
	if err := w.Symlink("bin/sh", "/init"); err != nil {
		t.Fatal(err)
	}
	if err := w.Dir("tests", 0o700); err != nil { // already created as a parent: no-op
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	got := parse(t, buf.Bytes())
	want := []struct {
		name string
		mode uint32
		data string
	}{
		{"init", 0o100755, "#!init"},
		{"tests", 0o040755, ""},
		{"tests/pkg", 0o040755, ""},
		{"tests/pkg/pkg.test", 0o100700, "12345"},
		{"dev", 0o040755, ""},
		{"dev/console", 0o020600, ""},
		{"bin", 0o040755, ""},
		{"bin/sh", 0o120777, "/init"},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d entries %+v, want %d", len(got), got, len(want))
	}
	for i, w := range want {
		g := got[i]
		if g.name != w.name || g.mode != w.mode || g.data != w.data {
			t.Errorf("entry %d = %q mode %o data %q, want %q mode %o data %q", i, g.name, g.mode, g.data, w.name, w.mode, w.data)
		}
		if g.ino != uint32(i+1) {
			t.Errorf("entry %d (%s) ino = %d, want %d", i, g.name, g.ino, i+1)
		}
	}
	if c := got[5]; c.rmaj != 5 || c.rmin != 1 {
		t.Errorf("dev/console rdev = %d,%d, want 5,1", c.rmaj, c.rmin)
	}
	if got[1].nlink != 2 || got[0].nlink != 1 {
		t.Errorf("nlink dir/file = %d/%d, want 2/1", got[1].nlink, got[0].nlink)
	}
}

func TestReproducible(t *testing.T) {
	build := func() []byte {
		var buf bytes.Buffer
		w := NewWriter(&buf)
		for i := range 5 {
			if err := w.Bytes(fmt.Sprintf("d/f%d", i), 0o644, bytes.Repeat([]byte{'x'}, i)); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	a, b := build(), build()
	if !bytes.Equal(a, b) {
		t.Fatal("two identical archives differ")
	}
	if len(a)%4 != 0 {
		t.Fatalf("archive length %d is not a multiple of 4", len(a))
	}
}

func TestErrors(t *testing.T) {
	cases := []struct {
		name string
		do   func(w *Writer) error
		want string
	}{
		{"empty name", func(w *Writer) error { return w.Bytes("/", 0o644, nil) }, "empty name"},
		{"dotdot", func(w *Writer) error { return w.Bytes("a/../b", 0o644, nil) }, "not a clean path"},
		{"double slash", func(w *Writer) error { return w.Bytes("a//b", 0o644, nil) }, "not a clean path"},
		{"nul", func(w *Writer) error { return w.Bytes("a\x00b", 0o644, nil) }, "NUL"},
		{"duplicate", func(w *Writer) error {
			if err := w.Bytes("x", 0o644, nil); err != nil {
				return err
			}
			return w.Bytes("/x", 0o644, nil)
		}, "duplicate entry"},
		{"dir over file", func(w *Writer) error {
			if err := w.Bytes("x", 0o644, nil); err != nil {
				return err
			}
			return w.Dir("x", 0o755)
		}, "not a directory"},
		{"short reader", func(w *Writer) error { return w.File("x", 0o644, 10, strings.NewReader("abc")) }, "gave 3 bytes, want 10"},
		{"reader error", func(w *Writer) error {
			return w.File("x", 0o644, 10, iotest.ErrReader(errors.New("disk on fire")))
		}, "disk on fire"},
		{"too big", func(w *Writer) error { return w.File("x", 0o644, 1<<32, strings.NewReader("")) }, "does not fit"},
		{"bad symlink", func(w *Writer) error { return w.Symlink("x", "") }, "bad target"},
		{"after close", func(w *Writer) error {
			if err := w.Close(); err != nil {
				return err
			}
			return w.Bytes("x", 0o644, nil)
		}, "after Close"},
		{"double close", func(w *Writer) error {
			if err := w.Close(); err != nil {
				return err
			}
			return w.Close()
		}, "already closed"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.do(NewWriter(&bytes.Buffer{}))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error = %v, want one containing %q", err, c.want)
			}
		})
	}
}

// failWriter accepts n bytes and then fails.
type failWriter struct{ n int }

func (f *failWriter) Write(p []byte) (int, error) {
	if len(p) > f.n {
		k := f.n
		f.n = 0
		return k, errors.New("device full")
	}
	f.n -= len(p)
	return len(p), nil
}

func TestWriteErrorSticks(t *testing.T) {
	w := NewWriter(&failWriter{n: 50})
	if err := w.Bytes("a", 0o644, []byte("x")); err == nil || !strings.Contains(err.Error(), "device full") {
		t.Fatalf("first write error = %v, want device full", err)
	}
	if err := w.Bytes("b", 0o644, nil); err == nil || !strings.Contains(err.Error(), "device full") {
		t.Fatalf("later write error = %v, want the first error again", err)
	}
	if err := w.Close(); err == nil {
		t.Fatal("Close after a write error succeeded")
	}
}

// TestCpioTool cross-checks the archive with GNU cpio when it is installed.
func TestCpioTool(t *testing.T) {
	cpio, err := exec.LookPath("cpio")
	if err != nil {
		t.Skip("cpio not installed")
	}
	var buf bytes.Buffer
	w := NewWriter(&buf)
	if err := w.Bytes("a/b/c.txt", 0o640, []byte("hello\n")); err != nil {
		t.Fatal(err)
	}
	if err := w.Symlink("a/link", "b/c.txt"); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cmd := exec.Command(cpio, "-i", "-d", "--quiet")
	cmd.Dir = dir
	cmd.Stdin = &buf
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cpio -i: %v\n%s", err, out)
	}
	data, err := os.ReadFile(filepath.Join(dir, "a/link"))
	if err != nil || string(data) != "hello\n" {
		t.Fatalf("read through extracted link = %q, %v; want hello", data, err)
	}
	st, err := os.Stat(filepath.Join(dir, "a/b/c.txt"))
	if err != nil || st.Mode().Perm() != 0o640 {
		t.Fatalf("extracted file mode = %v, %v; want 0640", st, err)
	}
}
