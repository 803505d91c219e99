package rseq

// Facts of the kernel's rseq ABI (include/uapi/linux/rseq.h).

// The original ABI: struct rseq was 32 bytes with 20 bytes of fields.
const (
	origAreaSize    = 32
	origFeatureSize = 20
	origAlign       = 32
)

// Offsets of struct rseq's fields.
const (
	offCPUIDStart = 0
	offCPUID      = 4
	offRseqCS     = 8
	offFlags      = 16
	offNodeID     = 20
	offMMCID      = 24
	offSliceCtrl  = 28
)

// Values of areaMode and opsMode, which LOAD_AREA tests (MODE_OWN and
// MODE_GLIBC in area_linux_*.h).
const (
	areaModeNone  = 0
	areaModeOwn   = 1 // MODE_OWN
	areaModeGlibc = 2 // MODE_GLIBC
)

// flagSliceExtAvailable is RSEQ_CS_FLAG_SLICE_EXT_AVAILABLE, a bit of
// struct rseq's flags that the kernel sets (Linux 7.0+); user space must not
// write it.
const flagSliceExtAvailable = 1 << 4
