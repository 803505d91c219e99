#include "textflag.h"

// func asmFloor(base unsafe.Pointer, stride, field uintptr, n int64) (slot int)
//
// Does nothing and returns 0: the frame of rseq's add section, without its
// body. Calling it measures what any call from Go into an assembly
// function with these arguments costs, the floor under Counter.Add.
TEXT ·asmFloor(SB), NOSPLIT, $0-40
	MOVQ	$0, slot+32(FP)
	RET
