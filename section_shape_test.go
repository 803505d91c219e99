package rseq

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"testing"
)

// sectionShape is the shape every section of one architecture's assembly
// has around its start: the restart label, the two instructions that arm
// rseq_cs with the section's descriptor, then the first instruction of the
// section, which loads the 32-bit index (cpu_id_start, mm_cid or node_id)
// from the area. The abort handler jumps back to the label.
type sectionShape struct {
	file      string
	arm       func(sec string) [2]string // the arming pair
	readIndex string                     // prefix of the start instruction
	jump      string                     // the abort handler's jump back
}

var sectionShapes = map[string]sectionShape{
	"amd64": {
		file: "ops_linux_amd64.s",
		arm: func(sec string) [2]string {
			return [2]string{"LEAQ\tDESC_" + sec + ", AX", "SEG_FS; MOVQ\tAX, 8(R8)"}
		},
		readIndex: "SEG_FS; MOVL\t(R8)",
		jump:      "JMP\trestart",
	},
	"arm64": {
		file: "ops_linux_arm64.s",
		arm: func(sec string) [2]string {
			return [2]string{"MOVD\t$DESC_" + sec + ", R10", "MOVD\tR10, 8(R8)"}
		},
		readIndex: "MOVWU\t(R8)",
		jump:      "B\trestart",
	},
}

// TestSectionsReadTheirIndexInside checks, in the assembly of every
// architecture, the rule a restart depends on: a section's first
// instruction reads the slot index from the area, right after rseq_cs is
// armed, and the abort handler jumps back to before the arming. An index
// read anywhere earlier survives a restart: after a migration the restarted
// section would update the CPU the thread left. Where the update is one
// read-modify-write instruction (AddCPU on amd64) no sum can show that
// (it loses an update only when two CPUs execute the instruction at the
// same moment), so the rule is checked here, in the source.
func TestSectionsReadTheirIndexInside(t *testing.T) {
	for arch, shape := range sectionShapes {
		src, err := os.ReadFile(shape.file)
		if errors.Is(err, fs.ErrNotExist) && os.Getenv("GORSEQ_QEMU") != "" {
			t.Skipf("no source tree in a qemu guest (%v): the host runs this test", err)
		}
		if err != nil {
			t.Fatal(err)
		}
		blocks := textBlocks(string(src))
		for _, sec := range sectionNames {
			if err := checkSectionShape(shape, sec, blocks); err != nil {
				t.Errorf("%s: %v", arch, err)
			}
		}
	}
}

// textBlocks splits assembly source into its TEXT blocks, as lists of
// trimmed lines.
func textBlocks(src string) [][]string {
	var blocks [][]string
	for _, line := range strings.Split(src, "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "TEXT ") {
			blocks = append(blocks, nil)
		}
		if len(blocks) > 0 && line != "" && !strings.HasPrefix(line, "//") {
			blocks[len(blocks)-1] = append(blocks[len(blocks)-1], line)
		}
	}
	return blocks
}

func checkSectionShape(shape sectionShape, sec string, blocks [][]string) error {
	startMark, abortMark := "// rseq:start "+sec, "// rseq:abort "+sec
	for _, b := range blocks {
		start := -1
		for i, l := range b {
			if strings.HasSuffix(l, startMark) {
				start = i
			}
		}
		if start < 0 {
			continue
		}
		insn := strings.TrimSpace(strings.TrimSuffix(b[start], startMark))
		arm := shape.arm(sec)
		switch {
		case start < 3 || b[start-3] != "restart:" || b[start-2] != arm[0] || b[start-1] != arm[1]:
			return fmt.Errorf("section %s: not preceded by the restart label and the arming of rseq_cs (%q, %q): a restart would not re-arm or would skip part of the section", sec, arm[0], arm[1])
		case !strings.HasPrefix(insn, shape.readIndex):
			return fmt.Errorf("section %s: its first instruction %q does not read the index from the area (%s...): an index read before it survives a restart, and after a migration the section updates the CPU the thread left", sec, insn, shape.readIndex)
		}
		restarts, abort := 0, -1
		for i, l := range b {
			if l == "restart:" {
				restarts++
			}
			if strings.HasSuffix(l, abortMark) {
				abort = i
			}
		}
		if restarts != 1 {
			return fmt.Errorf("section %s: %d restart labels in its function, want 1", sec, restarts)
		}
		if abort < 0 {
			return fmt.Errorf("section %s: no abort handler in the function of its start", sec)
		}
		for _, l := range b[abort:] {
			if l == shape.jump {
				return nil
			}
			if strings.HasPrefix(l, "JMP") || strings.HasPrefix(l, "B\t") || strings.HasPrefix(l, "RET") {
				return fmt.Errorf("section %s: its abort handler leaves by %q, not %q", sec, l, shape.jump)
			}
		}
		return fmt.Errorf("section %s: its abort handler never jumps back to restart", sec)
	}
	return fmt.Errorf("section %s: no %q in the assembly", sec, startMark)
}
