//go:build !linux

package testenv

// onProcessMainThread cannot tell threads apart here, where no test lends
// the main thread (the PIE children are Linux's).
func onProcessMainThread() error { return nil }
