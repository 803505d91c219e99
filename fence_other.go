//go:build !linux

package rseq

import "errors"

// Fence returns nil for a CPU below PossibleCPUs: without restartable
// sections the fallback's locks order every update.
func Fence(cpu int) error {
	if cpu < 0 || cpu >= possibleCPUs {
		return errors.New("rseq: Fence: CPU out of range")
	}
	return nil
}

// FenceAll returns nil, like Fence.
func FenceAll() error { return nil }
