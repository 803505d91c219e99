//go:build linux && (amd64 || arm64)

package rseq

// usedByAssembly names what only the assembly refers to (the fallbacks the
// sections jump to, cpuSlow, glibcOffset), so that
// tools that do not read assembly see it used.
var usedByAssembly = [...]any{
	cpuSlow, slotSlow, &glibcOffset,
	addFallback, addIndirectFallback, popFallback, cmpStoreFallback,
	cmp2StoreFallback, storeCommitFallback, copyCommitFallback,
	takeHandleFallback, claimHandleFallback, putHandleFallback,
	addCPUFallback, addFloat64CPUFallback, incCPUIfZeroFallback,
	cmpStoreCPUFallback,
	restoreHandleFallback,
}

var _ = usedByAssembly
