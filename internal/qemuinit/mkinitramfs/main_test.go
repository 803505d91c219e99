package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// members lists the names, modes and contents of a newc archive.
func members(t *testing.T, b []byte) map[string]string {
	t.Helper()
	got := map[string]string{}
	off := 0
	up4 := func(n int) int { return (n + 3) &^ 3 }
	for off+110 <= len(b) {
		h := string(b[off : off+110])
		if h[:6] != "070701" {
			t.Fatalf("bad magic at %d", off)
		}
		field := func(i int) int {
			v, err := strconv.ParseUint(h[6+8*i:14+8*i], 16, 32)
			if err != nil {
				t.Fatal(err)
			}
			return int(v)
		}
		mode, size, namesize := field(1), field(6), field(11)
		name := string(b[off+110 : off+110+namesize-1])
		off = up4(off + 110 + namesize)
		data := string(b[off : off+size])
		off = up4(off + size)
		if name == "TRAILER!!!" {
			return got
		}
		got[name] = strconv.FormatInt(int64(mode), 8) + " " + data
	}
	t.Fatal("no trailer")
	return nil
}

func TestPack(t *testing.T) {
	dir := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(filepath.Join(dir, "init"), []byte("INIT"), 0o755))
	must(os.MkdirAll(filepath.Join(dir, "td", "sub"), 0o750))
	must(os.WriteFile(filepath.Join(dir, "td", "sub", "x.txt"), []byte("data"), 0o600))
	must(os.Symlink("sub/x.txt", filepath.Join(dir, "td", "ln")))
	out := filepath.Join(dir, "initrd")
	var stderr bytes.Buffer
	if rc := run([]string{"-o", out, "-init", filepath.Join(dir, "init"), "tests/p/testdata=" + filepath.Join(dir, "td")}, &stderr); rc != 0 {
		t.Fatalf("run = %d: %s", rc, stderr.String())
	}
	b, err := os.ReadFile(out)
	must(err)
	got := members(t, b)
	want := map[string]string{
		"dev":                        "40755 ",
		"dev/console":                "20600 ",
		"proc":                       "40555 ",
		"sys":                        "40555 ",
		"tmp":                        "40777 ",
		"root":                       "40700 ",
		"init":                       "100755 INIT",
		"tests":                      "40755 ",
		"tests/p":                    "40755 ",
		"tests/p/testdata":           "40750 ",
		"tests/p/testdata/sub":       "40750 ",
		"tests/p/testdata/sub/x.txt": "100600 data",
		"tests/p/testdata/ln":        "120777 sub/x.txt",
	}
	if len(got) != len(want) {
		t.Errorf("archive has %d members, want %d: %v", len(got), len(want), got)
	}
	for name, w := range want {
		if got[name] != w {
			t.Errorf("%s = %q, want %q", name, got[name], w)
		}
	}
}

func TestPackErrors(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "initrd")
	cases := []struct {
		args []string
		rc   int
		want string
	}{
		{[]string{}, 2, "-o is required"},
		{[]string{"-o", out, "nodest"}, 1, `bad argument "nodest"`},
		{[]string{"-o", out, "x=" + filepath.Join(dir, "missing")}, 1, "no such file"},
		{[]string{"-o", out, "a/../b=" + dir}, 1, "not a clean path"},
	}
	for _, c := range cases {
		var stderr bytes.Buffer
		if rc := run(c.args, &stderr); rc != c.rc || !strings.Contains(stderr.String(), c.want) {
			t.Errorf("run(%q) = %d, %q; want %d and %q", c.args, rc, stderr.String(), c.rc, c.want)
		}
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("a failed run left %s behind (stat error %v)", out, err)
	}
	left, _ := filepath.Glob(filepath.Join(dir, ".mkinitramfs-*"))
	if len(left) != 0 {
		t.Errorf("temporary files left behind: %v", left)
	}
}
