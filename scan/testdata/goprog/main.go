// Command goprog is a tiny program using github.com/gorseq/rseq; the scan
// package's tests build it and check that rseq scan finds the library's
// critical sections through its Go symbols. Run with an argument it prints
// "ready" and waits for its standard input to close, so that a test can
// scan the running process.
package main

import (
	"fmt"
	"io"
	"os"
	"unsafe"

	"github.com/gorseq/rseq"
)

func main() {
	slots := make([]int64, rseq.Slots()*8)
	slot := rseq.Add(unsafe.Pointer(&slots[0]), 64, rseq.ByCPU, 1)
	if len(os.Args) > 1 {
		fmt.Println("ready")
		io.Copy(io.Discard, os.Stdin)
		return
	}
	fmt.Println(slot, slots[slot*8])
}
