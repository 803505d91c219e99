//go:build linux

// Command qemuinit is the /init of the initramfs that .ci/qemu-test.sh boots
// under qemu: it runs the project's test binaries on another kernel and
// reports their exit statuses on the console.
//
// As process 1 it mounts /proc, /sys, /dev (devtmpfs) and /tmp (tmpfs),
// prints the kernel release and what the kernel offers for rseq, then runs
// each test binary in turn with a timeout, printing after each
//
//	QEMU-TEST-RESULT <name> exit=<status> time=<seconds>s [timeout]
//
// and at the end
//
//	QEMU-TEST-END pass=<n> fail=<n>
//
// then powers the machine off. A missing end line means the run failed.
//
// It runs on amd64 (qemu-system-x86_64, console ttyS0) and arm64
// (qemu-system-aarch64 -M virt, console ttyAMA0) guests alike. The power-off
// is reboot(LINUX_REBOOT_CMD_POWER_OFF): ACPI on x86, PSCI SYSTEM_OFF on the
// arm64 virt machine; either way qemu exits with status 0, whatever the
// outcome, so the host script reads the verdict from the markers (and, on
// x86 only, from the isa-debug-exit device below).
//
// The binaries are those named on the kernel command line after "--", or
// else every /tests/NAME/*.test and /tests/*.test. Each runs in its own
// directory, with the arguments listed one per line in /tests/args followed
// by the words starting with "-" after "--" on the kernel command line.
// Environment variables set on the kernel command line (KEY=value, no dot
// in KEY) reach the binaries.
//
// Environment:
//
//	GORSEQ_QEMU_TEST_TIMEOUT  time allowed to each binary (default 5m);
//	                          then SIGQUIT, and SIGKILL 15s later
//	GORSEQ_QEMU_DEBUG_EXIT    I/O port of qemu's isa-debug-exit device (e.g.
//	                          0xf4; x86 only): write 0 there if all passed,
//	                          else 1, so qemu exits with status 1 or 3
package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

const (
	testsDir       = "/tests"
	argsFile       = "/tests/args"
	defaultTimeout = 5 * time.Minute
	killGrace      = 15 * time.Second
)

// Auxiliary vector entries that announce the extended rseq ABI (Linux 6.3+).
const (
	atRseqFeatureSize = 27
	atRseqAlign       = 28
)

func main() {
	if os.Getpid() != 1 {
		fmt.Fprintln(os.Stderr, "qemuinit: not process 1: this program is the init of a qemu test guest (see .ci/qemu-test.sh)")
		os.Exit(2)
	}
	fail := boot()
	shutdown(fail)
}

// boot prepares the guest, runs the tests and returns the number of failures
// (at least 1 when the setup itself failed).
func boot() int {
	out := os.Stdout
	mountAll()
	fmt.Fprintf(out, "QEMU-TEST-KERNEL %s\n", kernelInfo())
	fmt.Fprintf(out, "QEMU-TEST-INFO %s\n", rseqInfo())

	timeout := defaultTimeout
	if v := os.Getenv("GORSEQ_QEMU_TEST_TIMEOUT"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			fmt.Fprintf(out, "qemuinit: bad GORSEQ_QEMU_TEST_TIMEOUT %q: want a positive duration such as 5m\n", v)
			return 1
		}
		timeout = d
	}
	bins, extra := splitArgs(os.Args[1:])
	args, err := readArgsFile(argsFile)
	if err != nil {
		fmt.Fprintf(out, "qemuinit: %v\n", err)
		return 1
	}
	args = append(args, extra...)

	var jobs []job
	if len(bins) > 0 {
		for _, b := range bins {
			jobs = append(jobs, job{name: b, path: b})
		}
	} else if jobs, err = discover(testsDir); err != nil {
		fmt.Fprintf(out, "qemuinit: %v\n", err)
		return 1
	}
	if len(jobs) == 0 {
		fmt.Fprintf(out, "qemuinit: no test binaries in %s\n", testsDir)
		fmt.Fprintf(out, "%s pass=0 fail=0\n", markerEnd)
		return 1
	}
	r := &runner{
		args:    args,
		env:     guestEnv(os.Environ()),
		timeout: timeout,
		grace:   killGrace,
		out:     out,
	}
	return r.runAll(jobs)
}

