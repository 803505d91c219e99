#!/usr/bin/env bash
# .ci/kernel/build.sh: build (once) and cache the kernel of a custom qemu
# guest, and print the cache directory that holds it. Debian builds no
# kernel with CONFIG_RSEQ_SLICE_EXTENSION (the rseq time-slice extension,
# Linux 7.0+), so the "7.N-slice" guests of .ci/qemu-test.sh boot one built
# here from Debian's own sources (the linux-source-7.N package).
#
# Usage: .ci/kernel/build.sh [--check] [SERIES]
#
#   SERIES   7.N-slice (default 7.3-slice): linux-source-7.N, configured with
#            `make tinyconfig` plus the fragment .ci/kernel/slice.config,
#            for x86-64 (arm64 cannot have the extension in 7.3: the option
#            needs GENERIC_ENTRY, which arm64 does not select).
#   --check  only say whether the image is cached (exit 0) or not (exit 1).
#
# The image of the default series is also committed, with its config and
# checksums, in .ci/kernel/prebuilt/7.3-slice-amd64/ (about 1.7 MB): where
# the cache has no image of the current hash, that one is copied in when its
# recorded hash matches (a fresh CI machine boots the guest without
# building). After a change of the fragment or the recipe, rebuild and copy
# the new cache directory's files there (plus `hash` and SHA256SUMS).
#
# The image is cached in
#
#   CACHE/gorseq-linux-SERIES-amd64-<config hash>-<source version>/
#       vmlinuz   the bzImage (about 2 MB)
#       version   the source package's version (e.g. 7.3.4-1~bpo13+1)
#       release   uname -r of the kernel (e.g. 7.3.4-gorseq-slice)
#       config    the full .config it was built with
#       fragment  the fragment, as merged
#       build     how long the build took, on how many CPUs, with which gcc
#
# keyed by a hash of what decides the build (the fragment, this script's
# build recipe, the architecture) and the source version. A cached image of
# the current hash is used as it is, without network: the newest source
# version among the cached ones. Nothing is rebuilt unless the fragment or
# the recipe change, or GORSEQ_QEMU_REFRESH asks for a newer source package.
#
# Sources, in this order:
#   GORSEQ_KERNEL_SOURCE    a linux-source tarball (.tar.xz); its version is
#                           GORSEQ_KERNEL_SOURCE_VERSION, else the tarball's
#                           Makefile release followed by "-local"
#   /usr/src/linux-source-7.N.tar.xz, where the package is installed (its
#                           dpkg version)
#   else the package linux-source-7.N, downloaded (never installed) from
#   trixie-backports through a private apt configuration like
#   .ci/qemu-test.sh's (own sources list, lists and cache in a temporary
#   directory, Release files verified with the Debian archive keyring).
#
# Needs (installed with apt-get when missing, as root): gcc, make, bc,
# bison, flex, libelf-dev, libssl-dev, xz-utils. The build runs in a
# temporary directory (about 1.6 GB) that is removed afterwards.
#
# Environment:
#   GORSEQ_QEMU_CACHE        cache dir (default ${XDG_CACHE_HOME:-$HOME/.cache}/gorseq-qemu)
#   GORSEQ_QEMU_REFRESH      non-empty: look up the newest source package even
#                            when an image is cached (rebuild if newer)
#   GORSEQ_KERNEL_JOBS       make -j (default: the number of CPUs)
#   GORSEQ_QEMU_MIRROR, GORSEQ_QEMU_APT_KEYRING   as for .ci/qemu-test.sh
#
# Measured on the 2-core CI machine (shared): about 7 minutes from the
# tarball (extraction 40 s, configuration 40 s, make bzImage 5 to 6 min);
# the download of linux-source-7.3 (160 MB) adds what the network takes.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
here=.ci/kernel
log() { printf 'kernel/build.sh: %s\n' "$*" >&2; }
die() {
	log "FAIL: $*"
	exit 1
}

check_only=
series=7.3-slice
while [ $# -gt 0 ]; do
	case "$1" in
	--check) check_only=1 ;;
	-h | --help)
		sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'
		exit 0
		;;
	-*) die "unknown option $1 (see --help)" ;;
	*) series=$1 ;;
	esac
	shift
done
case "$series" in
7.[0-9]-slice | 7.[0-9][0-9]-slice) ;;
*) die "series $series: want 7.N-slice (e.g. 7.3-slice)" ;;
esac
kseries=${series%-slice}
srcpkg=linux-source-$kseries
fragment=$here/slice.config
[ -f "$fragment" ] || die "$fragment missing"
arch=amd64 karch=x86_64
localversion=-gorseq-slice

