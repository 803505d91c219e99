//go:build !linux

package inspect

import (
	"errors"
	"fmt"
	"runtime"
)

// Inspect is not supported on this platform: it needs Linux's
// PTRACE_GET_RSEQ_CONFIGURATION.
func Inspect(pid int, sym Symbolizer) (*Process, error) {
	return nil, fmt.Errorf("inspecting process %d: not supported on %s (rseq is a Linux feature): %w", pid, runtime.GOOS, errors.ErrUnsupported)
}
