#!/usr/bin/env bash
# qemu-test.sh: run the project's Go tests in ONE qemu guest (full-system
# emulation, TCG; no KVM needed): a Debian kernel of a chosen series on amd64
# or arm64, with internal/qemuinit as /init. .ci/qemu-matrix.sh runs the four
# guests CI needs through this script.
#
# Usage: .ci/qemu-test.sh [--arch amd64|arm64] [--kernel SERIES] [PKG...] [-- TESTFLAG...]
#
#   --arch    guest architecture (default amd64). arm64 runs under
#             qemu-system-aarch64 -M virt -cpu max,pauth-impdef=on.
#   --kernel  kernel series (default 6.1):
#               6.1   linux-image-6.1.0-N-ARCH      (bookworm, bookworm-security)
#               6.12  linux-image-6.12.N+deb12-ARCH (bookworm-security)
#               7.N   linux-binary-7.N.M+deb13-ARCH (trixie-backports)
#               7.N-slice  (amd64 only) Linux 7.N built from Debian's
#                     linux-source-7.N with CONFIG_RSEQ_SLICE_EXTENSION, the
#                     rseq time-slice extension Debian's kernels lack: built
#                     once and cached by .ci/kernel/build.sh (see there)
#   PKG       Go packages of this module, or directories of packages (of any
#             module), to test (default: the root package, and ./percpu
#             when it exists). Each test binary is built for the guest with
#             CGO_ENABLED=0 GOARCH=ARCH (static), packed with
#             internal/qemuinit as /init into a newc initramfs, and run in the
#             guest with -test.short -test.v -test.timeout=... TESTFLAG...
#             A package's testdata directory travels with its binary. A
#             package with no test files for linux/ARCH is skipped (and said
#             so in the summary).
#
# Helper programs: tests of ./inspect, ./torture and ./cmd/rseq build C and
# Go helper programs at test time (gcc, go build); the guest has neither.
# When .ci/prebuild.sh exists, it is run as `.ci/prebuild.sh ARCH OUTDIR`
# (one at a time: it may install a cross compiler) and must leave the helpers
# in OUTDIR/<pkgdir>/<name> (e.g. OUTDIR/torture/percpu, OUTDIR/torture/goprog,
# OUTDIR/inspect/threads); the whole of OUTDIR is packed as /prebuilt and the
# tests see GORSEQ_PREBUILT=/prebuilt. Without the script, those packages are
# left out of the run (logged, and listed in the summary as skipped).
#
# What the guest's tests see (kernel command line KEY=value entries, which
# reach qemuinit and the test binaries as environment):
#   GORSEQ_QEMU=1                   running in a qemu guest (TCG: slow, noisy timing)
#   GORSEQ_QEMU_ARCH                amd64 or arm64 (the guest's GOARCH)
#   GORSEQ_QEMU_KERNEL              the kernel release (uname -r) booted
#   GORSEQ_EXPECT_AUXV              0: the kernel has no AT_RSEQ_FEATURE_SIZE/ALIGN
#                                   auxv entries (6.1, legacy 32-byte ABI);
#                                   1: it has them (6.3 and later)
#   GORSEQ_EXPECT_FEATURE_SIZE      with AUXV=1: AT_RSEQ_FEATURE_SIZE (6.12: 28; 7.x: 33)
#   GORSEQ_EXPECT_ALIGN             with AUXV=1: AT_RSEQ_ALIGN (6.12: 32; 7.x: 64)
#   GORSEQ_EXPECT_AREA_SIZE         the length of the areas the package registers
#                                   (32, or 64 on 7.x: feature size 33 rounded up to 64)
#   GORSEQ_EXPECT_SLICE_EXTENSION   false: the kernel offers no time-slice extension
#                                   (Debian builds without CONFIG_RSEQ_SLICE_EXTENSION);
#                                   true on 7.N-slice (the tests of the extension
#                                   must run, not skip)
#   GORSEQ_EXPECT_RO_ENFORCED       1 (7.x): the kernel kills a writer of cpu_id
#                                   (TestReadOnlyFieldsEnforced must see it)
#   GORSEQ_EXPECT_OPERATIONS=1      the test binaries fail at once if the per-CPU
#                                   operations do not run as restartable sections
#   GORSEQ_PREBUILT=/prebuilt       where the helper programs are (see above)
#   GORSEQ_QEMU_APPEND              (set on the host) more words for the kernel
#                                   command line, e.g. "maxcpus=1
#                                   GORSEQ_QEMU_HOTPLUG=1" for TestCPUComesOnline
#   GORSEQ_QEMU_TEST_TIMEOUT        per-binary limit, for qemuinit
#   GORSEQ_QEMU_DEBUG_EXIT=0xf4     amd64 only: qemuinit's isa-debug-exit port
# This script checks the first four itself too: the guest's QEMU-TEST-KERNEL
# and QEMU-TEST-INFO lines (printed by qemuinit) must show the expected
# machine, release and auxv entries, or the guest FAILs.
#
# Verdict: from the guest's console: a "QEMU-TEST-RESULT <name> exit=0" line
# for every binary and a "QEMU-TEST-END ... fail=0" line (a panic, crash or
# hang leaves them out, and the reason found in the console is reported). On
# amd64 qemu's isa-debug-exit status is checked as well; on arm64 qemuinit
# powers off through PSCI and qemu exits 0 whatever happened, so only the
# markers count. Per binary, the top-level "--- PASS/FAIL/SKIP" lines of the
# -test.v output are counted.
#
# Run as root on Debian 12: installs qemu-system-x86 or qemu-system-arm when
# missing. Kernels are downloaded (never installed) through a private apt
# configuration in the work directory (its own sources list, lists, cache and
# architecture; the system's sources and dpkg architectures are not touched),
# verified with the keyring below, and only the kernel image (vmlinuz, or the
# uncompressed arm64 Image), its package version and its release are kept in
# CACHE/<package>/{vmlinuz|Image,version,release}. Later runs use the newest cached package of the series
# and download nothing.
#
# Environment:
#   GORSEQ_QEMU_CACHE        cache dir (default ${XDG_CACHE_HOME:-$HOME/.cache}/gorseq-qemu)
#   GORSEQ_QEMU_KERNEL_PKG_<ARCH>_<SERIES>   kernel package for that guest, e.g.
#                            GORSEQ_QEMU_KERNEL_PKG_ARM64_7_3=linux-binary-7.3.4+deb13-arm64
#   GORSEQ_QEMU_KERNEL_PKG   kernel package for this run (the line above wins);
#                            default: the newest cached package of the series,
#                            else the newest one in the private apt lists
#   GORSEQ_QEMU_REFRESH      non-empty: look up the newest package in apt even
#                            when one of the series is cached
#   GORSEQ_QEMU_MIRROR       Debian mirror (default http://deb.debian.org/debian)
#   GORSEQ_QEMU_SECURITY_MIRROR  (default http://deb.debian.org/debian-security)
#   GORSEQ_QEMU_APT_KEYRING  keyring verifying the suites' Release files (default
#                            /usr/share/keyrings/debian-archive-keyring.gpg: on
#                            Debian 12, debian-archive-keyring 2023.3+deb12u2
#                            holds the bookworm and trixie keys, which sign
#                            bookworm*, trixie* and sid)
#   GORSEQ_QEMU_TEST_TIMEOUT seconds per test binary in the guest (default 180
#                            on amd64, 600 on arm64, which TCG emulates
#                            several times slower); then Go's -test.timeout
#                            (20s less) or SIGQUIT hits
#   GORSEQ_QEMU_TIMEOUT      seconds for the whole qemu run (default: 60 on
#                            amd64, 120 on arm64, plus the binary limit + 20
#                            for each test binary)
#   GORSEQ_QEMU_SMP, GORSEQ_QEMU_MEM   guest CPUs (2) and memory (1G)
#   GORSEQ_QEMU_ACCEL        qemu accelerator (default tcg; kvm where /dev/kvm is
#                            usable and the guest has the host's architecture)
#   GORSEQ_QEMU_ARGS         extra qemu options, split at spaces (e.g. -singlestep)
#   GORSEQ_QEMU_KEEP         non-empty: keep the work dir (initrd, console log)
#   GORSEQ_QEMU_SUMMARY      file to write the machine-readable verdict to
#                            (tab-separated; read by .ci/qemu-matrix.sh)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH="/usr/local/go/bin:$PATH"

