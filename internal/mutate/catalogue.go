//go:build linux

package main

import (
	"fmt"
	"runtime"
	"strings"
	"time"
)

// Mutant is one planted bug.
type Mutant struct {
	// Name is unique: architecture (or "go"), the section or area, what.
	Name string
	// Kind is the class of bug.
	Kind Kind
	// Arch is the architecture whose code the edits change ("amd64" or
	// "arm64"), or "" for Go code (tried on the host).
	Arch string
	// Edits are the changes, applied in order; each Find must occur
	// exactly once in its file.
	Edits []Edit
	// Kill lists the tests that should kill the mutant, tried in order
	// until one fails.
	Kill []Killer
	// CI puts the mutant in the CI subset (.ci/mutate.sh).
	CI bool
}

// Edit replaces the only occurrence of Find in File (relative to the
// repository root) by Replace.
type Edit struct {
	File, Find, Replace string
}

// Killer is a test run that should fail with the mutant.
type Killer struct {
	// Pkg is the package directory, relative to the repository root.
	Pkg string
	// Run is the -test.run pattern.
	Run string
	// Env is added to the test's environment (killers run here only).
	Env []string
	// Timeout bounds the test (-test.timeout; a guest run gets its build
	// and boot time on top).
	Timeout time.Duration
	// Short passes -test.short.
	Short bool
	// Host runs the killer on this machine even for a mutant of another
	// architecture: a check of that architecture's build (a cross
	// build), not of its behaviour.
	Host bool
	// Tags builds the test binary with these build tags (go test -tags),
	// for tests of hooks that normal builds compile out. A tagged killer
	// runs on this machine only.
	Tags string
}

// Kind classifies mutants.
type Kind string

// The kinds of bug in the catalogue.
const (
	// StaleIndex: a section reads its index (CPU number) before the
	// restart label, so a restart after a migration uses the old CPU's
	// slot.
	StaleIndex Kind = "stale-index"
	// CommitEarly: the commit store happens before a speculative store
	// that it publishes.
	CommitEarly Kind = "commit-early"
	// DoubleStore: an extra, early store of the result inside the
	// section, so an abort after it counts twice.
	DoubleStore Kind = "double-store"
	// NoRearm: the abort handler jumps past the re-arm of rseq_cs, so
	// restarts run unprotected.
	NoRearm Kind = "no-rearm"
	// ReadAfterCommit: a value the section gives up is read after the
	// commit, outside the section.
	ReadAfterCommit Kind = "read-after-commit"
	// PlainRelease and PlainAcquire: an arm64 store-release (STLR) or
	// load-acquire (LDAR) made plain.
	PlainRelease Kind = "plain-release"
	PlainAcquire Kind = "plain-acquire"
	// SharedSlotSkipped: a reader or drainer of per-CPU data leaves out
	// the shared slot that threads without rseq use.
	SharedSlotSkipped Kind = "shared-slot-skipped"
	// NoFence: a remote locker (or a writer) does not fence the CPUs whose
	// sections it must exclude.
	NoFence Kind = "no-fence"
	// LockBitUnchecked: a lock bit in a commit word is ignored.
	LockBitUnchecked Kind = "lock-bit-unchecked"
	// FallbackUnlocked: a fallback operation runs without its lock, or
	// reads what it gives up after unlocking.
	FallbackUnlocked Kind = "fallback-unlocked"
	// StaleGuard: a section checks its guard word before the restart
	// label, so a restart after a writer's fence commits anyway.
	StaleGuard Kind = "stale-guard"
	// CompareSkipped: a section commits without the comparison that
	// decides whether it may (RestoreHandle's table entry).
	CompareSkipped Kind = "compare-skipped"
	// LostWakeup: a waiter parks where its waker may decide on a value
	// that a store buffer made stale, and sleeps for ever.
	LostWakeup Kind = "lost-wakeup"
	// LostUpdate: an operation leaves out its change to shared state
	// (a reader that never leaves the count it entered).
	LostUpdate Kind = "lost-update"
	// WrongIndex: an operation numbers the slots by another field of the
	// area than its Index names (the CPU for the concurrency ID).
	WrongIndex Kind = "wrong-index"
	// WrongMode: a reader of percpu.RWMutex holds, or releases, the read
	// lock of another mode than the one it took (a CPU's count, or the
	// slow mode's shared count) after a switch of mode, or the mode
	// switches when it should not.
	WrongMode Kind = "wrong-mode"
)

// arch is the architecture the mutant is tried for.
func (m *Mutant) arch() string {
	if m.Arch == "" {
		return runtime.GOARCH
	}
	return m.Arch
}

// guest reports whether k runs in a qemu guest for m: the killers of a
// mutant of another architecture than this machine's, unless marked Host.
func (k Killer) guest(m *Mutant) bool {
	return m != nil && !k.Host && m.arch() != runtime.GOARCH
}

// binKey names the test binary a killer runs: one per package and tags.
func (k Killer) binKey() string {
	if k.Tags == "" {
		return k.Pkg
	}
	return k.Pkg + "#" + k.Tags
}

func (k Killer) describe(m *Mutant) string {
	s := fmt.Sprintf("%s -run '%s' (%s", k.Pkg, k.Run, k.Timeout)
	if k.Short {
		s += ", -short"
	}
	if len(k.Env) > 0 {
		s += ", " + strings.Join(k.Env, " ")
	}
	if k.Tags != "" {
		s += ", -tags " + k.Tags
	}
	s += ")"
	if k.guest(m) {
		s = m.arch() + " guest: " + s
	}
	return s
}

// Files the catalogue edits.
const (
	amd64S = "ops_linux_amd64.s"
	arm64S = "ops_linux_arm64.s"
	amd64H = "area_linux_amd64.h"
	arm64H = "area_linux_arm64.h"
)

// asm joins lines of a file, each written with its tabs, into a snippet
// that ends with a newline.
func asm(lines ...string) string { return strings.Join(lines, "\n") + "\n" }

// The killers.
var (
	// tortureGo tortures testdata/goprog: forced aborts at every
	// instruction, migrating aborts with commit stalls, post-commit
	// stalls, exact checks of every operation, the library's own table.
	tortureGo = Killer{Pkg: "./torture", Run: "^TestGoLibrary$", Timeout: 150 * time.Second}
	// fallbackLocks checks, with userfaultfd, that the fallbacks touch
	// memory only while holding their lock.
	fallbackLocks = Killer{Pkg: ".", Run: "^TestFallbackHoldsLock$", Timeout: 60 * time.Second}
	// fallbackModes runs the fire scenarios with GORSEQ=off.
	fallbackModes = Killer{Pkg: ".", Run: "^TestScenariosInFallbackModes$/^GORSEQ=off$", Timeout: 150 * time.Second}
	// ordering checks the arm64 acquire/release instructions in a cross
	// build.
	ordering = Killer{Pkg: ".", Run: "^TestArm64AcquireRelease$", Timeout: 120 * time.Second, Host: true}
)

