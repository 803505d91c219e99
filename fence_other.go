//go:build !linux

package rseq

// Fence returns nil: without restartable sections the fallback's locks
// order every update.
func Fence(cpu int) error { return nil }

// FenceAll returns nil, like Fence.
func FenceAll() error { return nil }
