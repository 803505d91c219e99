//go:build !linux

package perftrace

import (
	"errors"
	"fmt"
	"runtime"
	"time"
)

// Errors that callers may test for with errors.Is.
var (
	ErrNoTracefs  = errors.New("no tracefs")
	ErrNoEvent    = errors.New("no such tracepoint")
	ErrPermission = errors.New("permission denied")
)

var errOS = fmt.Errorf("perftrace: tracepoints are read through Linux perf events, and this is %s: %w", runtime.GOOS, errors.ErrUnsupported)

// Tracefs is a tracefs directory; there is none outside Linux.
type Tracefs struct {
	Dir     string
	Mounted bool
}

// OpenTracefs returns an error wrapping errors.ErrUnsupported.
func OpenTracefs() (*Tracefs, error) { return nil, errOS }

// Close does nothing.
func (t *Tracefs) Close() error { return nil }

// Format returns an error wrapping errors.ErrUnsupported.
func (t *Tracefs) Format(system, name string) (*Format, error) { return nil, errOS }

// Sample is one tracepoint hit.
type Sample struct {
	Event    int
	PID, TID int
	CPU      int
	Time     uint64
	Raw      []byte
}

// Session is never opened outside Linux.
type Session struct{}

// Open returns an error wrapping errors.ErrUnsupported.
func Open(formats []*Format, pages int) (*Session, error) { return nil, errOS }

// Enable does nothing.
func (s *Session) Enable() error { return errOS }

// Disable does nothing.
func (s *Session) Disable() error { return errOS }

// Wait does nothing.
func (s *Session) Wait(timeout time.Duration) error { return errOS }

// Lost returns 0.
func (s *Session) Lost(ev int) uint64 { return 0 }

// Read does nothing.
func (s *Session) Read(fn func(Sample)) {}

// Close does nothing.
func (s *Session) Close() {}