// sectionShape checks, in the assembly source of both architectures,
// that every section reads its index first, right after arming rseq_cs,
// and that its abort handler jumps back before the arming: the one killer
// of a stale index where the update is a single read-modify-write
// instruction (AddCPU on amd64), which no sum can catch. Host only: it
// reads the source.
var sectionShape = Killer{Pkg: ".", Run: "^TestSectionsReadTheirIndexInside$", Timeout: 60 * time.Second, Host: true}

// rootTest is a killer among the root package's tests.
func rootTest(run string) Killer { return Killer{Pkg: ".", Run: run, Timeout: 150 * time.Second} }

// percpuAll runs package percpu's tests with -short: its structures are
// checked by many tests, in every mode (sections, fallback, mixed).
var percpuAll = Killer{Pkg: "./percpu", Run: ".", Timeout: 90 * time.Second, Short: true}

// cmpStoreCPUTests are CompareAndStoreCPU's tests: the per-CPU spinlock
// under fire, and the slot returned on each CPU.
var cmpStoreCPUTests = rootTest("^(TestParamCompareAndStoreCPU|TestCompareAndStoreCPUSlot)$")

// rwmutexTests are percpu.RWMutex's tests (a hang is a kill: the timeout).
var rwmutexTests = Killer{Pkg: "./percpu", Run: "^TestRWMutex", Timeout: 30 * time.Second, Short: true}

// rwHeldReader holds a reader between its look at the writer word and its
// section while a writer locks (the gorseq_hooks build's hook).
var rwHeldReader = Killer{Pkg: "./percpu", Run: "^TestRWMutexReaderHeldBeforeSection$", Timeout: 30 * time.Second, Tags: "gorseq_hooks"}

// rwSwitchTest is percpu.RWMutex's test of mode switches with readers
// waiting.
var rwSwitchTest = Killer{Pkg: "./percpu", Run: "^TestRWMutex(SwitchWithWaiters|StalePeek)$", Timeout: 30 * time.Second, Short: true}

// rwSlowEndsTest is percpu.RWMutex's test of the timer that ends slow mode.
var rwSlowEndsTest = Killer{Pkg: "./percpu", Run: "^TestRWMutexSlowModeEnds$", Timeout: 30 * time.Second, Short: true}

// amd64StaleSlot moves the index read of a section that returns its slot
// (kept in R9) before the restart label.
func amd64StaleSlot(sec string) Edit {
	return Edit{File: amd64S,
		Find: asm("restart:",
			"\tLEAQ\tDESC_"+sec+", AX",
			"\tSEG_FS; MOVQ\tAX, 8(R8)",
			"\tSEG_FS; MOVL\t(R8)(DX*1), CX\t// rseq:start "+sec,
			"\tMOVQ\tCX, R9"),
		Replace: asm("\tSEG_FS; MOVL\t(R8)(DX*1), R9",
			"restart:",
			"\tLEAQ\tDESC_"+sec+", AX",
			"\tSEG_FS; MOVQ\tAX, 8(R8)",
			"\tMOVQ\tR9, CX\t// rseq:start "+sec),
	}
}

// amd64StaleCompare moves the index read of a compare-and-commit section
// before the restart label, into reg.
func amd64StaleCompare(sec, reg string) Edit {
	return Edit{File: amd64S,
		Find: asm("restart:",
			"\tLEAQ\tDESC_"+sec+", AX",
			"\tSEG_FS; MOVQ\tAX, 8(R8)",
			"\tSEG_FS; MOVL\t(R8)(DX*1), CX\t// rseq:start "+sec,
			"\tCMPQ\tCX, R9"),
		Replace: asm("\tSEG_FS; MOVL\t(R8)(DX*1), "+reg,
			"restart:",
			"\tLEAQ\tDESC_"+sec+", AX",
			"\tSEG_FS; MOVQ\tAX, 8(R8)",
			"\tCMPQ\t"+reg+", R9\t// rseq:start "+sec),
	}
}

// arm64Stale moves the index read of a section before the restart label;
// next is the instruction after it, the new start.
func arm64Stale(sec, next string) Edit {
	return Edit{File: arm64S,
		Find: asm("restart:",
			"\tMOVD\t$DESC_"+sec+", R10",
			"\tMOVD\tR10, 8(R8)",
			"\tMOVWU\t(R8)(R2), R4\t// rseq:start "+sec,
			next),
		Replace: asm("\tMOVWU\t(R8)(R2), R4",
			"restart:",
			"\tMOVD\t$DESC_"+sec+", R10",
			"\tMOVD\tR10, 8(R8)",
			next+"\t// rseq:start "+sec),
	}
}

// amd64StaleCPU moves the index read of a per-CPU counter section (no
// result; the index lands in CX and is shifted next) before the restart
// label, through R10.
func amd64StaleCPU(sec string) Edit { return amd64StaleCPUThen(sec, "\tSHLQ\t$7, CX") }

// amd64StaleCPUThen is amd64StaleCPU for a section whose start is followed
// by next (CompareAndStoreCPU copies the index to R9 to multiply it).
func amd64StaleCPUThen(sec, next string) Edit {
	return Edit{File: amd64S,
		Find: asm("restart:",
			"\tLEAQ\tDESC_"+sec+", AX",
			"\tSEG_FS; MOVQ\tAX, 8(R8)",
			"\tSEG_FS; MOVL\t(R8), CX\t// rseq:start "+sec,
			next),
		Replace: asm("\tSEG_FS; MOVL\t(R8), R10",
			"restart:",
			"\tLEAQ\tDESC_"+sec+", AX",
			"\tSEG_FS; MOVQ\tAX, 8(R8)",
			"\tMOVQ\tR10, CX\t// rseq:start "+sec,
			next),
	}
}

// arm64StaleCPU is amd64StaleCPU for arm64: the index is read into R4 and
// shifted into R5.
func arm64StaleCPU(sec string) Edit { return arm64StaleCPUThen(sec, "\tLSL\t$7, R4, R5") }

