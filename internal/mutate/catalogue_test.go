//go:build linux

package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCatalogue checks every entry against the tree as it is: names unique,
// architectures known, killers given, and every snippet found exactly once
// (edits of one file applied in order). A failure here means the code moved
// under the catalogue: update the entry.
func TestCatalogue(t *testing.T) {
	if len(catalogue) < 25 {
		t.Errorf("%d mutants, want at least 25", len(catalogue))
	}
	names := map[string]bool{}
	kinds := map[Kind]int{}
	for i := range catalogue {
		m := &catalogue[i]
		if m.Name == "" || names[m.Name] {
			t.Errorf("mutant %d: empty or duplicate name %q", i, m.Name)
		}
		names[m.Name] = true
		kinds[m.Kind]++
		switch m.Arch {
		case "", "amd64", "arm64":
		default:
			t.Errorf("%s: architecture %q", m.Name, m.Arch)
		}
		if len(m.Kill) == 0 || len(m.Edits) == 0 {
			t.Errorf("%s: no killer or no edit", m.Name)
		}
		for _, k := range m.Kill {
			if k.Pkg == "" || k.Run == "" || k.Timeout <= 0 {
				t.Errorf("%s: incomplete killer %+v", m.Name, k)
			}
		}
		files := map[string][]byte{}
		for _, e := range m.Edits {
			b, ok := files[e.File]
			if !ok {
				var err error
				if b, err = os.ReadFile(filepath.Join("..", "..", e.File)); err != nil {
					t.Errorf("%s: %v", m.Name, err)
					continue
				}
			}
			if n := bytes.Count(b, []byte(e.Find)); n != 1 {
				t.Errorf("%s: %s: snippet found %d times, want once: %q", m.Name, e.File, n, e.Find)
				continue
			}
			if e.Find == e.Replace {
				t.Errorf("%s: an edit changes nothing", m.Name)
			}
			files[e.File] = bytes.Replace(b, []byte(e.Find), []byte(e.Replace), 1)
		}
		if strings.Contains(m.Name, " ") {
			t.Errorf("%s: a space in the name", m.Name)
		}
	}
	for _, k := range []Kind{StaleIndex, CommitEarly, DoubleStore, NoRearm, ReadAfterCommit, PlainRelease, PlainAcquire, SharedSlotSkipped, NoFence, LockBitUnchecked, FallbackUnlocked} {
		if kinds[k] == 0 {
			t.Errorf("no mutant of kind %s", k)
		}
	}
}
