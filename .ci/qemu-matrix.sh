#!/usr/bin/env bash
# qemu-matrix.sh: run the tests in every CI qemu guest (.ci/qemu-test.sh, one
# guest at a time by default), print a summary table, and fail if any guest
# failed.
#
# Usage: .ci/qemu-matrix.sh [PKG...] [-- TESTFLAG...]
#
# The guests (ARCH/KERNEL SERIES):
#   amd64/6.1    Debian 12's Linux 6.1: rseq without the auxv feature entries
#                (the legacy 32-byte registration)
#   amd64/7.3    trixie-backports' Linux 7.3: feature size 33, alignment 64
#   arm64/6.12   Debian 12's Linux 6.12 for arm64: feature size 28, alignment 32
#   arm64/7.3    trixie-backports' Linux 7.3 for arm64: feature size 33, alignment 64
#
# Not in the default list, because its kernel is built from source (several
# minutes on 2 cores, once; .ci/kernel/build.sh), but accepted:
#   amd64/7.3-slice  Linux 7.3 from Debian's linux-source-7.3 built with
#                CONFIG_RSEQ_SLICE_EXTENSION: the rseq time-slice extension,
#                which Debian's kernels lack
#
# PKG and TESTFLAG go to every guest (default: the root package, ./percpu,
# ./inspect and ./torture; .ci/qemu-test.sh skips, visibly, a package with no
# tests for the guest's architecture, and inspect and torture while
# .ci/prebuild.sh does not exist).
#
# Environment (and everything .ci/qemu-test.sh reads):
#   GORSEQ_QEMU_MATRIX   the guests to run, separated by spaces (default: all
#                        four above, in that order)
#   GORSEQ_QEMU_JOBS     guests run at the same time (default 2; with more than
#                        one, each guest's output is printed when it ends).
#                        Measured on the 2-core CI machine: 1 job 302s, 2 jobs
#                        136s, 4 jobs 141s (the guests mostly wait on timers;
#                        with 4, every guest runs twice as slow).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

read -r -a guests <<<"${GORSEQ_QEMU_MATRIX:-amd64/6.1 amd64/7.3 arm64/6.12 arm64/7.3}"
jobs="${GORSEQ_QEMU_JOBS:-2}"
case "$jobs" in
'' | *[!0-9]* | 0) echo "qemu-matrix: GORSEQ_QEMU_JOBS=$jobs: want a positive number" >&2; exit 2 ;;
esac

args=("$@")
pkgs_given=
for a in ${args[@]+"${args[@]}"}; do
	[ "$a" != -- ] || break
	pkgs_given=1
done
if [ -z "$pkgs_given" ]; then
	defaults=(github.com/gorseq/rseq)
	for d in percpu inspect torture; do
		[ ! -d "$d" ] || defaults+=("./$d")
	done
	args=("${defaults[@]}" ${args[@]+"${args[@]}"})
fi

out=$(mktemp -d "${TMPDIR:-/tmp}/gorseq-qemu-matrix.XXXXXX")
trap 'rm -rf "$out"' EXIT
matrix_start=$(date +%s)

# run_guest I GUEST: one guest through qemu-test.sh; its exit status and wall
# time land in $out/I.rc and $out/I.wall, its verdict in $out/I.tsv.
run_guest() {
	local i=$1 g=$2 start rc
	start=$(date +%s)
	set +e
	GORSEQ_QEMU_SUMMARY="$out/$i.tsv" bash .ci/qemu-test.sh --arch "${g%%/*}" --kernel "${g#*/}" "${args[@]}"
	rc=$?
	set -e
	echo "$rc" >"$out/$i.rc"
	echo "$(($(date +%s) - start))" >"$out/$i.wall"
}