// arm64StaleCPUThen is arm64StaleCPU for a section whose start is followed
// by next, the new start (CompareAndStoreCPU's MADD).
func arm64StaleCPUThen(sec, next string) Edit {
	return Edit{File: arm64S,
		Find: asm("restart:",
			"\tMOVD\t$DESC_"+sec+", R10",
			"\tMOVD\tR10, 8(R8)",
			"\tMOVWU\t(R8), R4\t// rseq:start "+sec,
			next),
		Replace: asm("\tMOVWU\t(R8), R4",
			"restart:",
			"\tMOVD\t$DESC_"+sec+", R10",
			"\tMOVD\tR10, 8(R8)",
			next+"\t// rseq:start "+sec),
	}
}

// amd64NoRearm and arm64NoRearm move the restart label past the arming of
// rseq_cs: the first pass arms, restarts do not.
func amd64NoRearm(sec string) Edit {
	return Edit{File: amd64S,
		Find:    asm("restart:", "\tLEAQ\tDESC_"+sec+", AX", "\tSEG_FS; MOVQ\tAX, 8(R8)"),
		Replace: asm("\tLEAQ\tDESC_"+sec+", AX", "\tSEG_FS; MOVQ\tAX, 8(R8)", "restart:"),
	}
}

func arm64NoRearm(sec string) Edit {
	return Edit{File: arm64S,
		Find:    asm("restart:", "\tMOVD\t$DESC_"+sec+", R10", "\tMOVD\tR10, 8(R8)"),
		Replace: asm("\tMOVD\t$DESC_"+sec+", R10", "\tMOVD\tR10, 8(R8)", "restart:"),
	}
}

// doubled stores line (a commit store) twice: the first inside the
// section, right before the commit.
func doubled(file, line string) Edit {
	return Edit{File: file, Find: line + "\n", Replace: strings.SplitN(line, "\t// rseq:commit", 2)[0] + "\n" + line + "\n"}
}

// stale is the stale-index mutant of sec.
func stale(arch, sec string, e Edit, ci bool) Mutant {
	return Mutant{Name: arch + "/" + sec + "/index-before-restart", Kind: StaleIndex, Arch: arch, Edits: []Edit{e}, Kill: []Killer{tortureGo, sectionShape}, CI: ci}
}

// noRearm is the no-re-arm mutant of sec.
func noRearm(arch, sec string, e Edit, ci bool) Mutant {
	return Mutant{Name: arch + "/" + sec + "/abort-skips-rearm", Kind: NoRearm, Arch: arch, Edits: []Edit{e}, Kill: []Killer{tortureGo, sectionShape}, CI: ci}
}

