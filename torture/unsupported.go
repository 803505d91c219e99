//go:build !linux || !(amd64 || arm64)

package torture

import (
	"errors"
	"fmt"
	"runtime"
)

// Run is not supported on this platform: it needs Linux's ptrace and
// restartable sequences, and knows the breakpoints of x86-64 and arm64 only.
func Run(cfg Config) (*Report, error) {
	return nil, fmt.Errorf("torture: not supported on %s/%s (linux/amd64 and linux/arm64 only): %w", runtime.GOOS, runtime.GOARCH, errors.ErrUnsupported)
}
