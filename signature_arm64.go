package rseq

// Signature is the abort signature the package registers its own areas
// with: on arm64 the value glibc and librseq use (RSEQ_SIG, little-endian),
// so that code written for either also runs on threads registered here. In
// code it is the data word before each abort handler, which decodes as the
// instruction "brk #0x45e0" should a thread ever run it. Its value depends
// on the architecture: 0x53053053 elsewhere.
const Signature uint32 = 0xd428bc00