script_start=$(date +%s)
tag="qemu-test"
log() { printf '%s [+%ss]: %s\n' "$tag" "$(($(date +%s) - script_start))" "$*" >&2; }

summary_file="${GORSEQ_QEMU_SUMMARY:-}"
summary() { # summary KEY FIELD...: one line of the machine-readable verdict
	if [ -n "$summary_file" ]; then
		(
			IFS=$'\t'
			printf '%s\n' "$*"
		) >>"$summary_file"
	fi
}
die() {
	log "FAIL: $*"
	summary status FAIL
	summary reason "$*"
	exit 1
}
[ -z "$summary_file" ] || : >"$summary_file"

# --- arguments --------------------------------------------------------------
arch=amd64
series=6.1
pkgs=()
testflags=()
while [ $# -gt 0 ]; do
	case "$1" in
	--)
		shift
		testflags=("$@")
		break
		;;
	--arch) arch=${2:?--arch needs a value}; shift 2; continue ;;
	--arch=*) arch=${1#--arch=}; shift; continue ;;
	--kernel) series=${2:?--kernel needs a value}; shift 2; continue ;;
	--kernel=*) series=${1#--kernel=}; shift; continue ;;
	-h | --help)
		sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'
		exit 0
		;;
	-*) die "unknown option $1 (see --help)" ;;
	esac
	pkgs+=("$1")
	shift