i=0
running=0
for g in "${guests[@]}"; do
	case "$g" in
	amd64/* | arm64/*) ;;
	*) echo "qemu-matrix: bad guest $g: want ARCH/SERIES, e.g. arm64/7.3" >&2; exit 2 ;;
	esac
	i=$((i + 1))
	if [ "$jobs" -eq 1 ]; then
		echo
		echo "=== qemu-matrix: guest $i/${#guests[@]}: $g [+$(($(date +%s) - matrix_start))s]"
		run_guest "$i" "$g"
	else
		while [ "$running" -ge "$jobs" ]; do
			wait -n || true
			running=$((running - 1))
		done
		echo "=== qemu-matrix: starting guest $i/${#guests[@]}: $g [+$(($(date +%s) - matrix_start))s]"
		run_guest "$i" "$g" >"$out/$i.log" 2>&1 &
		running=$((running + 1))
	fi
done
if [ "$jobs" -ne 1 ]; then
	wait
	for ((j = 1; j <= ${#guests[@]}; j++)); do
		echo
		echo "=== qemu-matrix: output of guest $j/${#guests[@]}: ${guests[j - 1]}"
		cat "$out/$j.log"
	done
fi
total=$(($(date +%s) - matrix_start))

# --- summary table ------------------------------------------------------------
field() { # field I KEY: the first value of KEY in guest I's verdict
	awk -F'\t' -v k="$2" '$1 == k { print $2; exit }' "$out/$1.tsv" 2>/dev/null || true
}
failed=()
echo
echo "=== qemu-matrix summary (${total}s; wall times include builds and downloads)"
printf '%-11s %-22s %6s  %-9s %-6s %5s %5s %5s %8s  %s\n' \
	GUEST RELEASE WALL BINARY RESULT PASS FAIL SKIP TIME NOTE
for ((j = 1; j <= ${#guests[@]}; j++)); do
	g=${guests[j - 1]}
	rc=$(cat "$out/$j.rc" 2>/dev/null || echo 1)
	wall=$(cat "$out/$j.wall" 2>/dev/null || echo '?')
	release=$(field "$j" release)
	status=$(field "$j" status)
	[ "$rc" -eq 0 ] && [ "$status" = PASS ] || failed+=("$g")
	first=1
	row() { # the guest's columns on its first row only
		if [ -n "$first" ]; then
			printf '%-11s %-22s %5ss  ' "$g" "${release:-?}" "$wall"
			first=
		else
			printf '%-11s %-22s %6s  ' "" "" ""
		fi
	}
	# The binaries that ran, then those left out.
	while IFS=$'\t' read -r key name res p f s t note; do
		row
		if [ "$key" = bin ]; then
			printf '%-9s %-6s %5s %5s %5s %8s  %s\n' "$name" "$res" "$p" "$f" "$s" "$t" "$note"
		else
			printf '%-9s %-6s %5s %5s %5s %8s  %s\n' "$name" skip - - - - "$res"
		fi
	done < <(grep -E '^bin'$'\t' "$out/$j.tsv" 2>/dev/null; grep -E '^skip'$'\t' "$out/$j.tsv" 2>/dev/null; true)
	if [ "$rc" -ne 0 ] || [ "$status" != PASS ]; then
		row
		printf '%-9s %-6s %5s %5s %5s %8s  %s\n' "(guest)" FAIL - - - - "$(field "$j" reason)"
	fi
done
if [ ${#failed[@]} -gt 0 ]; then
	# What the failed tests said, guest by guest, at the end of the output
	# where a CI excerpt sees it (each guest's log above has it all).
	for ((j = 1; j <= ${#guests[@]}; j++)); do
		for d in "$out/$j.tsv".*.detail; do
			[ -e "$d" ] || continue
			n=${d#"$out/$j.tsv."}
			echo
			echo "--- ${guests[j - 1]} $(basename "${n%.detail}"): what the failed tests said"
			cat "$d"
		done
	done
	echo
	echo "qemu-matrix: FAILED: ${failed[*]}"
	exit 1
fi
echo "qemu-matrix: PASS (${#guests[@]} guests)"
