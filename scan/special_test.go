//go:build linux || darwin || freebsd

package scan

import (
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestSpecialFiles: a FIFO (which no one writes) and a character device are
// refused at once, with an error that says what they are.
func TestSpecialFiles(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "f")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	for _, tc := range []struct{ path, kind string }{{fifo, "a FIFO"}, {"/dev/null", "a character device"}} {
		done := make(chan error, 1)
		go func() {
			_, err := ScanFile(tc.path, Options{})
			done <- err
		}()
		select {
		case err := <-done:
			if err == nil || !strings.Contains(err.Error(), "not a regular file ("+tc.kind+")") {
				t.Errorf("%s: error %v, want not a regular file (%s)", tc.path, err, tc.kind)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("ScanFile(%s) still blocked after 5s", tc.path)
		}
	}
}