done
if [ ${#pkgs[@]} -eq 0 ]; then
	pkgs=(github.com/gorseq/rseq)
	if [ -d percpu ]; then pkgs+=(github.com/gorseq/rseq/percpu); fi
fi
guest="$arch/$series"
tag="qemu-test $guest"
summary guest "$guest"

# Per architecture: qemu, its package, machine options, console, uname -m.
case "$arch" in
amd64)
	qemu=qemu-system-x86_64 qemu_deb=qemu-system-x86 console=ttyS0 umachine=x86_64 img_name=vmlinuz
	machine=(-cpu max -device "isa-debug-exit,iobase=0xf4,iosize=0x04")
	base_timeout=60
	# The default per test binary: percpu takes about 90s here, and its
	# exactness tests wait for aborts up to 8s each.
	base_test_timeout=180
	;;
arm64)
	qemu=qemu-system-aarch64 qemu_deb=qemu-system-arm console=ttyAMA0 umachine=aarch64 img_name=Image
	# pauth-impdef: QEMU's default pointer authentication algorithm is
	# emulated about 3x slower.
	machine=(-M virt -cpu "max,pauth-impdef=on")
	base_timeout=120
	# TCG runs arm64 code several times slower than amd64 code. With both
	# arm64 guests on the two host cores, percpu took 280-370s on the
	# development machine and ran past 460s on the CI machine (2026-12-02,
	# before its TCG budgets were cut: see untilBatch in percpu's tests).
	# The limit catches hangs; a run that passes never waits for it.
	base_test_timeout=600
	;;
*) die "--arch $arch: want amd64 or arm64" ;;
esac

# Per kernel series: the package name pattern (an extended regexp, whole
# name), the suites that carry it, where the image lies in the .deb, and what
# the kernel reports for rseq (the guest's GORSEQ_EXPECT_*).
mirror="${GORSEQ_QEMU_MIRROR:-http://deb.debian.org/debian}"
secmirror="${GORSEQ_QEMU_SECURITY_MIRROR:-http://deb.debian.org/debian-security}"
custom_kernel=
case "$series" in
6.1)
	pkg_re="linux-image-6\.1\.0-[0-9]+-$arch"
	suites=("$mirror bookworm" "$mirror bookworm-updates" "$secmirror bookworm-security")
	image_glob='./boot/vmlinuz-*'
	expect=(GORSEQ_EXPECT_AUXV=0 GORSEQ_EXPECT_AREA_SIZE=32 GORSEQ_EXPECT_SLICE_EXTENSION=false)
	;;
6.12)
	pkg_re="linux-image-6\.12\.[0-9]+\+deb12(\.[0-9]+)?-$arch"
	suites=("$mirror bookworm" "$mirror bookworm-updates" "$secmirror bookworm-security")
	image_glob='./boot/vmlinuz-*'
	expect=(GORSEQ_EXPECT_AUXV=1 GORSEQ_EXPECT_FEATURE_SIZE=28 GORSEQ_EXPECT_ALIGN=32
		GORSEQ_EXPECT_AREA_SIZE=32 GORSEQ_EXPECT_SLICE_EXTENSION=false)
	;;
7.[0-9] | 7.[0-9][0-9])
	pkg_re="linux-binary-${series//./\\.}\.[0-9]+\+deb13-$arch"
	suites=("$mirror trixie-backports")
	image_glob='./usr/lib/modules/*/vmlinuz'
	# Debian builds 7.x without CONFIG_RSEQ_SLICE_EXTENSION; the kernel
	# enforces the read-only fields of areas longer than 32 bytes (6.19+).
	expect=(GORSEQ_EXPECT_AUXV=1 GORSEQ_EXPECT_FEATURE_SIZE=33 GORSEQ_EXPECT_ALIGN=64
		GORSEQ_EXPECT_AREA_SIZE=64 GORSEQ_EXPECT_SLICE_EXTENSION=false GORSEQ_EXPECT_RO_ENFORCED=1)
	;;
7.[0-9]-slice | 7.[0-9][0-9]-slice)
	# Not a Debian package: Debian's sources built with the extension
	# (.ci/kernel/build.sh), which Linux 7.3 offers on x86 only (it needs
	# GENERIC_ENTRY, which arm64 does not select).
	[ "$arch" = amd64 ] || die "--kernel $series: amd64 only (CONFIG_RSEQ_SLICE_EXTENSION needs GENERIC_ENTRY, which arm64 lacks in 7.x)"
	custom_kernel=1
	expect=(GORSEQ_EXPECT_AUXV=1 GORSEQ_EXPECT_FEATURE_SIZE=33 GORSEQ_EXPECT_ALIGN=64
		GORSEQ_EXPECT_AREA_SIZE=64 GORSEQ_EXPECT_SLICE_EXTENSION=true GORSEQ_EXPECT_RO_ENFORCED=1)
	;;
*) die "--kernel $series: want 6.1, 6.12, 7.N or 7.N-slice" ;;
esac