// guestEnv completes the environment the kernel gave init.
func guestEnv(env []string) []string {
	defaults := []string{"PATH=/usr/bin:/bin", "HOME=/tmp", "TMPDIR=/tmp"}
	for _, d := range defaults {
		key := d[:strings.IndexByte(d, '=')+1]
		found := false
		for i, e := range env {
			if strings.HasPrefix(e, key) {
				found = true
				if key == "HOME=" && e == "HOME=/" { // the kernel's default: not writable tmpfs
					env[i] = d
				}
			}
		}
		if !found {
			env = append(env, d)
		}
	}
	return env
}

// mountAll mounts the pseudo file systems tests may need. Failures are
// reported and otherwise ignored: a test that needs the mount will fail.
func mountAll() {
	for _, m := range []struct{ src, dir, fstype, data string }{
		{"proc", "/proc", "proc", ""},
		{"sysfs", "/sys", "sysfs", ""},
		{"devtmpfs", "/dev", "devtmpfs", ""},
		{"tmpfs", "/tmp", "tmpfs", "mode=1777"},
	} {
		if err := os.MkdirAll(m.dir, 0o755); err != nil {
			fmt.Printf("qemuinit: mkdir %s: %v\n", m.dir, err)
			continue
		}
		if err := unix.Mount(m.src, m.dir, m.fstype, unix.MS_NOSUID, m.data); err != nil {
			fmt.Printf("qemuinit: mount %s on %s: %v\n", m.fstype, m.dir, err)
		}
	}
}

// kernelInfo describes the running kernel.
func kernelInfo() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "uname: " + err.Error()
	}
	cpus := "?"
	var set unix.CPUSet
	if unix.SchedGetaffinity(0, &set) == nil {
		cpus = strconv.Itoa(set.Count())
	}
	uptime := "?" // seconds since boot: how long the kernel took to start init
	if b, err := os.ReadFile("/proc/uptime"); err == nil {
		if f := strings.Fields(string(b)); len(f) > 0 {
			uptime = f[0] + "s"
		}
	}
	return fmt.Sprintf("release=%s machine=%s cpus=%s uptime=%s version=%q",
		unix.ByteSliceToString(u.Release[:]), unix.ByteSliceToString(u.Machine[:]), cpus, uptime,
		unix.ByteSliceToString(u.Version[:]))
}

// rseqInfo reports the auxv rseq entries and the result of the rseq probe
// rseq(NULL, 0, 0, 0): EINVAL where the system call exists.
func rseqInfo() string {
	size, align := "absent", "absent"
	if auxv, err := unix.Auxv(); err != nil {
		size, align = "unknown", "unknown"
	} else {
		for _, kv := range auxv {
			switch kv[0] {
			case atRseqFeatureSize:
				size = strconv.FormatUint(uint64(kv[1]), 10)
			case atRseqAlign:
				align = strconv.FormatUint(uint64(kv[1]), 10)
			}
		}
	}
	_, _, errno := unix.Syscall6(unix.SYS_RSEQ, 0, 0, 0, 0, 0, 0)
	probe := "0"
	if errno != 0 {
		probe = unix.ErrnoName(errno)
	}
	return fmt.Sprintf("AT_RSEQ_FEATURE_SIZE=%s AT_RSEQ_ALIGN=%s rseq(NULL,0,0,0)=%s", size, align, probe)
}

// shutdown powers the machine off, after telling qemu's isa-debug-exit
// device the outcome when one is configured (x86 only: arm64 has no I/O
// ports). If power-off fails, init exits: the kernel panics and, booted with
// panic=-1 under qemu -no-reboot, qemu stops.
func shutdown(fail int) {
	// The console is a serial line: wait until everything written has gone
	// out, or qemu may stop before the last lines (the markers) leave.
	if err := unix.IoctlSetInt(int(os.Stdout.Fd()), unix.TCSBRK, 1); err != nil {
		fmt.Printf("qemuinit: drain console: %v\n", err)
	}
	if port := os.Getenv("GORSEQ_QEMU_DEBUG_EXIT"); port != "" {
		code := byte(0)
		if fail > 0 {
			code = 1
		}
		if err := debugExit(port, code); err != nil {
			fmt.Printf("qemuinit: isa-debug-exit: %v\n", err)
		}
	}
	unix.Sync()
	err := unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
	fmt.Printf("qemuinit: power off: %v\n", err)
	os.Exit(1)
}

// debugExit writes code to the I/O port through /dev/port; qemu's
// isa-debug-exit device then exits with status code<<1 | 1.
func debugExit(port string, code byte) error {
	p, err := strconv.ParseUint(port, 0, 16)
	if err != nil {
		return fmt.Errorf("bad port %q: %v", port, err)
	}
	f, err := os.OpenFile("/dev/port", os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = f.WriteAt([]byte{code}, int64(p))
	return err
}
