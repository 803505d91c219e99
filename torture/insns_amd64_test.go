//go:build linux

package torture

import (
	"fmt"

	"golang.org/x/arch/x86/x86asm"
)

// countInstructions decodes code (x86-64) and returns the number of its
// instructions.
func countInstructions(code []byte) (int, error) {
	n := 0
	for off := 0; off < len(code); n++ {
		in, err := x86asm.Decode(code[off:], 64)
		if err != nil {
			return 0, fmt.Errorf("offset %#x: %v", off, err)
		}
		off += in.Len
	}
	return n, nil
}
