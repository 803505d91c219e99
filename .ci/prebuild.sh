#!/usr/bin/env bash
# prebuild.sh: build every helper program that the tests of torture/,
# inspect/ and cmd/rseq/ otherwise build themselves with gcc or go build,
# for machines that have neither (qemu guests booted with the test binaries
# only). The tests use them when GORSEQ_PREBUILT names OUTDIR (see
# internal/prebuilt); a program missing there then fails the test that
# needs it.
#
# Usage: .ci/prebuild.sh GOARCH OUTDIR
#
#   GOARCH   amd64 or arm64: the architecture of the machine that runs them
#   OUTDIR   created if missing; the files below are replaced
#
# Layout of OUTDIR (PKGDIR/NAME: the program whose source is in
# PKGDIR/testdata; a test of another package that runs it looks there too):
#
#   GOARCH                 one line: the GOARCH the programs were built for
#   torture/percpu         torture/testdata/percpu.c            static
#   torture/percpuSELFREG  the same with -DSELFREG              static
#   torture/percpuBROKEN   the same with -DBROKEN               static
#   torture/percpuUNREG    the same with -DUNREG                static
#   torture/percpuPARTIAL  the same with -DPARTIAL              static
#   torture/goprog         torture/testdata/goprog (Go, CGO_ENABLED=0, static)
#   torture/dlmain         torture/testdata/dlmain.c   dynamic (it calls dlopen)
#   torture/libinc.so      torture/testdata/libinc.c   shared library
#   inspect/threads        inspect/testdata/threads.c           static
#   rseq/ids               internal/testprog/ids (Go, CGO_ENABLED=0, static)
#   rseq/ids-pie           the same with -buildmode=pie: dynamic, so the
#                          loader registers rseq on its main thread
#   rseq/ids-cgo1          the same built with CGO_ENABLED=1 (it links no cgo
#                          package, so it still runs without cgo)
#   rseq/seccompexec       internal/testprog/seccompexec (Go, static)
#   rseq/cgoids            internal/testprog/cgoids (Go with cgo: dynamic,
#                          glibc registers rseq on every thread)
#   cmd/rseq/abortsgo      cmd/rseq/testdata/abortsgo (Go, CGO_ENABLED=0, static)
#   cmd/rseq/abortsc       cmd/rseq/testdata/abortsc.c          static
#   lib/ld-linux-*.so.*    the dynamic loader dlmain was linked against
#                          (ld-linux-x86-64.so.2 or ld-linux-aarch64.so.1)
#   lib/*.so*              the shared libraries dlmain and libinc.so need
#                          (libc.so.6, ...), from the same C library
#
# The dynamic programs run on a machine without a C library through the
# packed loader, which the tests do (TestDlopen):
#
#   OUTDIR/lib/ld-linux-aarch64.so.1 --library-path OUTDIR/lib \
#       OUTDIR/torture/dlmain OUTDIR/torture/libinc.so 20000
#
# OUTDIR may be moved as a whole: nothing in it names its own location.
#
# Compilers: gcc for the host's architecture, else the Debian cross
# compiler (x86_64-linux-gnu-gcc or aarch64-linux-gnu-gcc), installed with
# apt-get when missing (run as root); Go from PATH or /usr/local/go/bin.
set -euo pipefail

die() { echo "prebuild: $*" >&2; exit 1; }
[ $# -eq 2 ] || die "usage: .ci/prebuild.sh GOARCH OUTDIR"
goarch=$1
mkdir -p "$2"
out=$(cd "$2" && pwd)

cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH="$PATH:/usr/local/go/bin"
case "$goarch" in
amd64) triple=x86_64-linux-gnu pkg=gcc-x86-64-linux-gnu libcpkg=libc6-dev-amd64-cross ;;
arm64) triple=aarch64-linux-gnu pkg=gcc-aarch64-linux-gnu libcpkg=libc6-dev-arm64-cross ;;
*) die "GOARCH $goarch: amd64 or arm64 only" ;;
esac

hostarch=$(go env GOHOSTARCH)
if [ "$hostarch" = "$goarch" ]; then
	cc=gcc
	command -v gcc >/dev/null || die "no gcc (apt-get install gcc)"
