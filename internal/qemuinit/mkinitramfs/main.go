// Command mkinitramfs packs files into a newc cpio archive that the Linux
// kernel can boot as an initramfs.
//
// Usage:
//
//	mkinitramfs -o OUT [-init FILE] [DEST=SRC ...]
//
// The archive always holds the directories /dev, /proc, /sys, /tmp and /root
// and the node /dev/console (the kernel opens it for init's standard streams).
// -init FILE is stored as /init. Each DEST=SRC copies the host file or
// directory tree SRC to DEST in the archive (regular files, directories and
// symbolic links; permission bits kept, owners root, times zero).
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/gorseq/rseq/internal/qemuinit/newc"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stderr))
}

func run(args []string, stderr io.Writer) int {
	fset := flag.NewFlagSet("mkinitramfs", flag.ContinueOnError)
	fset.SetOutput(stderr)
	out := fset.String("o", "", "write the archive to `file` (required)")
	initFile := fset.String("init", "", "store `file` as /init")
	fset.Usage = func() {
		fmt.Fprintln(stderr, "usage: mkinitramfs -o OUT [-init FILE] [DEST=SRC ...]")
		fset.PrintDefaults()
	}
	if err := fset.Parse(args); err != nil {
		return 2
	}
	if *out == "" {
		fmt.Fprintln(stderr, "mkinitramfs: -o is required")
		return 2
	}
	specs := fset.Args()
	if *initFile != "" {
		specs = append([]string{"/init=" + *initFile}, specs...)
	}
	if err := write(*out, specs); err != nil {
		fmt.Fprintln(stderr, "mkinitramfs:", err)
		return 1
	}
	return 0
}

// write builds the archive at out, replacing it only when complete.
func write(out string, specs []string) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(out), ".mkinitramfs-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	bw := bufio.NewWriterSize(tmp, 1<<20)
	w := newc.NewWriter(bw)
	if err := skeleton(w); err != nil {
		return err
	}
	for _, spec := range specs {
		dest, src, ok := strings.Cut(spec, "=")
		if !ok || dest == "" || src == "" {
			return fmt.Errorf("bad argument %q: want DEST=SRC", spec)
		}
		if err := add(w, dest, src); err != nil {
			return err
		}
	}
	if err := w.Close(); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), out)
}

// skeleton adds the directories and device node every initramfs needs.
func skeleton(w *newc.Writer) error {
	for _, d := range []struct {
		name string
		perm fs.FileMode
	}{{"dev", 0o755}, {"proc", 0o555}, {"sys", 0o555}, {"tmp", 0o777}, {"root", 0o700}} {
		if err := w.Dir(d.name, d.perm); err != nil {
			return err
		}
	}
	return w.CharDev("dev/console", 0o600, 5, 1)
}

// add copies the host file or tree src to dest in the archive.
func add(w *newc.Writer, dest, src string) error {
	st, err := os.Lstat(src)
	if err != nil {
		return err
	}
	if !st.IsDir() {
		return addOne(w, dest, src, st)
	}
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		name := dest // not path.Join: the archive writer must see a bad dest
		if rel != "." {
			name += "/" + filepath.ToSlash(rel)
		}
		return addOne(w, name, p, info)
	})
}

// addOne adds one directory, regular file or symbolic link.
func addOne(w *newc.Writer, dest, src string, st fs.FileInfo) error {
	switch {
	case st.IsDir():
		return w.Dir(dest, st.Mode().Perm())
	case st.Mode()&fs.ModeSymlink != 0:
		target, err := os.Readlink(src)
		if err != nil {
			return err
		}
		return w.Symlink(dest, target)
	case st.Mode().IsRegular():
		f, err := os.Open(src)
		if err != nil {
			return err
		}
		defer f.Close()
		return w.File(dest, st.Mode().Perm(), st.Size(), f)
	default:
		return fmt.Errorf("%s: %w (%v)", src, errUnsupported, st.Mode().Type())
	}
}

var errUnsupported = errors.New("unsupported file type")
