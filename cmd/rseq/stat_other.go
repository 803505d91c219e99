//go:build !linux

package main

import (
	"errors"
	"fmt"
	"os"
	"runtime"
)

func openStatSource(updates bool) (statSource, error) {
	return nil, fmt.Errorf("not supported on %s: the aborts are read from Linux's rseq tracepoints through perf events: %w", runtime.GOOS, errors.ErrUnsupported)
}

func isTerminal(f *os.File) bool { return false }
