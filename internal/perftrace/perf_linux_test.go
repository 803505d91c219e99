package perftrace

import (
	"errors"
	"os"
	"slices"
	"testing"
)

func TestParseCPUList(t *testing.T) {
	got, err := parseCPUList("0-3,8,10-11")
	if err != nil || !slices.Equal(got, []int{0, 1, 2, 3, 8, 10, 11}) {
		t.Errorf("got %v, %v", got, err)
	}
	for _, bad := range []string{"", "3-1", "a", "1-b"} {
		if _, err := parseCPUList(bad); err == nil {
			t.Errorf("parseCPUList(%q) succeeded", bad)
		}
	}
}

func TestUnescapeMount(t *testing.T) {
	if got := unescapeMount(`/mnt/with\040space\134x`); got != `/mnt/with space\x` {
		t.Errorf("got %q", got)
	}
}

// TestOpenRseqEvents opens rseq:rseq_ip_fixup on every CPU where the
// machine allows it.
func TestOpenRseqEvents(t *testing.T) {
	tfs, err := OpenTracefs()
	if err != nil {
		t.Skipf("no tracefs: %v", err)
	}
	f, err := tfs.Format("rseq", "rseq_ip_fixup")
	tfs.Close()
	if errors.Is(err, ErrNoEvent) || errors.Is(err, ErrPermission) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := f.Field("start_ip"); !ok {
		t.Fatalf("no start_ip in %+v", f)
	}
	s, err := Open([]*Format{f}, 8)
	if errors.Is(err, ErrPermission) {
		if os.Getenv("GORSEQ_QEMU") == "1" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Enable(); err != nil {
		t.Fatal(err)
	}
	if err := s.Wait(0); err != nil {
		t.Fatal(err)
	}
	s.Read(func(Sample) {})
	if err := s.Disable(); err != nil {
		t.Fatal(err)
	}
	if _, err := Open([]*Format{f}, 3); err == nil {
		t.Error("3 ring pages accepted")
	}
}
