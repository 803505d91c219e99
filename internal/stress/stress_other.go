//go:build !linux

package stress

import (
	"errors"
	"fmt"
	"runtime"
	"time"
)

// Outside Linux there is no sched_setaffinity on other threads and no
// tgkill: the affinity and signal storms stay off.

type cpuSet struct{}

var errNotLinux = fmt.Errorf("not supported on %s: %w", runtime.GOOS, errors.ErrUnsupported)

func getAffinity(*cpuSet) error      { return fmt.Errorf("sched_getaffinity: %w", errNotLinux) }
func setAffinity(int, *cpuSet) error { return errNotLinux }
func gettid() int                    { return 0 }
func canSignal() error               { return fmt.Errorf("tgkill: %w", errNotLinux) }

func (f *fire) affinityStorm() { f.wg.Done() }
func (f *fire) signalStorm()   { f.wg.Done() }

// signalCost is not measured outside Linux (no tgkill): 0.
func signalCost() time.Duration { return 0 }