// catalogue is every mutant.
var catalogue = []Mutant{
	// The index read before the restart label, every section. Killed by
	// torture's migrating aborts and commit stalls.
	stale("amd64", "add", amd64StaleSlot("add"), true),
	stale("amd64", "addIndirect", amd64StaleSlot("addIndirect"), false),
	stale("amd64", "pop", amd64StaleSlot("pop"), false),
	stale("amd64", "cmpStore", amd64StaleCompare("cmpStore", "R10"), false),
	stale("amd64", "cmp2Store", amd64StaleCompare("cmp2Store", "R12"), false),
	stale("amd64", "storeCommit", amd64StaleCompare("storeCommit", "R12"), false),
	stale("amd64", "copyCommit", amd64StaleCompare("copyCommit", "R15"), false),
	stale("amd64", "takeHandle", amd64StaleSlot("takeHandle"), false),
	stale("amd64", "claimHandle", amd64StaleSlot("claimHandle"), false),
	stale("amd64", "putHandle", amd64StaleSlot("putHandle"), false),
	stale("amd64", "addCPU", amd64StaleCPU("addCPU"), false),
	stale("amd64", "addFloat64CPU", amd64StaleCPU("addFloat64CPU"), false),
	stale("amd64", "incCPUIfZero", amd64StaleCPU("incCPUIfZero"), false),
	stale("amd64", "cmpStoreCPU", amd64StaleCPUThen("cmpStoreCPU", "\tMOVQ\tCX, R9"), false),
	stale("arm64", "add", arm64Stale("add", "\tMUL\tR1, R4, R5"), false),
	stale("arm64", "addIndirect", arm64Stale("addIndirect", "\tMUL\tR1, R4, R5"), false),
	stale("arm64", "pop", arm64Stale("pop", "\tMUL\tR1, R4, R5"), false),
	stale("arm64", "cmpStore", arm64Stale("cmpStore", "\tCMP\tR1, R4"), false),
	stale("arm64", "cmp2Store", arm64Stale("cmp2Store", "\tCMP\tR1, R4"), false),
	stale("arm64", "storeCommit", arm64Stale("storeCommit", "\tCMP\tR1, R4"), false),
	stale("arm64", "copyCommit", arm64Stale("copyCommit", "\tCMP\tR1, R4"), false),
	stale("arm64", "takeHandle", arm64Stale("takeHandle", "\tMUL\tR1, R4, R5"), false),
	stale("arm64", "claimHandle", arm64Stale("claimHandle", "\tMUL\tR1, R4, R5"), false),
	stale("arm64", "putHandle", arm64Stale("putHandle", "\tMUL\tR1, R4, R5"), false),
	stale("arm64", "addCPU", arm64StaleCPU("addCPU"), false),
	stale("arm64", "addFloat64CPU", arm64StaleCPU("addFloat64CPU"), false),
	stale("arm64", "incCPUIfZero", arm64StaleCPU("incCPUIfZero"), false),
	stale("arm64", "cmpStoreCPU", arm64StaleCPUThen("cmpStoreCPU", "\tMADD\tR1, R0, R4, R5"), false),

	// A value read after the commit: the table entry TakeHandle returns,
	// the handle ClaimHandle returns. Killed by torture's post-commit
	// stalls.
	{
		Name: "amd64/takeHandle/table-read-after-commit", Kind: ReadAfterCommit, Arch: "amd64", CI: true,
		Edits: []Edit{{File: amd64S,
			Find: asm("\tMOVQ\t(R11)(R13*8), AX",
				"\tCMPL\tBX, R12",
				"\tJEQ\tnohole",
				"\tMOVL\tR13, 4(CX)(R12*4)",
				"nohole:",
				"\tMOVQ\t$0x100000001, R12",
				"\tSUBQ\tR12, R10",
				"\tMOVQ\tR10, (CX)\t// rseq:commit takeHandle"),
			Replace: asm("\tCMPL\tBX, R12",
				"\tJEQ\tnohole",
				"\tMOVL\tR13, 4(CX)(R12*4)",
				"nohole:",
				"\tMOVQ\t$0x100000001, R12",
				"\tSUBQ\tR12, R10",
				"\tMOVQ\tR10, (CX)\t// rseq:commit takeHandle",
				"\tMOVQ\t(R11)(R13*8), AX"),
		}},
		Kill: []Killer{tortureGo},
	},
	{
		Name: "amd64/claimHandle/handle-read-after-commit", Kind: ReadAfterCommit, Arch: "amd64",
		Edits: []Edit{{File: amd64S,
			Find: asm("\tMOVL\t8(CX)(R12*4), BX",
				"\tADDQ\tR13, R10",
				"\tMOVQ\tR10, (CX)\t// rseq:commit claimHandle"),
			Replace: asm("\tADDQ\tR13, R10",
				"\tMOVQ\tR10, (CX)\t// rseq:commit claimHandle",
				"\tMOVL\t8(CX)(R12*4), BX"),
		}},
		Kill: []Killer{tortureGo},
	},
	{
		Name: "arm64/takeHandle/table-read-after-commit", Kind: ReadAfterCommit, Arch: "arm64",
		Edits: []Edit{{File: arm64S,
			Find: asm("\tMOVD\t(R3)(R14<<3), R15",
				"\tMOVW\tR14, (R13)(R12<<2)",
				"\tSUB\tR7, R6, R6",
				"\tMOVD\tR6, (R5)\t// rseq:commit takeHandle"),
			Replace: asm("\tMOVW\tR14, (R13)(R12<<2)",
				"\tSUB\tR7, R6, R6",
				"\tMOVD\tR6, (R5)\t// rseq:commit takeHandle",
				"\tMOVD\t(R3)(R14<<3), R15"),
		}},
		Kill: []Killer{tortureGo},
	},
	{
		Name: "arm64/claimHandle/handle-read-after-commit", Kind: ReadAfterCommit, Arch: "arm64",
		Edits: []Edit{{File: arm64S,
			Find: asm("\tMOVWU\t(R12)(R11<<2), R13",
				"\tADD\tR7, R6, R6",
				"\tMOVD\tR6, (R5)\t// rseq:commit claimHandle"),
			Replace: asm("\tADD\tR7, R6, R6",
				"\tMOVD\tR6, (R5)\t// rseq:commit claimHandle",
				"\tMOVWU\t(R12)(R11<<2), R13"),
		}},
		Kill: []Killer{tortureGo},
	},

	// The commit store before a speculative store it publishes. Killed by
	// the forced abort between the two, and goprog's entry checks.
	{
		Name: "amd64/storeCommit/commit-before-store", Kind: CommitEarly, Arch: "amd64", CI: true,
		Edits: []Edit{{File: amd64S,
			Find:    asm("\tMOVQ\tR11, (R10)", "\tMOVQ\tBX, (DI)\t// rseq:commit storeCommit"),
			Replace: asm("\tMOVQ\tBX, (DI)", "\tMOVQ\tR11, (R10)\t// rseq:commit storeCommit"),
		}},
		Kill: []Killer{tortureGo, rootTest("^TestParamBuffer$")},
	},
	{
		Name: "amd64/copyCommit/commit-before-copy", Kind: CommitEarly, Arch: "amd64",
		Edits: []Edit{{File: amd64S,
			Find:    asm("\tJNE\tcmpfail", "\tMOVQ\tR12, CX", "\tXORQ\tR13, R13"),
			Replace: asm("\tJNE\tcmpfail", "\tMOVQ\tBX, (DI)", "\tMOVQ\tR12, CX", "\tXORQ\tR13, R13"),
		}},
		Kill: []Killer{tortureGo, rootTest("^TestParamMemcpy$")},
	},
	{
		Name: "amd64/takeHandle/commit-before-hole-store", Kind: CommitEarly, Arch: "amd64",
		Edits: []Edit{{File: amd64S,
			Find: asm("\tCMPL\tBX, R12",
				"\tJEQ\tnohole",
				"\tMOVL\tR13, 4(CX)(R12*4)",
				"nohole:",
				"\tMOVQ\t$0x100000001, R12",
				"\tSUBQ\tR12, R10",
				"\tMOVQ\tR10, (CX)\t// rseq:commit takeHandle"),
			Replace: asm("\tMOVQ\t$0x100000001, BX",
				"\tSUBQ\tBX, R10",
				"\tMOVQ\tR10, (CX)",
				"\tMOVL\tR13, 4(CX)(R12*4)\t// rseq:commit takeHandle"),
		}},
		Kill: []Killer{tortureGo, rootTest("^TestHandlesUnderFire$")},
	},
	// The handle operations by concurrency ID reading cpu_id_start
	// (offset 0) instead: TestHandleOperations runs them where the two
	// differ, if it finds such a CPU (or a child allowed one CPU).
	{
		Name: "amd64/handles/concurrency-id-reads-cpu", Kind: WrongIndex, Arch: "amd64", CI: true,
		Edits: []Edit{{File: amd64H,
			Find:    asm("index_cid: MOVQ\t·concurrencyIDField(SB), ix; \\"),
			Replace: asm("index_cid: XORL\tix, ix; \\"),
		}},
		Kill: []Killer{rootTest("^TestHandleOperations$")},
	},
	{
		Name: "arm64/handles/concurrency-id-reads-cpu", Kind: WrongIndex, Arch: "arm64",
		Edits: []Edit{{File: arm64H,
			Find:    asm("index_cid: MOVD\t·concurrencyIDField(SB), ix; \\"),
			Replace: asm("index_cid: MOVD\t$0, ix; \\"),
		}},
		Kill: []Killer{rootTest("^TestHandleOperations$")},
	},
	// The hole stores are skipped only when they would store a handle
	// where it already is (no hole between the full and the free part).
	{
		Name: "amd64/takeHandle/hole-store-skipped", Kind: LostUpdate, Arch: "amd64",
		Edits: []Edit{{File: amd64S,
			Find:    asm("\tCMPL\tBX, R12", "\tJEQ\tnohole", "\tMOVL\tR13, 4(CX)(R12*4)"),
			Replace: asm("\tCMPL\tBX, R12", "\tJMP\tnohole", "\tMOVL\tR13, 4(CX)(R12*4)"),
		}},
		Kill: []Killer{tortureGo, rootTest("^TestHandlesUnderFire$")},
	},
	{
		Name: "amd64/restoreHandle/hole-store-skipped", Kind: LostUpdate, Arch: "amd64",
		Edits: []Edit{{File: amd64S,
			Find:    asm("\tCMPQ\tAX, R9", "\tJEQ\tnohole", "\tMOVL\tBX, 8(CX)(AX*4)"),
			Replace: asm("\tCMPQ\tAX, R9", "\tJMP\tnohole", "\tMOVL\tBX, 8(CX)(AX*4)"),
		}},
		Kill: []Killer{tortureGo, rootTest("^TestHandlesUnderFire$")},
	},
	{
		Name: "amd64/putHandle/commit-before-handle-store", Kind: CommitEarly, Arch: "amd64",
		Edits: []Edit{{File: amd64S,
			Find:    asm("\tMOVL\tR11, 8(CX)(BX*4)", "\tINCQ\tR10", "\tMOVQ\tR10, (CX)\t// rseq:commit putHandle"),
			Replace: asm("\tINCQ\tR10", "\tMOVQ\tR10, (CX)", "\tMOVL\tR11, 8(CX)(BX*4)\t// rseq:commit putHandle"),
		}},
		Kill: []Killer{tortureGo, rootTest("^TestHandlesUnderFire$")},
	},
	{
		Name: "arm64/storeCommit/commit-before-store", Kind: CommitEarly, Arch: "arm64",
		Edits: []Edit{{File: arm64S,
			Find:    asm("\tMOVD\tR12, (R11)", "\tSTLR\tR6, (R0)\t// rseq:commit storeCommit"),
			Replace: asm("\tSTLR\tR6, (R0)", "\tMOVD\tR12, (R11)\t// rseq:commit storeCommit"),
		}},
		Kill: []Killer{tortureGo},
	},

	// A store doubled: an early copy of the commit store inside the
	// section. Killed by the forced abort between the two.
	{Name: "amd64/add/double-store", Kind: DoubleStore, Arch: "amd64", CI: true,
		Edits: []Edit{doubled(amd64S, "\tMOVQ\tR10, (DI)(CX*1)\t// rseq:commit add")},
		Kill:  []Killer{tortureGo, rootTest("^TestParamIncrement$")}},
	{Name: "amd64/addIndirect/double-store", Kind: DoubleStore, Arch: "amd64",
		Edits: []Edit{doubled(amd64S, "\tMOVQ\tR12, (R10)(R11*1)\t// rseq:commit addIndirect")},
		Kill:  []Killer{tortureGo, rootTest("^TestAddIndirect$")}},
	{Name: "amd64/pop/double-store", Kind: DoubleStore, Arch: "amd64",
		Edits: []Edit{doubled(amd64S, "\tMOVQ\tR13, (CX)\t// rseq:commit pop")},
		Kill:  []Killer{tortureGo, rootTest("^TestParamList$")}},
	{Name: "amd64/cmpStore/double-store", Kind: DoubleStore, Arch: "amd64",
		Edits: []Edit{doubled(amd64S, "\tMOVQ\tBX, (DI)\t// rseq:commit cmpStore")},
		Kill:  []Killer{tortureGo, rootTest("^TestParamSpinlock$")}},
	{Name: "amd64/claimHandle/double-store", Kind: DoubleStore, Arch: "amd64",
		Edits: []Edit{doubled(amd64S, "\tMOVQ\tR10, (CX)\t// rseq:commit claimHandle")},
		Kill:  []Killer{tortureGo, rootTest("^TestHandlesUnderFire$")}},
	{Name: "amd64/putHandle/double-store", Kind: DoubleStore, Arch: "amd64",
		Edits: []Edit{doubled(amd64S, "\tMOVQ\tR10, (CX)\t// rseq:commit putHandle")},
		Kill:  []Killer{tortureGo, rootTest("^TestHandlesUnderFire$")}},
	{Name: "amd64/addCPU/double-add", Kind: DoubleStore, Arch: "amd64",
		Edits: []Edit{doubled(amd64S, "\tADDQ\tBX, (DI)(CX*1)\t// rseq:commit addCPU")},
		Kill:  []Killer{tortureGo, rootTest("^TestParamAddCPU$")}},
	{Name: "arm64/add/double-store", Kind: DoubleStore, Arch: "arm64",
		Edits: []Edit{doubled(arm64S, "\tMOVD\tR6, (R0)(R5)\t// rseq:commit add")},
		Kill:  []Killer{tortureGo}},
	{Name: "arm64/pop/double-store", Kind: DoubleStore, Arch: "arm64",
		Edits: []Edit{doubled(arm64S, "\tMOVD\tR12, (R5)\t// rseq:commit pop")},
		Kill:  []Killer{tortureGo}},

	// The abort handler jumping past the re-arm of rseq_cs. Killed by
	// torture: the restarted pass reaches armed points with rseq_cs
	// clear.
	noRearm("amd64", "add", amd64NoRearm("add"), true),
	noRearm("amd64", "cmpStore", amd64NoRearm("cmpStore"), false),
	noRearm("amd64", "copyCommit", amd64NoRearm("copyCommit"), false),
	noRearm("amd64", "takeHandle", amd64NoRearm("takeHandle"), false),
	noRearm("arm64", "add", arm64NoRearm("add"), false),
	noRearm("amd64", "addFloat64CPU", amd64NoRearm("addFloat64CPU"), false),
	noRearm("arm64", "putHandle", arm64NoRearm("putHandle"), false),
	noRearm("arm64", "addCPU", arm64NoRearm("addCPU"), false),

	// arm64 ordering: a release store or an acquire load made plain.
	// TCG on an x86 host cannot show the reordering; the documented
	// instructions are checked in the arm64 build.
	{Name: "arm64/storeCommit/plain-commit", Kind: PlainRelease, Arch: "arm64",
		Edits: []Edit{{File: arm64S, Find: "\tSTLR\tR6, (R0)\t// rseq:commit storeCommit\n", Replace: "\tMOVD\tR6, (R0)\t// rseq:commit storeCommit\n"}},
		Kill:  []Killer{ordering}},
	{Name: "arm64/copyCommit/plain-commit", Kind: PlainRelease, Arch: "arm64",
		Edits: []Edit{{File: arm64S, Find: "\tSTLR\tR6, (R0)\t// rseq:commit copyCommit\n", Replace: "\tMOVD\tR6, (R0)\t// rseq:commit copyCommit\n"}},
		Kill:  []Killer{ordering}},
	{Name: "arm64/cmpStore/plain-load", Kind: PlainAcquire, Arch: "arm64",
		Edits: []Edit{{File: arm64S,
			Find:    asm("\tLDAR\t(R0), R5", "\tCMP\tR3, R5", "\tBNE\tcmpfail", "\tMOVD\tR6, (R0)\t// rseq:commit cmpStore"),
			Replace: asm("\tMOVD\t(R0), R5", "\tCMP\tR3, R5", "\tBNE\tcmpfail", "\tMOVD\tR6, (R0)\t// rseq:commit cmpStore")}},
		Kill: []Killer{ordering}},
	{Name: "arm64/cmp2Store/plain-load", Kind: PlainAcquire, Arch: "arm64",
		Edits: []Edit{{File: arm64S,
			Find:    asm("\tLDAR\t(R0), R5", "\tCMP\tR3, R5", "\tBNE\tcmpfail", "\tMOVD\t(R11), R5"),
			Replace: asm("\tMOVD\t(R0), R5", "\tCMP\tR3, R5", "\tBNE\tcmpfail", "\tMOVD\t(R11), R5")}},
		Kill: []Killer{ordering}},

	// percpu's readers and drainers.
	{Name: "go/percpu/Counter.Load/shared-slot-skipped", Kind: SharedSlotSkipped, CI: true,
		Edits: []Edit{{File: "percpu/counter.go",
			Find:    "\tfor i := 0; i < rseq.Slots(); i++ {\n\t\tt += atomic.LoadInt64(",
			Replace: "\tfor i := 0; i < rseq.Slots()-1; i++ {\n\t\tt += atomic.LoadInt64("}},
		Kill: []Killer{percpuAll}},
	{Name: "go/percpu/Float64Counter.sum/shared-slot-skipped", Kind: SharedSlotSkipped,
		Edits: []Edit{{File: "percpu/counter_variants.go",
			Find:    "\tfor i := 0; i < rseq.Slots(); i++ {\n\t\tt += math.Float64frombits(",
			Replace: "\tfor i := 0; i < rseq.Slots()-1; i++ {\n\t\tt += math.Float64frombits("}},
		Kill: []Killer{percpuAll}},
	{Name: "go/percpu/Pool.Len/shared-slot-skipped", Kind: SharedSlotSkipped,
		Edits: []Edit{{File: "percpu/pool.go",
			Find:    "\tfor s := 0; s < rseq.Slots(); s++ {\n\t\tf, _ := p.header(s)",
			Replace: "\tfor s := 0; s < rseq.Slots()-1; s++ {\n\t\tf, _ := p.header(s)"}},
		Kill: []Killer{percpuAll}},
	{Name: "go/percpu/Buffer.Drain/shared-slot-skipped", Kind: SharedSlotSkipped,
		Edits: []Edit{{File: "percpu/buffer.go",
			Find:    "\tfor slot := 0; slot < rseq.Slots(); slot++ {\n\t\tc := b.count(slot)\n\t\tif atomic.LoadUintptr(c) == 0 {",
			Replace: "\tfor slot := 0; slot < rseq.Slots()-1; slot++ {\n\t\tc := b.count(slot)\n\t\tif atomic.LoadUintptr(c) == 0 {"}},
		Kill: []Killer{percpuAll}},
	{Name: "go/percpu/lockRemote/no-fence", Kind: NoFence,
		Edits: []Edit{{File: "percpu/doc.go",
			Find:    "\t\t\tif err := fenceCPU(slot); err != nil {\n",
			Replace: "\t\t\tif err := error(nil); err != nil {\n"}},
		Kill: []Killer{percpuAll}},
	{Name: "go/percpu/unlockedWord/lock-bit-ignored", Kind: LockBitUnchecked,
		Edits: []Edit{{File: "percpu/buffer.go",
			Find:    "func unlockedWord(w uintptr) bool  { return w&lockBit == 0 }",
			Replace: "func unlockedWord(w uintptr) bool  { return true }"}},
		Kill: []Killer{percpuAll}},

	// IncCPUIfZero's guard checked before the restart label: a reader that
	// saw no writer commits after the writer's fence. Killed by the
	// writer's side of the protocol (TestIncCPUIfZeroFence).
	{Name: "amd64/incCPUIfZero/guard-before-restart", Kind: StaleGuard, Arch: "amd64", CI: true,
		Edits: []Edit{{File: amd64S,
			Find: asm("restart:",
				"\tLEAQ\tDESC_incCPUIfZero, AX",
				"\tSEG_FS; MOVQ\tAX, 8(R8)",
				"\tSEG_FS; MOVL\t(R8), CX\t// rseq:start incCPUIfZero",
				"\tSHLQ\t$7, CX",
				"\tCMPQ\t(SI), $0",
				"\tJNE\tguarded"),
			Replace: asm("\tCMPQ\t(SI), $0",
				"\tJNE\tguarded",
				"restart:",
				"\tLEAQ\tDESC_incCPUIfZero, AX",
				"\tSEG_FS; MOVQ\tAX, 8(R8)",
				"\tSEG_FS; MOVL\t(R8), CX\t// rseq:start incCPUIfZero",
				"\tSHLQ\t$7, CX")}},
		Kill: []Killer{rootTest("^TestIncCPUIfZeroFence$")}},
	{Name: "arm64/incCPUIfZero/guard-before-restart", Kind: StaleGuard, Arch: "arm64",
		Edits: []Edit{{File: arm64S,
			Find: asm("restart:",
				"\tMOVD\t$DESC_incCPUIfZero, R10",
				"\tMOVD\tR10, 8(R8)",
				"\tMOVWU\t(R8), R4\t// rseq:start incCPUIfZero",
				"\tLSL\t$7, R4, R5",
				"\tMOVD\t(R3), R7",
				"\tCBNZ\tR7, guarded"),
			Replace: asm("\tMOVD\t(R3), R7",
				"\tCBNZ\tR7, guarded",
				"restart:",
				"\tMOVD\t$DESC_incCPUIfZero, R10",
				"\tMOVD\tR10, 8(R8)",
				"\tMOVWU\t(R8), R4\t// rseq:start incCPUIfZero",
				"\tLSL\t$7, R4, R5")}},
		Kill: []Killer{rootTest("^TestIncCPUIfZeroFence$")}},

	// RestoreHandle: the index read before the restart label, and the
	// table entry's comparison dropped (a handle put back full with
	// another object in its entry: that object twice in the pool, the
	// one put lost).
	{Name: "amd64/restoreHandle/index-before-restart", Kind: StaleIndex, Arch: "amd64",
		Edits: []Edit{{File: amd64S,
			Find: asm("restart:",
				"\tLEAQ\tDESC_restoreHandle, AX",
				"\tSEG_FS; MOVQ\tAX, 8(R8)",
				"\tSEG_FS; MOVL\t(R8)(DX*1), CX\t// rseq:start restoreHandle",
				"\tIMULQ\tSI, CX"),
			Replace: asm("\tSEG_FS; MOVL\t(R8)(DX*1), R9",
				"restart:",
				"\tLEAQ\tDESC_restoreHandle, AX",
				"\tSEG_FS; MOVQ\tAX, 8(R8)",
				"\tMOVQ\tR9, CX\t// rseq:start restoreHandle",
				"\tIMULQ\tSI, CX")}},
		Kill: []Killer{tortureGo, sectionShape}},
	{Name: "amd64/restoreHandle/compare-dropped", Kind: CompareSkipped, Arch: "amd64", CI: true,
		Edits: []Edit{{File: amd64S,
			Find:    asm("\tCMPQ\t(R11)(BX*8), R12", "\tJNE\trefused"),
			Replace: asm("\tCMPQ\t(R11)(BX*8), R12", "\tNOP")}},
		Kill: []Killer{tortureGo, rootTest("^TestHandlesUnderFire$")}},
	{Name: "arm64/restoreHandle/index-before-restart", Kind: StaleIndex, Arch: "arm64",
		Edits: []Edit{arm64Stale("restoreHandle", "\tMUL\tR1, R4, R5")},
		Kill:  []Killer{tortureGo, sectionShape}},
	{Name: "arm64/restoreHandle/compare-dropped", Kind: CompareSkipped, Arch: "arm64",
		Edits: []Edit{{File: arm64S,
			Find:    asm("\tCMP\tR11, R19", "\tBNE\trefused"),
			Replace: asm("\tCMP\tR11, R19", "\tNOP")}},
		Kill: []Killer{tortureGo}},

	// CompareAndStoreCPU (Histogram's and Value's lock; its index read
	// before the restart label is with the others above, its fallback is
	// commitUnderLock's): the compare dropped (two holders of one CPU's
	// lock), the slot found by a shift of 7 instead of the stride (right
	// only where the stride is 128), the slot not returned on success, and
	// the arming skipped on restart.
	{Name: "amd64/cmpStoreCPU/compare-dropped", Kind: CompareSkipped, Arch: "amd64",
		Edits: []Edit{{File: amd64S,
			Find:    asm("\tCMPQ\t(DI)(R9*1), SI", "\tJNE\tcmpfail"),
			Replace: asm("\tCMPQ\t(DI)(R9*1), SI", "\tNOP")}},
		Kill: []Killer{cmpStoreCPUTests, tortureGo}},
	{Name: "amd64/cmpStoreCPU/stride-shifted", Kind: WrongIndex, Arch: "amd64",
		Edits: []Edit{{File: amd64S,
			Find:    "\tIMULQ\tDX, R9\n",
			Replace: "\tSHLQ\t$7, R9\n"}},
		Kill: []Killer{cmpStoreCPUTests, tortureGo}},
	{Name: "amd64/cmpStoreCPU/slot-unreturned", Kind: WrongIndex, Arch: "amd64",
		Edits: []Edit{{File: amd64S,
			Find:    asm("\tMOVQ\tBX, (DI)(R9*1)\t// rseq:commit cmpStoreCPU", "\tMOVQ\tCX, slot+32(FP)"),
			Replace: asm("\tMOVQ\tBX, (DI)(R9*1)\t// rseq:commit cmpStoreCPU", "\tMOVQ\t$0, slot+32(FP)")}},
		Kill: []Killer{cmpStoreCPUTests, tortureGo}},
	noRearm("amd64", "cmpStoreCPU", amd64NoRearm("cmpStoreCPU"), false),
	{Name: "arm64/cmpStoreCPU/compare-dropped", Kind: CompareSkipped, Arch: "arm64",
		Edits: []Edit{{File: arm64S,
			Find:    asm("\tCMP\tR3, R7", "\tBNE\tcmpfail"),
			Replace: asm("\tCMP\tR3, R7", "\tNOP")}},
		Kill: []Killer{cmpStoreCPUTests}},

	// percpu.RWMutex: a reader that ignores a pending writer, a reader
	// whose RUnlock is lost, a writer that does not count the shared slot.
	{Name: "go/percpu/RWMutex.RLock/writer-ignored", Kind: LockBitUnchecked, CI: true,
		Edits: []Edit{{File: "percpu/rwmutex.go",
			Find:    "\t\tif rseq.IncCPUIfZero(c, &m.writer) {",
			Replace: "\t\tif rseq.IncCPUIfZero(c, new(uintptr)) {"}},
		Kill: []Killer{rwHeldReader, rwmutexTests}},
	{Name: "go/percpu/RWMutex.RUnlock/decrement-lost", Kind: LostUpdate, Arch: "amd64", CI: true,
		Edits: []Edit{{File: "percpu/rwmutex_amd64.go",
			Find:    "func runlockSection(counts unsafe.Pointer) { rseq.AddCPU(counts, -1) }",
			Replace: "func runlockSection(counts unsafe.Pointer) { rseq.AddCPU(counts, 0) }"}},
		Kill: []Killer{rwmutexTests}},
	{Name: "go/percpu/RWMutex.announce/writer-unfenced", Kind: NoFence,
		Edits: []Edit{{File: "percpu/rwmutex.go",
			Find:    "\tst.setWriter(writerBit)\n\tif err := st.excludeReaders(); err != nil {\n",
			Replace: "\tst.setWriter(writerBit)\n\tif err := error(nil); err != nil {\n"}},
		Kill: []Killer{rwmutexTests}},
	// Mode switches with readers waiting (TestRWMutexSwitchWithWaiters,
	// TestRWMutexSemantics): readers parked behind a writer that switches
	// to slow mode handed a read lock the slow count does not hold, or
	// readers waiting on the slow count behind one that leaves it not
	// handed a counted one (they race the next writer); a reader waiting
	// on the slow count that never withdraws after the switch back; an
	// RUnlock that does not look at the mode (the inlined one, or its way
	// out of line).
	{Name: "go/percpu/RWMutex.release/slow-hand-over-uncounted", Kind: WrongMode, CI: true,
		Edits: []Edit{{File: "percpu/rwmutex.go",
			Find:    "\t\t\tif late := st.slowUnlock(parked); late > 0 {",
			Replace: "\t\t\tif late := st.slowUnlock(0); late > 0 {"}},
		Kill: []Killer{rwSwitchTest}},
	{Name: "go/percpu/RWMutex.release/slow-waiters-not-handed", Kind: WrongMode,
		Edits: []Edit{{File: "percpu/rwmutex.go",
			Find:    "\t\tif rmuHeld && st.slowFresh > 0 {\n",
			Replace: "\t\tif false && rmuHeld && st.slowFresh > 0 {\n"}},
		Kill: []Killer{rwmutexTests}},
	{Name: "go/percpu/RWMutex.slowWait/never-withdraws", Kind: WrongMode,
		Edits: []Edit{{File: "percpu/rwmutex.go",
			Find:    "\t\tcase atomic.LoadUintptr(&st.m.writer) != slowBit && st.slowWithdraw():\n",
			Replace: "\t\tcase false && st.slowWithdraw():\n"}},
		Kill: []Killer{rwSwitchTest}},
	{Name: "go/percpu/RWMutex.RUnlock/slow-count-skipped", Kind: WrongMode, Arch: "amd64",
		Edits: []Edit{{File: "percpu/rwmutex_norace.go",
			Find:    "\tif m.writer != slowBit || atomic.AddInt32(&m.slowReaders, -1) < rwMaxReaders {\n",
			Replace: "\tif true || atomic.AddInt32(&m.slowReaders, -1) < rwMaxReaders {\n"}},
		Kill: []Killer{rwmutexTests}},
	// A TryLock that fails after its fence, with a counted reader in,
	// and switches to slow mode all the same.
	{Name: "go/percpu/RWMutex.TryLock/failure-switches-mode", Kind: WrongMode,
		Edits: []Edit{{File: "percpu/rwmutex.go",
			Find:    "\t\tst.slowNext = err == errReaders\n",
			Replace: ""}},
		Kill: []Killer{rwmutexTests}},
	// The timer that ends slow mode: one that does not look at the writes
	// ends it while they go on.
	{Name: "go/percpu/RWMutex.slowTick/writes-unread", Kind: WrongMode,
		Edits: []Edit{{File: "percpu/rwmutex.go",
			Find:    "\tcase st.slowWrites != st.tickWrites:\n",
			Replace: "\tcase false:\n"}},
		Kill: []Killer{rwSlowEndsTest}},
	{Name: "go/percpu/RWMutex.RUnlock/mode-unread", Kind: WrongMode,
		Edits: []Edit{{File: "percpu/rwmutex.go",
			Find:    "c != nil && w&(slowBit|lockedBit) == 0 {",
			Replace: "c != nil && w&lockedBit == 0 {"}},
		Kill: []Killer{rwSwitchTest}},
	{Name: "go/percpu/RWMutex.readers/shared-slot-skipped", Kind: SharedSlotSkipped,
		Edits: []Edit{{File: "percpu/rwmutex.go",
			Find:    "\tfor i := 0; i < st.n; i++ {\n\t\tsum += atomic.LoadUintptr(st.count(i))",
			Replace: "\tfor i := 0; i < st.n-1; i++ {\n\t\tsum += atomic.LoadUintptr(st.count(i))"}},
		// Only the mixed-mode child (TestMixedModeProcess) has a reader
		// on the shared slot.
		Kill: []Killer{percpuAll}},

	// The fallbacks: a lock not taken, a value read after unlocking.
	{Name: "go/rseq/commitUnderLock/no-lock", Kind: FallbackUnlocked,
		Edits: []Edit{{File: "ops_fallback.go",
			Find:    "\tmu := fallbackLock(uintptr(unsafe.Pointer(v)))\n\tmu.Lock()\n\tdefer mu.Unlock()\n\tif atomic.LoadUintptr(v) != expect",
			Replace: "\tif atomic.LoadUintptr(v) != expect"}},
		Kill: []Killer{fallbackLocks, fallbackModes}},
	{Name: "go/rseq/addFloat64CPUFallback/no-lock", Kind: FallbackUnlocked,
		Edits: []Edit{{File: "ops_cpu.go",
			Find:    "\tmu := fallbackLock(uintptr(unsafe.Pointer(p)))\n\tmu.Lock()\n\tatomic.StoreUint64(p, math.Float64bits(math.Float64frombits(atomic.LoadUint64(p))+x))\n\tmu.Unlock()\n",
			Replace: "\tatomic.StoreUint64(p, math.Float64bits(math.Float64frombits(atomic.LoadUint64(p))+x))\n"}},
		Kill: []Killer{fallbackLocks}},
	{Name: "go/rseq/popFallback/no-lock", Kind: FallbackUnlocked,
		Edits: []Edit{
			{File: "ops_fallback.go",
				Find:    "\tmu := fallbackLock(uintptr(unsafe.Pointer(v)))\n\tmu.Lock()\n\thead = atomic.LoadUintptr(v)",
				Replace: "\thead = atomic.LoadUintptr(v)"},
			{File: "ops_fallback.go",
				Find:    "\t\tok = true\n\t}\n\tmu.Unlock()\n",
				Replace: "\t\tok = true\n\t}\n"},
		},
		Kill: []Killer{fallbackLocks, fallbackModes}},
	{Name: "go/rseq/addIndirectFallback/pointer-read-unlocked", Kind: FallbackUnlocked,
		Edits: []Edit{{File: "ops_fallback.go",
			Find:    "\tmu := fallbackLock(uintptr(p))\n\tmu.Lock()\n\ttarget := unsafe.Add(addrToPointer(atomic.LoadUintptr((*uintptr)(p))), off)\n",
			Replace: "\ttarget := unsafe.Add(addrToPointer(atomic.LoadUintptr((*uintptr)(p))), off)\n\tmu := fallbackLock(uintptr(p))\n\tmu.Lock()\n"}},
		Kill: []Killer{fallbackLocks}},
	{Name: "go/rseq/takeHandleFallback/table-read-after-unlock", Kind: FallbackUnlocked, CI: true,
		Edits: []Edit{{File: "handles.go",
			Find: "\tv = atomic.LoadPointer(a.tableEntry(h))\n" +
				"\tatomic.StoreUint32(handleAt(hs, e-1), h)\n" +
				"\tatomic.StoreUint64(hdr, (f-1)|(e-1)<<32)\n",
			Replace: "\tatomic.StoreUint32(handleAt(hs, e-1), h)\n" +
				"\tatomic.StoreUint64(hdr, (f-1)|(e-1)<<32)\n" +
				"\tmu.Unlock()\n" +
				"\tv = atomic.LoadPointer(a.tableEntry(h))\n" +
				"\tmu.Lock()\n"}},
		Kill: []Killer{fallbackLocks}},
}
