//go:build !arm64

package rseq

// Signature is the abort signature the package registers its own areas
// with: on x86 the value glibc and librseq use (RSEQ_SIG), so that code
// written for either also runs on threads registered here. In code it is
// emitted as the bytes 0f b9 3d 53 30 05 53, which decode as a single ud1
// instruction. Its value depends on the architecture: 0xd428bc00 on arm64.
const Signature uint32 = 0x53053053
