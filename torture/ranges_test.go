//go:build linux && (amd64 || arm64)

package torture

import "testing"

func TestExecRanges(t *testing.T) {
	maps := "7f0000001000-7f0000002000 r-xp 00001000 08:01 42 /lib/libinc.so\n" +
		"aaaa00000000-aaaa00010000 r-xp 00000000 08:01 43 /usr/bin/prog\n"
	r := execRanges(maps)
	if len(r) != 2 || r[0] != [2]uint64{0x7f0000001000, 0x7f0000002000} || r[1] != [2]uint64{0xaaaa00000000, 0xaaaa00010000} {
		t.Fatalf("ranges %x", r)
	}
	for addr, want := range map[uint64]bool{0x7f0000001000: true, 0x7f0000001ffc: true, 0x7f0000002000: false, 0xaaaa00000010: true, 0: false} {
		if inRanges(r, addr) != want {
			t.Errorf("inRanges(%#x) = %v", addr, !want)
		}
	}
}
