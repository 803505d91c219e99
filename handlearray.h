// Offsets of the fields of HandleArray (handles.go), which the handle
// operations' assembly reads. handles.go fails to compile if they change.
// base must stay first: arm64 loads it with LDAR, which takes no offset.
// (Not go_asm.h: internal/gensections assembles ops_linux_GOARCH.s on its
// own, without compiling the package.)
#define HandleArray_base	0
#define HandleArray_stride	8
#define HandleArray_table	16
#define HandleArray_capacity	24
#define HandleArray_ix	28
