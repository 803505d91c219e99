#!/usr/bin/env bash
# qemu-test.sh: run the project's Go tests on Debian 12's Linux 6.1 kernel
# under qemu full-system emulation (TCG; no KVM needed).
#
# Linux 6.1 has rseq but not the auxv entries AT_RSEQ_FEATURE_SIZE and
# AT_RSEQ_ALIGN (added in 6.3), so this exercises the library's legacy path
# (the original 32-byte registration) on every CI run.
#
# Usage: .ci/qemu-test.sh [PKG...] [-- TESTFLAG...]
#
#   PKG       Go packages of this module, or directories of packages (of any
#             module), to test (default: the root package, and ./percpu
#             when it exists). Each test binary is built with CGO_ENABLED=0
#             (static), packed with internal/qemuinit as /init into a newc
#             initramfs, and run in the guest with
#             -test.short -test.v -test.timeout=... TESTFLAG...
#             A package's testdata directory travels with its binary.
#
# The guest sees GORSEQ_QEMU=1 and GORSEQ_EXPECT_AUXV=0 in its environment.
# Pass/fail comes from the guest's console: a "QEMU-TEST-RESULT <name>
# exit=0" line for every binary and a "QEMU-TEST-END ... fail=0" line
# (a panic or hang leaves them out); qemu's isa-debug-exit status is
# checked as well.
#
# Run as root on Debian 12: installs qemu-system-x86 when missing, and
# downloads (never installs) a linux-image-6.1.0-*-amd64 package into
# the cache, whose vmlinuz is reused by later runs without any download.
#
# Environment:
#   GORSEQ_QEMU_CACHE        cache dir (default ${XDG_CACHE_HOME:-$HOME/.cache}/gorseq-qemu)
#   GORSEQ_QEMU_KERNEL_PKG   kernel package (default: the newest cached one,
#                            else the newest linux-image-6.1.0-N-amd64 in apt)
#   GORSEQ_QEMU_TEST_TIMEOUT seconds per test binary in the guest (default 180);
#                            then Go's -test.timeout (20s less) or SIGQUIT hits
#   GORSEQ_QEMU_TIMEOUT      seconds for the whole qemu run (default: 60, plus
#                            the binary limit + 20 for each test binary)
#   GORSEQ_QEMU_SMP, GORSEQ_QEMU_MEM   guest CPUs (2) and memory (1G)
#   GORSEQ_QEMU_ACCEL        qemu accelerator (default tcg; kvm where /dev/kvm is usable)
#   GORSEQ_QEMU_ARGS         extra qemu options, split at spaces (e.g. -singlestep)
#   GORSEQ_QEMU_KEEP         non-empty: keep the work dir (initrd, console log)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH="/usr/local/go/bin:$PATH"

script_start=$(date +%s)
log() { printf 'qemu-test [+%ss]: %s\n' "$(($(date +%s) - script_start))" "$*" >&2; }
die() { log "FAIL: $*"; exit 1; }