cache="${GORSEQ_QEMU_CACHE:-${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/gorseq-qemu}"
test_timeout="${GORSEQ_QEMU_TEST_TIMEOUT:-$base_test_timeout}"
case "$test_timeout" in
'' | *[!0-9]*) die "GORSEQ_QEMU_TEST_TIMEOUT=$test_timeout: want whole seconds" ;;
esac
[ "$test_timeout" -ge 30 ] || die "GORSEQ_QEMU_TEST_TIMEOUT=$test_timeout: want at least 30 seconds"
smp="${GORSEQ_QEMU_SMP:-2}"
mem="${GORSEQ_QEMU_MEM:-1G}"
host_arch=$(go env GOHOSTARCH 2>/dev/null || echo unknown)
accel="${GORSEQ_QEMU_ACCEL:-tcg}"
mkdir -p "$cache"

work=$(mktemp -d "${TMPDIR:-/tmp}/gorseq-qemu.XXXXXX")
if [ -n "${GORSEQ_QEMU_KEEP:-}" ]; then
	log "keeping $work (initrd, console log)"
else
	trap 'rm -rf "$work"' EXIT
fi

# --- qemu -------------------------------------------------------------------
install_qemu() {
	command -v "$qemu" >/dev/null && return 0 # another guest's run was first
	log "apt-get update (system sources, to install $qemu_deb)"
	DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 update -qq >&2 || die "apt-get update failed"
	log "installing $qemu_deb"
	DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "$qemu_deb" >&2 ||
		die "installing $qemu_deb failed"
	command -v "$qemu" >/dev/null || die "$qemu_deb installed no $qemu"
}
if ! command -v "$qemu" >/dev/null; then
	# One installation at a time when guests run side by side (qemu-matrix.sh).
	exec 9>"$cache/.install.lock"
	flock 9
	install_qemu
	exec 9>&-
fi
command -v timeout >/dev/null || die "timeout(1) missing (coreutils)"

# --- kernel -----------------------------------------------------------------
# The private apt configuration: its own sources list (only the suites of this
# series, only this architecture), lists, caches and trust; the system's
# configuration files (proxies etc.) still apply. Made on first use.
keyring="${GORSEQ_QEMU_APT_KEYRING:-/usr/share/keyrings/debian-archive-keyring.gpg}"
aptdir="$work/apt"
apt_opts=(
	-o "Dir::Etc::SourceList=$aptdir/sources.list"
	-o "Dir::Etc::SourceParts=$aptdir/sources.list.d"
	-o "Dir::Etc::Preferences=$aptdir/preferences"
	-o "Dir::Etc::PreferencesParts=$aptdir/preferences.d"
	-o "Dir::Etc::Trusted=$aptdir/trusted.gpg"
	-o "Dir::Etc::TrustedParts=$aptdir/trusted.gpg.d"
	-o "Dir::State::Lists=$aptdir/lists"
	-o "Dir::Cache=$aptdir/cache"
	-o "APT::Architecture=$arch"
	-o "APT::Architectures=$arch"
	-o "Acquire::Languages=none"
	-o "Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false"
	-o "Acquire::IndexTargets::deb::DEP-11-icons-small::DefaultEnabled=false"
	-o "Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled=false"
	-o "APT::Sandbox::User=root"
)
apt_ready=
private_apt() {
	[ -z "$apt_ready" ] || return 0
	[ -s "$keyring" ] || die "keyring $keyring missing (package debian-archive-keyring; or set GORSEQ_QEMU_APT_KEYRING)"
	mkdir -p "$aptdir"/{sources.list.d,preferences.d,trusted.gpg.d,lists/partial,cache/archives/partial}
	local s
	for s in "${suites[@]}"; do
		printf 'deb [arch=%s signed-by=%s] %s main\n' "$arch" "$keyring" "$s"
	done >"$aptdir/sources.list"
	log "apt-get update (private: ${suites[*]##* } for $arch, verified with $keyring)"
	# --error-on=any: a Release file that fails verification, or an index that
	# cannot be fetched, is an error, not a warning.
	if ! apt-get "${apt_opts[@]}" -q --error-on=any update >"$aptdir/update.log" 2>&1; then
		cat "$aptdir/update.log" >&2
		die "private apt-get update failed (a NO_PUBKEY error means $keyring cannot verify the suite: install a newer debian-archive-keyring or set GORSEQ_QEMU_APT_KEYRING; verification is never turned off)"
	fi
	apt_ready=1
}

# newest_pkg: the newest real package matching pkg_re in the private lists
# (by package version, as dpkg orders them).
newest_pkg() {
	private_apt
	local names best="" bestv="" p v
	names=$(apt-cache "${apt_opts[@]}" search --names-only "^${pkg_re}\$" | awk '{print $1}')
	[ -n "$names" ] || return 0
	# shellcheck disable=SC2086 # one name per word
	while read -r p v; do
		if [ -z "$best" ] || dpkg --compare-versions "$v" gt "$bestv"; then
			best=$p bestv=$v
		fi
	done < <(apt-cache "${apt_opts[@]}" show --no-all-versions $names |
		awk '/^Package:/ {p=$2} /^Version:/ {print p, $2}')
	printf '%s\n' "$best"
}

