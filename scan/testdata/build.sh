#!/bin/sh
# Rebuilds the committed test binaries of the rseq scan package from the
# sources in src/. Needs Debian's gcc and cross compilers:
#   apt-get install gcc gcc-aarch64-linux-gnu gcc-i686-linux-gnu gcc-s390x-linux-gnu
# The tests use the committed binaries, so CI needs none of this; the
# x86-64 ones are also rebuilt with gcc by the tests when gcc is present.
set -eu
cd "$(dirname "$0")"
src=src
common="-O1 -fno-asynchronous-unwind-tables -Wl,--build-id=none -Wl,-z,max-page-size=4096 -Wl,-z,norelro"
bare="$common -nostdlib -static"
lib="$common -nostdlib -shared -fPIC -DNO_START"

# x86-64 with glibc: a PIE (the default) and a fixed-address executable.
gcc $common -o good_x86_64 $src/good_x86_64.c
gcc $common -no-pie -o good_x86_64_nopie $src/good_x86_64.c
gcc $common -o bad_x86_64 $src/bad_x86_64.c
gcc $common -o legacy_x86_64 $src/legacy_x86_64.c

# arm64: static, shared library, and big-endian static.
aarch64-linux-gnu-gcc $bare -o good_aarch64 $src/good_aarch64.c
aarch64-linux-gnu-gcc $lib -Wl,--no-apply-dynamic-relocs -o good_aarch64.so $src/good_aarch64.c
aarch64-linux-gnu-gcc $bare -mbig-endian -o good_aarch64_be $src/good_aarch64.c
aarch64-linux-gnu-gcc $bare -o bad_aarch64 $src/bad_aarch64.c

# i386 (32-bit little-endian): static and shared library.
i686-linux-gnu-gcc $bare -o good_i386 $src/good_i386.c
i686-linux-gnu-gcc $lib -o good_i386.so $src/good_i386.c
i686-linux-gnu-gcc $bare -o bad_i386 $src/bad_i386.c

# s390x (64-bit big-endian): static and shared library.
s390x-linux-gnu-gcc $bare -o good_s390x $src/good_s390x.c
s390x-linux-gnu-gcc $lib -o good_s390x.so $src/good_s390x.c
s390x-linux-gnu-gcc $bare -o bad_s390x $src/bad_s390x.c
