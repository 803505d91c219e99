package perftrace

import (
	"encoding/binary"
	"testing"
)

// The format file of rseq:rseq_ip_fixup on Linux 6.18 (x86-64).
const ipFixupFormat = `name: rseq_ip_fixup
ID: 591
format:
	field:unsigned short common_type;	offset:0;	size:2;	signed:0;
	field:unsigned char common_flags;	offset:2;	size:1;	signed:0;
	field:unsigned char common_preempt_count;	offset:3;	size:1;	signed:0;
	field:int common_pid;	offset:4;	size:4;	signed:1;

	field:unsigned long regs_ip;	offset:8;	size:8;	signed:0;
	field:unsigned long start_ip;	offset:16;	size:8;	signed:0;
	field:unsigned long post_commit_offset;	offset:24;	size:8;	signed:0;
	field:unsigned long abort_ip;	offset:32;	size:8;	signed:0;

print fmt: "regs_ip=0x%lx start_ip=0x%lx post_commit_offset=%lu abort_ip=0x%lx", REC->regs_ip, REC->start_ip, REC->post_commit_offset, REC->abort_ip
`

func TestParseFormat(t *testing.T) {
	f, err := ParseFormat("rseq", []byte(ipFixupFormat))
	if err != nil {
		t.Fatal(err)
	}
	if f.Name != "rseq_ip_fixup" || f.ID != 591 || len(f.Fields) != 8 {
		t.Fatalf("got %+v", f)
	}
	want := map[string][2]int{"common_pid": {4, 4}, "regs_ip": {8, 8}, "start_ip": {16, 8}, "post_commit_offset": {24, 8}, "abort_ip": {32, 8}}
	for name, w := range want {
		fd, ok := f.Field(name)
		if !ok || fd.Offset != w[0] || fd.Size != w[1] {
			t.Errorf("field %s = %+v, %v; want offset %d size %d", name, fd, ok, w[0], w[1])
		}
	}
	if fd, _ := f.Field("common_pid"); !fd.Signed || fd.Type != "int" {
		t.Errorf("common_pid = %+v", fd)
	}
	if fd, _ := f.Field("regs_ip"); fd.Signed || fd.Type != "unsigned long" {
		t.Errorf("regs_ip = %+v", fd)
	}

	raw := make([]byte, 40)
	binary.LittleEndian.PutUint32(raw[4:], 0xfffffffe)
	binary.LittleEndian.PutUint64(raw[16:], 0x4eb517)
	if fd, _ := f.Field("start_ip"); func() uint64 { v, _ := fd.Uint(raw); return v }() != 0x4eb517 {
		t.Error("start_ip not read")
	}
	if fd, _ := f.Field("common_pid"); func() int64 { v, _ := fd.Int(raw); return v }() != -2 {
		t.Error("common_pid not sign-extended")
	}
	if fd, _ := f.Field("abort_ip"); func() bool { _, ok := fd.Uint(raw[:36]); return ok }() {
		t.Error("a short record was read")
	}
}

func TestParseFormatArrayAndErrors(t *testing.T) {
	f, err := ParseFormat("x", []byte("name: e\nID: 7\nformat:\n\tfield:char comm[16];\toffset:8;\tsize:16;\tsigned:0;\n\tfield:const char * p;\toffset:24;\tsize:8;\tsigned:0;\n"))
	if err != nil {
		t.Fatal(err)
	}
	if fd, ok := f.Field("comm"); !ok || fd.Size != 16 {
		t.Errorf("comm = %+v %v", fd, ok)
	}
	if fd, ok := f.Field("p"); !ok || fd.Offset != 24 {
		t.Errorf("p = %+v %v", fd, ok)
	}
	for _, bad := range []string{
		"ID: 7\n",
		"name: e\n",
		"name: e\nID: x\n",
		"name: e\nID: 1\n\tfield:int a;\toffset:z;\tsize:4;\n",
		"name: e\nID: 1\n\tfield:int a;\tsize:4;\n",
	} {
		if _, err := ParseFormat("x", []byte(bad)); err == nil {
			t.Errorf("ParseFormat(%q) succeeded", bad)
		}
	}
}
