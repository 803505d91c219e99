//go:build !linux

package testenv

// OnProcessMainThread cannot tell threads apart here, where no test lends
// the main thread (the PIE children are Linux's).
func OnProcessMainThread() error { return nil }
