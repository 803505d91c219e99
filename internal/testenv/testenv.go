// Package testenv holds what the project's test binaries check about the
// environment they run in before any test runs.
package testenv

import (
	"fmt"
	"os"

	"github.com/gorseq/rseq"
)

// CheckOperations returns an error when the environment expects restartable
// sections (GORSEQ_EXPECT_OPERATIONS=1, as .ci/run and the CI guests set
// it) and the process runs the fallback instead: a CI host whose seccomp
// profile refused rseq must fail loudly, not pass every test on the
// fallback. A race-detector build (which uses the fallback on purpose),
// GORSEQ=off (which asks for it) and a Go release the package does not
// verify (TestRuntimeAssumptions, the one test that fails then, says so)
// are exempt.
func CheckOperations() error {
	if os.Getenv("GORSEQ_EXPECT_OPERATIONS") != "1" || raceEnabled || os.Getenv("GORSEQ") == "off" {
		return nil
	}
	f := rseq.Features()
	if !f.RuntimeVerified && os.Getenv("GORSEQ") != "unverified" {
		return nil
	}
	if !f.Operations {
		return fmt.Errorf("GORSEQ_EXPECT_OPERATIONS=1, but the per-CPU operations use the fallback: %s (rseq: %s)", f.OperationsReason, f.Reason)
	}
	return nil
}

// Main is a TestMain that runs CheckOperations before the tests.
func Main(m interface{ Run() int }) {
	if err := CheckOperations(); err != nil {
		fmt.Fprintln(os.Stderr, "FAIL:", err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

// InQemu reports whether the test runs in a qemu guest (GORSEQ_QEMU, set
// by .ci/qemu-test.sh): full-system emulation under TCG.
func InQemu() bool { return os.Getenv("GORSEQ_QEMU") != "" }

// tcgStraightLine lists the sections with no branch between their first
// instruction and their commit. qemu's TCG emulator runs a guest's code in
// translated blocks that end at branches, and delivers interrupts (timer,
// IPI: what preempts, migrates or signals a thread) only between blocks: a
// straight-line section lies inside one block and is never interrupted
// there. Every other section has a conditional branch inside, where a
// block ends, and aborts there like anywhere.
var tcgStraightLine = map[string]bool{"add": true, "addIndirect": true, "addCPU": true, "addFloat64CPU": true}

// Abortable reports whether the named section can abort where the test
// runs: anywhere but a straight-line section under qemu's TCG.
func Abortable(section string) bool { return !InQemu() || !tcgStraightLine[section] }
