package testenv

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// onProcessMainThread returns an error unless the calling thread is the
// process's main thread (its thread id is the process id).
func onProcessMainThread() error {
	if tid, pid := unix.Gettid(), unix.Getpid(); tid != pid {
		return fmt.Errorf("running on thread %d, not the main thread %d", tid, pid)
	}
	return nil
}