# The build recipe: what decides the kernel besides the source. Changing
# any of it changes the hash, and so the cache directory.
recipe="arch=$karch base=tinyconfig localversion=$localversion recipe=1"
hash=$( (printf '%s\n' "$recipe"; cat "$fragment") | sha256sum | cut -c1-12)
cache="${GORSEQ_QEMU_CACHE:-${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/gorseq-qemu}"
prefix="gorseq-linux-$series-$arch-$hash-"
mkdir -p "$cache"

# newest_cached: the cached directory of this hash with the newest version.
newest_cached() {
	local d v best="" bestv=""
	for d in "$cache/$prefix"*/; do
		[ -s "$d/vmlinuz" ] && [ -s "$d/release" ] || continue
		v=$(cat "$d/version" 2>/dev/null) || continue
		if [ -z "$best" ] || dpkg --compare-versions "$v" gt "$bestv"; then
			best=${d%/} bestv=$v
		fi
	done
	printf '%s\n' "$best"
}

# One build at a time (qemu-matrix.sh runs guests side by side).
exec 8>"$cache/.kernel-build.lock"
flock 8

# seed_prebuilt: copy the image committed in $here/prebuilt/SERIES-ARCH into
# the cache, when it was built from this recipe (its hash file says which)
# and its checksums hold. A fresh CI machine then boots the guest without
# the build, which takes longer than the CI budget leaves.
seed_prebuilt() {
	local src=$here/prebuilt/$series-$arch v dst
	[ -f "$src/SHA256SUMS" ] || return 0
	if [ "$(cat "$src/hash" 2>/dev/null)" != "$hash" ]; then
		log "prebuilt image in $src is of another recipe (hash $(cat "$src/hash" 2>/dev/null), want $hash): not used"
		return 0
	fi
	(cd "$src" && sha256sum --quiet -c SHA256SUMS) || die "prebuilt image in $src: checksums do not match SHA256SUMS"
	v=$(cat "$src/version")
	dst=$cache/$prefix$v
	rm -rf "$dst.tmp"
	mkdir -p "$dst.tmp"
	cp "$src"/vmlinuz "$src"/version "$src"/release "$src"/config "$src"/fragment "$src"/build "$dst.tmp"/
	rm -rf "$dst"
	mv "$dst.tmp" "$dst"
	log "using the prebuilt image of $series ($v) from $src"
}

cached=$(newest_cached)
if [ -z "$cached" ]; then
	seed_prebuilt
	cached=$(newest_cached)
fi
if [ -n "$check_only" ]; then
	if [ -n "$cached" ]; then
		printf '%s\n' "$cached"
		exit 0
	fi
	log "no cached image for $series (hash $hash)"
	exit 1
fi
if [ -n "$cached" ] && [ -z "${GORSEQ_QEMU_REFRESH:-}" ]; then
	printf '%s\n' "$cached"
	exit 0
fi

# --- the source ---------------------------------------------------------
work=$(mktemp -d "${TMPDIR:-/tmp}/gorseq-kernel.XXXXXX")
trap 'rm -rf "$work"' EXIT
start=$(date +%s)

tarball= version=
if [ -n "${GORSEQ_KERNEL_SOURCE:-}" ]; then
	tarball=$GORSEQ_KERNEL_SOURCE
	[ -f "$tarball" ] || die "GORSEQ_KERNEL_SOURCE=$tarball: no such file"
	version=${GORSEQ_KERNEL_SOURCE_VERSION:-}
elif [ -f "/usr/src/$srcpkg.tar.xz" ] && v=$(dpkg-query -W -f '${Version}' "$srcpkg" 2>/dev/null) && [ -n "$v" ]; then
	tarball=/usr/src/$srcpkg.tar.xz version=$v
