// Package prebuilt lets the tests that build helper programs (with gcc or
// go build) use programs built beforehand instead, for test machines that
// have neither compiler: qemu guests booted with nothing but the test
// binaries and .ci/prebuild.sh's output.
//
// The environment variable GORSEQ_PREBUILT names the directory
// .ci/prebuild.sh filled. A program whose source lives in the testdata of
// package directory PKGDIR (relative to the module root: "torture",
// "inspect") is looked up as $GORSEQ_PREBUILT/PKGDIR/NAME; a test of
// another package that runs the same program (cmd/rseq runs
// torture/testdata/percpu.c) looks it up there too. When GORSEQ_PREBUILT is
// set, a missing program fails the test, naming the file: the test must not
// silently turn into a skip or a build. Programs that need the dynamic
// loader find it and their shared libraries in $GORSEQ_PREBUILT/lib (see
// Loader).
package prebuilt

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"
)

// Env is the environment variable naming the directory of prebuilt programs.
const Env = "GORSEQ_PREBUILT"

// Dir returns the absolute directory GORSEQ_PREBUILT names, or "" when it is
// not set.
func Dir() string {
	d := os.Getenv(Env)
	if d == "" {
		return ""
	}
	if abs, err := filepath.Abs(d); err == nil {
		d = abs
	}
	return d
}

// Lookup returns the absolute path of the prebuilt program PKGDIR/NAME. With
// GORSEQ_PREBUILT unset it returns ok false and no error; with it set, an
// error when the file is missing.
func Lookup(pkgdir, name string) (path string, ok bool, err error) {
	d := Dir()
	if d == "" {
		return "", false, nil
	}
	if b, err := os.ReadFile(filepath.Join(d, "GOARCH")); err == nil {
		if a := strings.TrimSpace(string(b)); a != runtime.GOARCH {
			return "", true, fmt.Errorf("%s=%s holds programs for %s, and this test runs on %s", Env, os.Getenv(Env), a, runtime.GOARCH)
		}
	}
	path = filepath.Join(d, filepath.FromSlash(pkgdir), name)
	st, err := os.Stat(path)
	if err != nil {
		return "", true, fmt.Errorf("%s=%s is set but the prebuilt program %s is missing (build it with .ci/prebuild.sh GOARCH %s): %w", Env, os.Getenv(Env), path, os.Getenv(Env), err)
	}
	if st.IsDir() || st.Mode()&0o111 == 0 && filepath.Ext(name) != ".so" {
		return "", true, fmt.Errorf("%s=%s: %s is not an executable file", Env, os.Getenv(Env), path)
	}
	return path, true, nil
}

// Program returns the path of the helper program PKGDIR/NAME: the prebuilt
// one when GORSEQ_PREBUILT is set (the test fails if it is missing), else
// what build makes (build writes the program to the path it is given, in a
// directory of the test's, and returns an error on failure; nil when the
// caller takes the program from GORSEQ_PREBUILT only).
func Program(t testing.TB, pkgdir, name string, build func(out string) error) string {
	t.Helper()
	path, ok, err := Lookup(pkgdir, name)
	if err != nil {
		t.Fatal(err)
	}
	if ok {
		return path
	}
	if build == nil {
		t.Fatalf("%s/%s: only prebuilt (set %s)", pkgdir, name, Env)
	}
	out := filepath.Join(t.TempDir(), name)
	if err := build(out); err != nil {
		t.Fatalf("building %s/%s: %v", pkgdir, name, err)
	}
	return out
}

// Loader returns the dynamic loader in $GORSEQ_PREBUILT/lib (the file whose
// name starts with "ld-linux") and that directory, for running a prebuilt
// dynamically linked program as
//
//	LOADER --library-path LIBDIR PROGRAM ARGS...
//
// on a machine that has no C library installed. It fails the test when
// GORSEQ_PREBUILT is set without one, and returns "" when it is not set.
func Loader(t testing.TB) (loader, libdir string) {
	t.Helper()
	d := Dir()
	if d == "" {
		return "", ""
	}
	libdir = filepath.Join(d, "lib")
	m, _ := filepath.Glob(filepath.Join(libdir, "ld-linux*"))
	sort.Strings(m)
	if len(m) == 0 {
		t.Fatalf("%s=%s is set but holds no dynamic loader %s/ld-linux* (build it with .ci/prebuild.sh)", Env, os.Getenv(Env), libdir)
	}
	return m[0], libdir
}
