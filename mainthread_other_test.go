//go:build !linux

package rseq_test

// onProcessMainThread cannot tell threads apart here; only the Linux PIE
// child (TestScenariosInFallbackModes) asks for the main thread.
func onProcessMainThread() error { return nil }
