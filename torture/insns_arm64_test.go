//go:build linux

package torture

import "fmt"

// countInstructions returns the number of instructions of code (arm64:
// every 4-byte word).
func countInstructions(code []byte) (int, error) {
	if len(code)%4 != 0 {
		return 0, fmt.Errorf("%d bytes, not whole 4-byte instructions", len(code))
	}
	return len(code) / 4, nil
}