# newest_cached: the newest cached package of the series (by the version file).
newest_cached() {
	local d p v best="" bestv=""
	for d in "$cache"/*/; do
		p=$(basename "$d")
		[[ "$p" =~ ^${pkg_re}$ ]] || continue
		[ -s "$d/$img_name" ] || continue
		v=$(cat "$d/version" 2>/dev/null) || continue
		if [ -z "$best" ] || dpkg --compare-versions "$v" gt "$bestv"; then
			best=$p bestv=$v
		fi
	done
	printf '%s\n' "$best"
}

if [ -n "$custom_kernel" ]; then
	# Built from source once, then cached (minutes on a fresh machine).
	log "kernel: .ci/kernel/build.sh $series (the cached image, else a build)"
	kdir=$(bash .ci/kernel/build.sh "$series") || die ".ci/kernel/build.sh $series failed"
	kpkg=$(basename "$kdir")
	kimage="$kdir/$img_name"
	[ -s "$kimage" ] || die ".ci/kernel/build.sh left no $kimage"
else # the Debian packages, down to the matching fi
series_var="GORSEQ_QEMU_KERNEL_PKG_${arch^^}_${series//./_}"
kpkg="${!series_var:-${GORSEQ_QEMU_KERNEL_PKG:-}}"
if [ -n "$kpkg" ]; then
	[[ "$kpkg" =~ ^${pkg_re}$ ]] || log "warning: $kpkg does not look like a $series package for $arch ($pkg_re)"
else
	if [ -z "${GORSEQ_QEMU_REFRESH:-}" ]; then
		kpkg=$(newest_cached)
	fi
	if [ -z "$kpkg" ]; then
		private_apt
		kpkg=$(newest_pkg)
		[ -n "$kpkg" ] || die "no package matching $pkg_re in ${suites[*]}"
		log "newest package of the series: $kpkg"
	fi
fi
case "$kpkg" in
linux-image-* | linux-binary-*) ;;
*) die "kernel package $kpkg is not a linux-image-* or linux-binary-* package" ;;
esac
kdir="$cache/$kpkg"
kimage="$kdir/$img_name"
if [ ! -s "$kimage" ]; then
	private_apt
	log "downloading $kpkg (only its kernel image is kept, in $kdir; nothing is installed)"
	dl="$work/dl"
	mkdir -p "$dl"
	(cd "$dl" && apt-get "${apt_opts[@]}" -q download "$kpkg" >&2) || die "apt-get download $kpkg failed"
	debs=("$dl"/*.deb)
	deb=${debs[0]}
	[ -f "$deb" ] || die "apt-get download $kpkg left no .deb"
	version=$(dpkg-deb -f "$deb" Version)
	# Like dpkg -x, but only the kernel image (not hundreds of MB of modules).
	mkdir "$dl/x"
	dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$dl/x" --wildcards "$image_glob" ||
		die "extracting $image_glob from $deb failed"
	# shellcheck disable=SC2206 # the glob is meant to expand
	images=("$dl"/x/$image_glob)
	img=${images[0]}
	[ -f "$img" ] || die "$kpkg holds no $image_glob"
	case "$image_glob" in
	./boot/*) release=$(basename "$img"); release=${release#vmlinuz-} ;;
	*) release=$(basename "$(dirname "$img")") ;;
	esac
	# qemu's -kernel wants the plain arm64 Image; Debian's may be compressed.
	if [ "$arch" = arm64 ]; then
		case "$(od -An -tx1 -N4 "$img" | tr -d ' ')" in
		1f8b*) log "decompressing the gzip'ed image"; gzip -dc <"$img" >"$img.raw" && mv "$img.raw" "$img" ;;
		28b52ffd) log "decompressing the zstd'ed image"; zstd -qdc <"$img" >"$img.raw" && mv "$img.raw" "$img" ;;
		fd377a58) log "decompressing the xz'ed image"; xz -dc <"$img" >"$img.raw" && mv "$img.raw" "$img" ;;
		esac
		[ "$(od -An -c -j56 -N4 "$img" | tr -d ' ')" = ARMd ] ||
			die "$kpkg: $image_glob is not an arm64 Image (no ARMd magic at offset 56)"
	fi
	mkdir -p "$kdir"
	printf '%s\n' "$version" >"$kdir/version"
	printf '%s\n' "$release" >"$kdir/release"
	cp "$img" "$kimage.tmp.$$" && mv "$kimage.tmp.$$" "$kimage"
	rm -rf "$dl"
fi
fi # Debian packages
kver=$(cat "$kdir/version" 2>/dev/null || echo unknown)
krel=$(cat "$kdir/release" 2>/dev/null || echo "${kpkg#linux-*-}")
log "kernel: $kpkg $kver (release $krel)"
summary release "$krel"
summary package "$kpkg $kver"

# --- build ------------------------------------------------------------------
mkdir -p "$work/tests"
# The packer runs here; everything else runs in the guest: static, GOARCH=arch.
go build -o "$work/mkinitramfs" ./internal/qemuinit/mkinitramfs || die "building mkinitramfs failed"
export CGO_ENABLED=0 GOOS=linux GOARCH="$arch"

# Helper programs for the tests that build them at test time.
prebuilt_pkgs=" inspect torture cmd_rseq "
have_prebuilt=
if [ -f .ci/prebuild.sh ]; then
	log "building helper programs: .ci/prebuild.sh $arch $work/prebuilt"
	mkdir -p "$work/prebuilt"
	# Under the install lock: the script may install a cross compiler, and
	# guests run side by side (qemu-matrix.sh).
	(
		unset CGO_ENABLED GOOS GOARCH
		flock 9
		bash .ci/prebuild.sh "$arch" "$work/prebuilt" >&2
	) 9>"$cache/.install.lock" || die ".ci/prebuild.sh $arch failed"
	have_prebuilt=1
	log "helper programs: $(cd "$work/prebuilt" && find . -type f | sed 's|^\./||' | sort | tr '\n' ' ')"
fi

modpath=$(go list -m)
specs=()
names=()
skipped=()
for pkg in "${pkgs[@]}"; do
	# A PKG that is a directory may belong to another module (built there);
	# anything else is a package pattern of this module.
	if [ -d "$pkg" ]; then
		dir=$(cd "$pkg" && pwd)
	else
		dir=$(go list -e -f '{{.Dir}}' "$pkg") || die "go list $pkg failed"
		[ "$(printf '%s\n' "$dir" | wc -l)" -eq 1 ] || die "$pkg names several packages: list them one by one"
		[ -n "$dir" ] || die "go list $pkg: no such package"
	fi
	ipath=$(go -C "$dir" list -e -f '{{.ImportPath}}' .) || die "go list in $dir failed"
	if [ "$ipath" = "$modpath" ]; then
		name=$(basename "$modpath")
	elif [[ "$ipath" == "$modpath/"* ]]; then
		name=${ipath#"$modpath/"}
	else
		name=$(basename "$ipath")
	fi
	name=${name//\//_}
	# No test files for this GOARCH (e.g. build tags linux && amd64): skip
	# visibly rather than fail.
	ntests=$(go -C "$dir" list -e -f '{{len .TestGoFiles}} {{len .XTestGoFiles}}' . | awk '{print $1 + $2}')
	if [ "${ntests:-0}" -eq 0 ]; then
		log "SKIPPED $ipath: no test files for linux/$arch"
		skipped+=("$name")
		summary skip "$name" "no test files for linux/$arch"
		continue
	fi
	if [[ "$prebuilt_pkgs" == *" $name "* ]] && [ -z "$have_prebuilt" ]; then
		log "SKIPPED $ipath: its tests build helper programs (gcc, go) the guest lacks, and .ci/prebuild.sh (GORSEQ_PREBUILT) does not exist yet"
		skipped+=("$name")
		summary skip "$name" "no .ci/prebuild.sh for its helper programs"
		continue
	fi
	[ ! -e "$work/tests/$name" ] || die "two packages map to the test name $name"
	mkdir -p "$work/tests/$name"
	log "building test binary $ipath (linux/$arch)"
	go -C "$dir" test -c -o "$work/tests/$name/$name.test" . >&2 || die "go test -c $ipath (linux/$arch) failed"
	if [ ! -f "$work/tests/$name/$name.test" ]; then
		log "SKIPPED $ipath: no test binary (no test files)"
		rmdir "$work/tests/$name"
		skipped+=("$name")
		summary skip "$name" "no test binary for linux/$arch"
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
if [ -n "$have_prebuilt" ]; then
	specs+=("prebuilt=$work/prebuilt")
fi
"$work/mkinitramfs" -o "$work/initrd" -init "$work/init" "tests/args=$work/args" "${specs[@]}" ||
	die "packing the initramfs failed"
log "initramfs: $(du -h "$work/initrd" | cut -f1) with ${names[*]}${have_prebuilt:+ and /prebuilt}"

# --- boot -------------------------------------------------------------------
# Enough for the boot and every binary running into its guest-side limit.
host_timeout="${GORSEQ_QEMU_TIMEOUT:-$((base_timeout + ${#names[@]} * (test_timeout + 20)))}"
env=(GORSEQ_QEMU=1 "GORSEQ_QEMU_ARCH=$arch" "GORSEQ_QEMU_KERNEL=$krel" GORSEQ_EXPECT_OPERATIONS=1 "${expect[@]}")
[ -z "$have_prebuilt" ] || env+=(GORSEQ_PREBUILT=/prebuilt)
env+=("GORSEQ_QEMU_TEST_TIMEOUT=${test_timeout}s")
[ "$arch" != amd64 ] || env+=(GORSEQ_QEMU_DEBUG_EXIT=0xf4)
append="console=$console quiet panic=-1 ${env[*]}${GORSEQ_QEMU_APPEND:+ $GORSEQ_QEMU_APPEND}"
if [ "$accel" = tcg ]; then
	accel_opt=tcg
else
	[ "$host_arch" = "$arch" ] || die "GORSEQ_QEMU_ACCEL=$accel: only tcg can run an $arch guest on $host_arch"
	accel_opt=$accel
fi
log "booting $kpkg under $qemu ($accel_opt, $smp CPUs, $mem), limit ${host_timeout}s"
log "guest environment: ${env[*]}"
read -r -a extra <<<"${GORSEQ_QEMU_ARGS:-}"
start=$(date +%s)
set +e
timeout -k 10 "$host_timeout" "$qemu" \
	-nographic -no-reboot -m "$mem" -smp "$smp" -accel "$accel_opt" -nic none \
	"${machine[@]}" \
	-kernel "$kimage" -initrd "$work/initrd" -append "$append" \
	${extra[@]+"${extra[@]}"} \
	</dev/null 2>&1 | tee "$work/console.raw" |
	sed -u -e 's/\x1bc//g' -e 's/\x1b\[[0-9;?]*[A-Za-z]//g' -e 's/\r$//'
qemu_rc=${PIPESTATUS[0]}
set -e
elapsed=$(($(date +%s) - start))
sed -e 's/\x1bc//g' -e 's/\x1b\[[0-9;?]*[A-Za-z]//g' -e 's/\r//g' "$work/console.raw" >"$work/console"
summary time "$elapsed"

# --- verdict ----------------------------------------------------------------
fail=0
reasons=()
failed() { # failed REASON: the guest fails, for this reason
	echo "FAIL: $*"
	reasons+=("$*")
	fail=1
}
echo
echo "=== qemu-test summary: $guest, $kpkg $kver, ${elapsed}s, qemu exit $qemu_rc"
kline=$(grep -oE 'QEMU-TEST-KERNEL .*' "$work/console" | tail -n1 || true)
iline=$(grep -oE 'QEMU-TEST-INFO .*' "$work/console" | tail -n1 || true)
[ -z "$kline" ] || echo "$kline"
[ -z "$iline" ] || echo "$iline"

# What the guest reported must be what was meant to boot.
if [ -n "$kline" ]; then
	[[ "$kline" == *" release=$krel "* ]] || failed "guest runs $(sed -E 's/.* release=([^ ]*).*/\1/' <<<"$kline"), not $krel"
	[[ "$kline" == *" machine=$umachine "* ]] || failed "guest machine is not $umachine: $kline"
fi
if [ -n "$iline" ]; then
	want_size=absent want_align=absent
	for e in "${expect[@]}"; do
		case "$e" in
		GORSEQ_EXPECT_FEATURE_SIZE=*) want_size=${e#*=} ;;
		GORSEQ_EXPECT_ALIGN=*) want_align=${e#*=} ;;
		esac
	done
	[[ "$iline" == *" AT_RSEQ_FEATURE_SIZE=$want_size "* ]] || failed "expected AT_RSEQ_FEATURE_SIZE=$want_size: $iline"
	[[ "$iline" == *" AT_RSEQ_ALIGN=$want_align "* ]] || failed "expected AT_RSEQ_ALIGN=$want_align: $iline"
	[[ "$iline" == *"rseq(NULL,0,0,0)=EINVAL"* ]] || failed "the rseq probe did not return EINVAL (no rseq?): $iline"
fi

# Per binary: its result line, and the -test.v counts of the output since the
# previous result line (top-level tests only: "--- X:" at the line start).
awk '
	/^--- PASS: / { p++ } /^--- FAIL: / { f++ } /^--- SKIP: / { s++ }
	/^testing: warning: no tests to run/ { none = 1 }
	/QEMU-TEST-RESULT [^ ]+ exit=/ {
		sub(/.*QEMU-TEST-RESULT /, "")
		print $1, p + 0, f + 0, s + 0, none + 0
		p = f = s = none = 0
	}
' "$work/console" >"$work/counts"
total_p=0 total_f=0 total_s=0
for n in "${names[@]}"; do
	line=$(grep -F "QEMU-TEST-RESULT $n exit=" "$work/console" | tail -n1 || true)
	read -r _ p f s none < <(grep -E "^$n " "$work/counts" | tail -n1 || echo "$n 0 0 0 0") || true
	total_p=$((total_p + p)) total_f=$((total_f + f)) total_s=$((total_s + s))
	counts="pass=$p fail=$f skip=$s"
	[ "$none" -eq 0 ] || counts+=" (no tests to run)"
	[ "$((p + f + s))" -gt 0 ] || [ "$none" -ne 0 ] || [ -z "$line" ] || counts+=" (no test ran)"
	if [ -z "$line" ]; then
		echo "FAIL $n: no result line (guest crashed, hung or was cut off)"
		reasons+=("$n: no result")
		summary bin "$n" FAIL "$p" "$f" "$s" "-" "no result line"
		fail=1
		continue
	fi
	res=${line#*QEMU-TEST-RESULT }
	t=$(sed -E 's/.* time=([^ ]*).*/\1/' <<<"$res")
	if [[ "$line" == *"QEMU-TEST-RESULT $n exit=0 "* ]]; then
		echo "ok   $n: $res; $counts"
		summary bin "$n" PASS "$p" "$f" "$s" "$t" "$([ "$none" -eq 0 ] || echo 'no tests to run')"
	else
		echo "FAIL $n: $res; $counts"
		# The first failed test of the binary's output, else its first
		# panic (with the tests that were running, if it timed out), else
		# a FAIL line of its TestMain (the abort ledger's).
		firstfail=$(awk -v n="$n" '
			{ sub(/\r$/, "") }
			/QEMU-TEST-RESULT / { if ($2 == n) { print (ff != "" ? "first failure " ff : pn); exit } ff = pn = ""; rt = nr = 0 }
			/^--- FAIL: / && ff == "" { ff = $3 }
			rt && /^[ \t]+running tests:/ { next }
			rt && /^[ \t]+Test/ { sub(/^[ \t]+/, ""); pn = pn (nr++ ? ", " : "; running ") $0; next }
			{ rt = 0 }
			/^panic: / && pn == "" { pn = substr($0, 1, 100); rt = /test timed out/ }
			/^FAIL: / && pn == "" { pn = substr($0, 1, 200) }' "$work/console")
		why="${res#"$n "}${firstfail:+, $firstfail}"
		# What the failed tests said (their t.Error and t.Fatal lines,
		# the FAIL lines and any panic), the last 30 lines of it: the
		# matrix prints it under its table, where a CI excerpt sees it.
		# Lines are kept per top-level test (from its === RUN on) and
		# printed when it fails.
		detail=$(awk -v n="$n" '
			{ sub(/\r$/, "") }
			/QEMU-TEST-RESULT / { if ($2 == n) exit; out = cur = ""; after = 0; next }
			after && /^[ \t]/ { if (/--- FAIL: / || /_test\.go:[0-9]+: / || /^        /) out = out $0 "\n"; next }
			{ after = 0 }
			/^=== RUN   [^\/]+$/ { cur = "" }
			/^[ \t]+[A-Za-z0-9_]+_test\.go:[0-9]+: / || /^        / { cur = cur $0 "\n" }
			/^--- FAIL: / { out = out cur $0 "\n"; cur = ""; after = 1 }
			/^panic: / { out = out $0 "\n" }
			/^FAIL: / || /^qemu: aborts over the run/ { out = out $0 "\n" }
			END { printf "%s", out }' "$work/console" | tail -n 30)
		if [ -n "$detail" ]; then
			echo "--- what $n's failed tests said (last 30 lines):"
			echo "$detail"
			[ -z "$summary_file" ] || printf '%s\n' "$detail" >"$summary_file.$n.detail"
		fi
		reasons+=("$n: $why")
		summary bin "$n" FAIL "$p" "$f" "$s" "$t" "$why"
		fail=1
	fi
done
for n in ${skipped[@]+"${skipped[@]}"}; do
	echo "skip $n: not run in this guest (see the log above)"
done
end=$(grep -oE 'QEMU-TEST-END pass=[0-9]+ fail=[0-9]+$' "$work/console" | tail -n1 || true)
if [ -z "$end" ]; then
	# Say why: a kernel panic or oops, init dying, or the time limit.
	why=$(grep -m1 -oE '(Kernel panic - not syncing:.*|Attempted to kill init.*|Internal error:.*|BUG: .*|Unable to handle kernel .*|fatal error: .*|panic: .*)' "$work/console" || true)
	case $qemu_rc in
	124 | 137) why="timed out after ${host_timeout}s${why:+; $why}" ;;
	esac
	[ -n "$why" ] || why="last console line: $(grep -v '^\s*$' "$work/console" | tail -n1 | cut -c1-160)"
	failed "no QEMU-TEST-END line (the guest did not finish): $why"
elif [[ "$end" != *" fail=0" ]]; then
	failed "$end"
fi
case $arch/$qemu_rc in
amd64/1) ;;   # isa-debug-exit with 0: the guest reported success
*/0) ;;       # powered off without the debug-exit device: markers decide
amd64/3) failed "the guest reported failure through isa-debug-exit" ;;
*/124 | */137) [ -z "$end" ] || failed "timed out after ${host_timeout}s" ;;
*) failed "qemu exited with status $qemu_rc" ;;
esac
summary counts "$total_p" "$total_f" "$total_s"
if [ $fail -ne 0 ]; then
	summary status FAIL
	summary reason "$(printf '%s; ' "${reasons[@]}" | sed 's/; $//')"
	echo "qemu-test $guest: FAILED"
	exit 1
fi
summary status PASS
echo "qemu-test $guest: PASS"