else
	cc=$triple-gcc
	if ! command -v "$cc" >/dev/null; then
		echo "prebuild: installing $pkg $libcpkg" >&2
		DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$pkg" "$libcpkg" >&2
	fi
fi
readelf=readelf
command -v "$triple-readelf" >/dev/null && readelf=$triple-readelf

mkdir -p "$out/torture" "$out/inspect" "$out/lib"
echo "$goarch" >"$out/GOARCH"
cflags=(-O2 -pthread -Wall)

# Static C programs.
for v in "" SELFREG BROKEN UNREG PARTIAL; do
	"$cc" "${cflags[@]}" -static -o "$out/torture/percpu$v" torture/testdata/percpu.c ${v:+"-D$v"}
done
"$cc" "${cflags[@]}" -static -o "$out/inspect/threads" inspect/testdata/threads.c
mkdir -p "$out/cmd/rseq"
"$cc" "${cflags[@]}" -static -o "$out/cmd/rseq/abortsc" cmd/rseq/testdata/abortsc.c

# Go programs.
CGO_ENABLED=0 GOOS=linux GOARCH="$goarch" go build -o "$out/torture/goprog" ./torture/testdata/goprog
mkdir -p "$out/rseq"
CGO_ENABLED=0 GOOS=linux GOARCH="$goarch" go build -o "$out/rseq/ids" ./internal/testprog/ids
CGO_ENABLED=0 GOOS=linux GOARCH="$goarch" go build -buildmode=pie -o "$out/rseq/ids-pie" ./internal/testprog/ids
CGO_ENABLED=1 CC="$cc" GOOS=linux GOARCH="$goarch" go build -o "$out/rseq/ids-cgo1" ./internal/testprog/ids
CGO_ENABLED=0 GOOS=linux GOARCH="$goarch" go build -o "$out/rseq/seccompexec" ./internal/testprog/seccompexec
CGO_ENABLED=0 GOOS=linux GOARCH="$goarch" go build -o "$out/cmd/rseq/abortsgo" ./cmd/rseq/testdata/abortsgo
CGO_ENABLED=1 CC="$cc" GOOS=linux GOARCH="$goarch" go build -o "$out/rseq/cgoids" ./internal/testprog/cgoids

# The dlopen test: a dynamic program, a shared library, and what they need.
"$cc" "${cflags[@]}" -o "$out/torture/dlmain" torture/testdata/dlmain.c -ldl
"$cc" -O2 -Wall -shared -fPIC -o "$out/torture/libinc.so" torture/testdata/libinc.c

# needed FILE: the DT_NEEDED entries of FILE.
needed() { "$readelf" -d "$1" | sed -n 's/.*(NEEDED).*\[\(.*\)\]$/\1/p'; }
# find_lib NAME: NAME in the compiler's C library.
find_lib() {
	local p
	p=$("$cc" -print-file-name="$1")
	if [ "$p" = "$1" ] || [ ! -e "$p" ]; then
		# Not on the compiler's search path: a native build's loader is
		# where its program header says.
		for d in /lib64 /lib/"$triple" /usr/lib/"$triple" /usr/"$triple"/lib; do
			[ -e "$d/$1" ] && { echo "$d/$1"; return; }
		done
		die "cannot find $1 for $cc"
	fi
	echo "$p"
}
interp=$("$readelf" -l "$out/torture/dlmain" | sed -n 's/.*Requesting program interpreter: \(.*\)\]$/\1/p')
[ -n "$interp" ] || die "dlmain has no program interpreter"
queue=("$(basename "$interp")")
queue+=($(needed "$out/torture/dlmain") $(needed "$out/torture/libinc.so") $(needed "$out/rseq/cgoids") $(needed "$out/rseq/ids-cgo1"))
declare -A seen=()
while [ ${#queue[@]} -gt 0 ]; do
	name=${queue[0]}
	queue=("${queue[@]:1}")
	[ -z "${seen[$name]:-}" ] || continue
	seen[$name]=1
	src=$(find_lib "$name")
	cp -L "$src" "$out/lib/$name"
	queue+=($(needed "$out/lib/$name"))
done

echo "prebuild: $goarch programs in $out:" >&2
(cd "$out" && find . -type f | sort | sed 's|^\./|  |') >&2