pkgs=()
testflags=()
while [ $# -gt 0 ]; do
	if [ "$1" = "--" ]; then
		shift
		testflags=("$@")
		break
	fi
	pkgs+=("$1")
	shift
done
if [ ${#pkgs[@]} -eq 0 ]; then
	pkgs=(github.com/gorseq/rseq)
	if [ -d percpu ]; then pkgs+=(github.com/gorseq/rseq/percpu); fi
fi

cache="${GORSEQ_QEMU_CACHE:-${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/gorseq-qemu}"
test_timeout="${GORSEQ_QEMU_TEST_TIMEOUT:-180}"
case "$test_timeout" in
'' | *[!0-9]*) die "GORSEQ_QEMU_TEST_TIMEOUT=$test_timeout: want whole seconds" ;;
esac
[ "$test_timeout" -ge 30 ] || die "GORSEQ_QEMU_TEST_TIMEOUT=$test_timeout: want at least 30 seconds"
smp="${GORSEQ_QEMU_SMP:-2}"
mem="${GORSEQ_QEMU_MEM:-1G}"
accel="${GORSEQ_QEMU_ACCEL:-tcg}"
mkdir -p "$cache"

apt_updated=
apt_update() {
	if [ -z "$apt_updated" ]; then
		log "apt-get update"
		DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
		apt_updated=1
	fi
}

# --- qemu ---------------------------------------------------------------
if ! command -v qemu-system-x86_64 >/dev/null; then
	apt_update
	log "installing qemu-system-x86"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends qemu-system-x86 >&2
fi
command -v timeout >/dev/null || die "timeout(1) missing (coreutils)"

# --- kernel ---------------------------------------------------------------
# Each kernel lives in $cache/<package>/ with vmlinuz and the package
# version; only the vmlinuz is kept (the modules are not needed).
kpkg="${GORSEQ_QEMU_KERNEL_PKG:-}"
if [ -z "$kpkg" ]; then
	kpkg=$(find "$cache" -mindepth 2 -maxdepth 2 -name vmlinuz -path '*/linux-image-6.1.0-*-amd64/*' 2>/dev/null |
		sed 's|.*/\(linux-image-[^/]*\)/vmlinuz$|\1|' | sort -t- -k4,4n | tail -n1)
fi
if [ -z "$kpkg" ]; then
	apt_update
	kpkg=$(apt-cache search --names-only '^linux-image-6\.1\.0-[0-9]+-amd64$' | awk '{print $1}' |
		sort -t- -k4,4n | tail -n1)
	[ -n "$kpkg" ] || die "no linux-image-6.1.0-N-amd64 package in apt (is this Debian 12 with bookworm sources?)"
fi
case "$kpkg" in
linux-image-*) ;;
*) die "GORSEQ_QEMU_KERNEL_PKG=$kpkg is not a linux-image package" ;;
esac
kdir="$cache/$kpkg"
if [ ! -s "$kdir/vmlinuz" ]; then
	apt_update
	log "downloading $kpkg (kept in $kdir, not installed)"
	dl=$(mktemp -d "$cache/.dl.XXXXXX")
	(cd "$dl" && apt-get download -q -o APT::Sandbox::User=root "$kpkg" >&2) || { rm -rf "$dl"; die "apt-get download $kpkg failed"; }
	debs=("$dl"/*.deb)
	deb=${debs[0]}
	dpkg-deb -f "$deb" Version >"$dl/version"
	# Like dpkg -x, but only the kernel image (not 400 MB of modules).
	mkdir "$dl/x"
	dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$dl/x" --wildcards './boot/vmlinuz-*' ||
		{ rm -rf "$dl"; die "extracting boot/vmlinuz-* from $deb failed"; }
	images=("$dl"/x/boot/vmlinuz-*)
	vmlinuz=${images[0]}
	[ -f "$vmlinuz" ] || { rm -rf "$dl"; die "$kpkg holds no boot/vmlinuz-*"; }
	mkdir -p "$kdir"
	cp "$dl/version" "$kdir/version"
	cp "$vmlinuz" "$kdir/vmlinuz.tmp" && mv "$kdir/vmlinuz.tmp" "$kdir/vmlinuz"
	rm -rf "$dl"
fi
kver=$(cat "$kdir/version" 2>/dev/null || echo unknown)
log "kernel: $kpkg $kver"

# --- build ----------------------------------------------------------------
work=$(mktemp -d "${TMPDIR:-/tmp}/gorseq-qemu.XXXXXX")
if [ -n "${GORSEQ_QEMU_KEEP:-}" ]; then
	log "keeping $work (initrd, console log)"
else
	trap 'rm -rf "$work"' EXIT
fi
mkdir -p "$work/tests"
# The packer runs here; everything else runs in the guest: static amd64.
go build -o "$work/mkinitramfs" ./internal/qemuinit/mkinitramfs || die "building mkinitramfs failed"
export CGO_ENABLED=0 GOOS=linux GOARCH=amd64

modpath=$(go list -m)
specs=()
names=()
for pkg in "${pkgs[@]}"; do
	# A PKG that is a directory may belong to another module (built there);
	# anything else is a package pattern of this module.
	if [ -d "$pkg" ]; then
		dir=$(cd "$pkg" && pwd)
	else
		dir=$(go list -f '{{.Dir}}' "$pkg") || die "go list $pkg failed"
		[ "$(printf '%s\n' "$dir" | wc -l)" -eq 1 ] || die "$pkg names several packages: list them one by one"
	fi
	ipath=$(go -C "$dir" list -f '{{.ImportPath}}' .) || die "go list in $dir failed"
	if [ "$ipath" = "$modpath" ]; then
		name=$(basename "$modpath")
	elif [[ "$ipath" == "$modpath/"* ]]; then
		name=${ipath#"$modpath/"}
	else
		name=$(basename "$ipath")
	fi
	name=${name//\//_}
	[ ! -e "$work/tests/$name" ] || die "two packages map to the test name $name"
	mkdir -p "$work/tests/$name"
	log "building test binary $ipath"
	go -C "$dir" test -c -o "$work/tests/$name/$name.test" . >&2 || die "go test -c $ipath failed"
	if [ ! -f "$work/tests/$name/$name.test" ]; then
		log "$ipath has no test files: skipped"
		rmdir "$work/tests/$name"
		continue
	fi
	names+=("$name")
	if [ -d "$dir/testdata" ]; then
		specs+=("tests/$name/testdata=$dir/testdata")
	fi
done
[ ${#names[@]} -gt 0 ] || die "no test binaries to run"

go build -o "$work/init" ./internal/qemuinit || die "building internal/qemuinit failed"
{
	echo "-test.short"
	echo "-test.v"
	# Below the guest's per-binary limit, so a hang gets Go's own report.
	echo "-test.timeout=$((test_timeout - 20))s"
} >"$work/args"
for f in ${testflags[@]+"${testflags[@]}"}; do
	printf '%s\n' "$f" >>"$work/args"
done
for n in "${names[@]}"; do
	specs+=("tests/$n/$n.test=$work/tests/$n/$n.test")
done
"$work/mkinitramfs" -o "$work/initrd" -init "$work/init" "tests/args=$work/args" "${specs[@]}" ||
	die "packing the initramfs failed"
log "initramfs: $(du -h "$work/initrd" | cut -f1) with ${names[*]}"

# --- boot -----------------------------------------------------------------
# Enough for the boot and every binary running into its guest-side limit.
host_timeout="${GORSEQ_QEMU_TIMEOUT:-$((60 + ${#names[@]} * (test_timeout + 20)))}"
append="console=ttyS0 quiet panic=-1 GORSEQ_QEMU=1 GORSEQ_EXPECT_AUXV=0"
append+=" GORSEQ_QEMU_DEBUG_EXIT=0xf4 GORSEQ_QEMU_TEST_TIMEOUT=${test_timeout}s"
log "booting $kpkg under qemu ($accel, $smp CPUs, $mem), limit ${host_timeout}s"
read -r -a extra <<<"${GORSEQ_QEMU_ARGS:-}"
start=$(date +%s)
set +e
timeout -k 10 "$host_timeout" qemu-system-x86_64 \
	-nographic -no-reboot -m "$mem" -smp "$smp" -accel "$accel" -cpu max -nic none \
	-device isa-debug-exit,iobase=0xf4,iosize=0x04 \
	-kernel "$kdir/vmlinuz" -initrd "$work/initrd" -append "$append" \
	${extra[@]+"${extra[@]}"} \
	</dev/null 2>&1 | tee "$work/console.raw" |
	sed -u -e 's/\x1bc//g' -e 's/\x1b\[[0-9;?]*[A-Za-z]//g' -e 's/\r$//'
qemu_rc=${PIPESTATUS[0]}
set -e
elapsed=$(( $(date +%s) - start ))
tr -d '\r' <"$work/console.raw" >"$work/console"

# --- verdict --------------------------------------------------------------
fail=0
echo
echo "=== qemu-test summary ($kpkg $kver, ${elapsed}s, qemu exit $qemu_rc)"
grep -oE 'QEMU-TEST-(KERNEL|INFO) .*' "$work/console" || true
for n in "${names[@]}"; do
	line=$(grep -F "QEMU-TEST-RESULT $n exit=" "$work/console" | tail -n1 || true)
	if [ -z "$line" ]; then
		echo "FAIL $n: no result line (guest crashed, hung or was cut off)"
		fail=1
	elif [[ "$line" == *"QEMU-TEST-RESULT $n exit=0 "* ]]; then
		echo "ok   $n: ${line#*QEMU-TEST-RESULT }"
	else
		echo "FAIL $n: ${line#*QEMU-TEST-RESULT }"
		fail=1
	fi
done
end=$(grep -oE 'QEMU-TEST-END pass=[0-9]+ fail=[0-9]+$' "$work/console" | tail -n1 || true)
if [ -z "$end" ]; then
	echo "FAIL: no QEMU-TEST-END line (the guest did not finish)"
	fail=1
elif [[ "$end" != *" fail=0" ]]; then
	echo "FAIL: $end"
	fail=1
fi
case $qemu_rc in
1) ;;          # isa-debug-exit with 0: the guest reported success
0) ;;          # powered off without the debug-exit device: markers decide
3) echo "FAIL: the guest reported failure through isa-debug-exit"; fail=1 ;;
124 | 137) echo "FAIL: timed out after ${host_timeout}s"; fail=1 ;;
*) echo "FAIL: qemu exited with status $qemu_rc"; fail=1 ;;
esac
if [ $fail -ne 0 ]; then
	echo "qemu-test: FAILED"
	exit 1
fi
echo "qemu-test: PASS"
