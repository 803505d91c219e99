#!/usr/bin/env bash
# cross.sh: check that the module and the bench module build, vet and link
# their tests on every platform below, not only the one CI runs on. Stops at
# the first failure, naming the platform and the step.
#
# Usage: .ci/cross.sh [GOOS/GOARCH...]   (default: the list below)
#
# For each platform, with CGO_ENABLED=0 (what a cross build gets):
#   go vet ./...                        every package and its tests type-check
#   go test -exec true ./...           every test binary compiles and links
#                                       (true(1) stands in for running it)
# in the module root and in bench/. `go test -c -o DIR ./...` cannot be used
# here: the root package and cmd/rseq would both write rseq.test.
#
# Then linux/arm64 with cgo (CC=aarch64-linux-gnu-gcc), when that cross
# compiler is installed: the cgo-only code (bench/cgo, internal/testprog/
# cgoids) is vetted and linked too; otherwise it is skipped with a note.
#
# Time on the 2-core CI machine: 35 s with a warm build cache, up to 100 s
# when other builds share the machine (the test binaries are linked again
# on every run); a cold cache first compiles the standard library for each
# platform.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH="$PATH:/usr/local/go/bin"

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
	# linux/amd64 is CI's own platform (vetted and tested in full before
	# this runs). Each platform costs a compile of the standard library on a
	# cold cache, so the list is what the project promises to build on:
	# linux/arm64 (sections), 32-bit and RISC-V Linux, darwin, windows and
	# freebsd.
	targets=(
		linux/arm64 linux/386 linux/riscv64
		darwin/arm64 windows/amd64 freebsd/amd64
	)
fi
true_cmd=$(command -v true)

start=$(date +%s)
fail() {
	echo "cross: FAIL on $1: $2 (in ${3:-.})" >&2
	exit 1
}

# check PLATFORM LABEL: vet and link the tests of both modules for the
# GOOS/GOARCH/CGO_ENABLED in the environment.
check() {
	local label=$1 dir t0
	t0=$(date +%s)
	for dir in . bench; do
		[ -f "$dir/go.mod" ] || continue
		(cd "$dir" && go vet ./...) || fail "$label" "go vet ./..." "$dir"
		(cd "$dir" && go test -exec "$true_cmd" ./... >/dev/null) ||
			fail "$label" "go test -exec true ./... (compiling and linking the tests)" "$dir"
	done
	echo "cross: ok   $label ($(($(date +%s) - t0))s)" >&2
}

for t in "${targets[@]}"; do
	case "$t" in
	*/*) ;;
	*) echo "cross: $t: want GOOS/GOARCH" >&2; exit 2 ;;
	esac
	GOOS=${t%/*} GOARCH=${t#*/} CGO_ENABLED=0 check "$t"
done

if [ $# -eq 0 ]; then
	if command -v aarch64-linux-gnu-gcc >/dev/null; then
		GOOS=linux GOARCH=arm64 CGO_ENABLED=1 CC=aarch64-linux-gnu-gcc check "linux/arm64 (cgo)"
	else
		echo "cross: note: no aarch64-linux-gnu-gcc: linux/arm64 with cgo not checked (apt-get install gcc-aarch64-linux-gnu)" >&2
	fi
fi

echo "cross: all ${#targets[@]} platforms ok in $(($(date +%s) - start))s" >&2
