package perftrace

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// Errors that callers may test for with errors.Is; the errors returned
// wrap them and say more.
var (
	// ErrNoTracefs: tracefs is not mounted and could not be mounted.
	ErrNoTracefs = errors.New("no tracefs")
	// ErrNoEvent: the kernel has no such tracepoint.
	ErrNoEvent = errors.New("no such tracepoint")
	// ErrPermission: the caller may not read tracefs or open the events.
	ErrPermission = errors.New("permission denied")
)

// Tracefs is a tracefs directory (the one holding events/).
type Tracefs struct {
	Dir string
	// Mounted is set when Open mounted it (on a temporary directory, for
	// as long as the Tracefs is open) because none was mounted.
	Mounted bool
}

// OpenTracefs finds a mounted tracefs (a tracefs mount, or debugfs's
// tracing directory); where there is none it mounts one on a temporary
// directory, which Close unmounts.
func OpenTracefs() (*Tracefs, error) {
	var cands []string
	if f, err := os.Open("/proc/self/mountinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			// id parent maj:min root mountpoint opts... - fstype source superopts
			fields := strings.Fields(sc.Text())
			sep := -1
			for i, x := range fields {
				if x == "-" {
					sep = i
					break
				}
			}
			if sep < 0 || sep+1 >= len(fields) || len(fields) < 5 {
				continue
			}
			mnt := unescapeMount(fields[4])
			switch fields[sep+1] {
			case "tracefs":
				cands = append(cands, mnt)
			case "debugfs":
				cands = append(cands, filepath.Join(mnt, "tracing"))
			}
		}
		f.Close()
	}
	cands = append(cands, "/sys/kernel/tracing", "/sys/kernel/debug/tracing")
	var denied error
	for _, d := range cands {
		_, err := os.Stat(filepath.Join(d, "events"))
		if err == nil {
			return &Tracefs{Dir: d}, nil
		}
		if errors.Is(err, fs.ErrPermission) && denied == nil {
			denied = fmt.Errorf("%w: %s: %v (tracefs is readable by root only unless its mount options say otherwise)", ErrPermission, d, err)
		}
	}
	if denied != nil {
		return nil, denied
	}
	dir, err := os.MkdirTemp("", "rseq-tracefs-")
	if err != nil {
		return nil, fmt.Errorf("%w: none mounted, and no directory to mount one on: %v", ErrNoTracefs, err)
	}
	if err := unix.Mount("nodev", dir, "tracefs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		os.Remove(dir)
		switch {
		case errors.Is(err, unix.EPERM), errors.Is(err, unix.EACCES):
			return nil, fmt.Errorf("%w: tracefs is not mounted (looked at /sys/kernel/tracing and /sys/kernel/debug/tracing), and mounting it needs CAP_SYS_ADMIN: %v; mount it with `mount -t tracefs nodev /sys/kernel/tracing`", ErrNoTracefs, err)
		case errors.Is(err, unix.ENODEV):
			return nil, fmt.Errorf("%w: this kernel has no tracefs (built without CONFIG_TRACING?)", ErrNoTracefs)
		}
		return nil, fmt.Errorf("%w: tracefs is not mounted, and mounting it failed: %v", ErrNoTracefs, err)
	}
	return &Tracefs{Dir: dir, Mounted: true}, nil
}

// unescapeMount undoes the octal escapes of /proc/self/mountinfo paths.
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			v := 0
			ok := true
			for _, c := range s[i+1 : i+4] {
				if c < '0' || c > '7' {
					ok = false
					break
				}
				v = v*8 + int(c-'0')
			}
			if ok {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// Close unmounts the tracefs that OpenTracefs mounted.
func (t *Tracefs) Close() error {
	if !t.Mounted {
		return nil
	}
	t.Mounted = false
	err := unix.Unmount(t.Dir, unix.MNT_DETACH)
	os.Remove(t.Dir)
	return err
}

// Format reads and parses events/SYSTEM/NAME/format.
func (t *Tracefs) Format(system, name string) (*Format, error) {
	p := filepath.Join(t.Dir, "events", system, name, "format")
	b, err := os.ReadFile(p)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		why := "the kernel has no tracepoint " + system + ":" + name
		if system == "rseq" {
			why += " (built without CONFIG_RSEQ or CONFIG_TRACEPOINTS?)"
		}
		return nil, fmt.Errorf("%w: %s: %s", ErrNoEvent, p, why)
	case errors.Is(err, fs.ErrPermission):
		return nil, fmt.Errorf("%w: %s: %v (tracefs is readable by root only unless its mount options say otherwise)", ErrPermission, p, err)
	case err != nil:
		return nil, err
	}
	return ParseFormat(system, b)
}