else
	# The private apt configuration of .ci/qemu-test.sh, for the one
	# package (Architecture: all).
	keyring="${GORSEQ_QEMU_APT_KEYRING:-/usr/share/keyrings/debian-archive-keyring.gpg}"
	mirror="${GORSEQ_QEMU_MIRROR:-http://deb.debian.org/debian}"
	[ -s "$keyring" ] || die "keyring $keyring missing (package debian-archive-keyring; or set GORSEQ_QEMU_APT_KEYRING)"
	aptdir=$work/apt
	mkdir -p "$aptdir"/{sources.list.d,preferences.d,trusted.gpg.d,lists/partial,cache/archives/partial}
	printf 'deb [arch=%s signed-by=%s] %s trixie-backports main\n' "$arch" "$keyring" "$mirror" >"$aptdir/sources.list"
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
	log "apt-get update (private: trixie-backports, verified with $keyring)"
	apt-get "${apt_opts[@]}" -q --error-on=any update >"$aptdir/update.log" 2>&1 || {
		cat "$aptdir/update.log" >&2
		die "private apt-get update failed"
	}
	v=$(apt-cache "${apt_opts[@]}" show --no-all-versions "$srcpkg" 2>/dev/null | awk '/^Version:/ {print $2; exit}')
	[ -n "$v" ] || die "no package $srcpkg in trixie-backports"
	if [ -n "$cached" ] && [ -n "$(cat "$cached/version" 2>/dev/null)" ] &&
		! dpkg --compare-versions "$v" gt "$(cat "$cached/version")"; then
		log "cached image is of $srcpkg $(cat "$cached/version"); the archive has $v: nothing newer"
		printf '%s\n' "$cached"
		exit 0
	fi
	log "downloading $srcpkg $v (nothing is installed)"
	(cd "$work" && apt-get "${apt_opts[@]}" -q download "$srcpkg" >&2) || die "apt-get download $srcpkg failed"
	debs=("$work"/*.deb)
	[ -f "${debs[0]}" ] || die "apt-get download $srcpkg left no .deb"
	version=$(dpkg-deb -f "${debs[0]}" Version)
	mkdir "$work/deb"
	dpkg-deb --fsys-tarfile "${debs[0]}" | tar -x -C "$work/deb" "./usr/src/$srcpkg.tar.xz" ||
		die "extracting usr/src/$srcpkg.tar.xz from ${debs[0]} failed"
	rm -f "${debs[@]}"
	tarball=$work/deb/usr/src/$srcpkg.tar.xz
fi

# --- build tools ----------------------------------------------------------
missing=()
for t in gcc:gcc make:make bc:bc bison:bison flex:flex xz:xz-utils; do
	command -v "${t%%:*}" >/dev/null || missing+=("${t#*:}")
done
[ -f /usr/include/libelf.h ] || missing+=(libelf-dev)
[ -f /usr/include/openssl/ssl.h ] || missing+=(libssl-dev)
if [ ${#missing[@]} -gt 0 ]; then
	log "installing ${missing[*]}"
	DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 update -qq >&2 || die "apt-get update failed"
	DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >&2 ||
		die "installing ${missing[*]} failed"
fi

log "extracting $tarball"
tar -xJf "$tarball" -C "$work" || die "extracting $tarball failed"
src=$(find "$work" -mindepth 1 -maxdepth 1 -type d -name 'linux-source-*' | head -n1)
[ -n "$src" ] && [ -f "$src/Makefile" ] || die "$tarball holds no linux-source-* tree"
if [ -z "$version" ]; then
	version="$(make -s -C "$src" kernelversion)-local"
fi
extracted=$(date +%s)

# --- configuration ---------------------------------------------------------
jobs=${GORSEQ_KERNEL_JOBS:-$(nproc)}
mk=(make -C "$src" -s ARCH="$karch" LOCALVERSION="$localversion" -j"$jobs")
log "configuring: tinyconfig + $fragment"
"${mk[@]}" tinyconfig >/dev/null
(cd "$src" && scripts/kconfig/merge_config.sh -m .config "$OLDPWD/$fragment" >/dev/null) ||
	die "merging $fragment failed"
"${mk[@]}" olddefconfig
# Every option the fragment sets must have survived Kconfig.
bad=()
while IFS= read -r line; do
	case "$line" in
	CONFIG_*=*) grep -qxF "$line" "$src/.config" || bad+=("$line") ;;
	"# CONFIG_"*" is not set")
		name=${line#\# }
		! grep -qE "^${name%% *}=[ym]" "$src/.config" || bad+=("$line")
		;;
	esac
done <"$fragment"
[ ${#bad[@]} -eq 0 ] || die "options of $fragment not in the final .config (unmet dependencies?): ${bad[*]}"
configured=$(date +%s)

# --- build -------------------------------------------------------------------
log "make bzImage ($jobs jobs); the log is kept on failure only"
if ! "${mk[@]}" bzImage >"$work/make.log" 2>&1; then
	tail -n 40 "$work/make.log" >&2
	die "make bzImage failed"
fi
release=$("${mk[@]}" kernelrelease)
end=$(date +%s)

dir="$cache/$prefix$version"
tmpdir="$dir.tmp.$$"
rm -rf "$tmpdir"
mkdir -p "$tmpdir"
cp "$src/arch/x86/boot/bzImage" "$tmpdir/vmlinuz"
cp "$src/.config" "$tmpdir/config"
cp "$fragment" "$tmpdir/fragment"
printf '%s\n' "$version" >"$tmpdir/version"
printf '%s\n' "$release" >"$tmpdir/release"
printf 'total %ss (extract %ss, configure %ss, make %ss), %s jobs on %s CPUs, %s\n' \
	"$((end - start))" "$((extracted - start))" "$((configured - extracted))" "$((end - configured))" \
	"$jobs" "$(nproc)" "$(gcc --version | head -n1)" >"$tmpdir/build"
rm -rf "$dir"
mv "$tmpdir" "$dir"
log "built $release from $srcpkg $version in $((end - start))s: $dir ($(du -h "$dir/vmlinuz" | cut -f1))"
printf '%s\n' "$dir"
