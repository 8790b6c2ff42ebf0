# CMake toolchain file: cross-compile offbrand for 64-bit ARM (Raspberry Pi
# 3/4/5 with a 64-bit OS) with Debian's cross toolchain and arm64 libraries.
#
#   sudo dpkg --add-architecture arm64 && sudo apt-get update
#   sudo apt-get install g++-aarch64-linux-gnu qemu-user \
#     liblmdb-dev:arm64 libsodium-dev:arm64 libcurl4-openssl-dev:arm64 ...
#   cmake -S . -B build-arm64 -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake \
#     -Dsimdjson_DIR=<unpacked libsimdjson-dev:arm64>/usr/lib/aarch64-linux-gnu/cmake/simdjson
#
# (Debian 12's libsimdjson-dev is not Multi-Arch: same, so its arm64 flavour
# cannot be installed next to the host's; the script unpacks it instead.)
#
# scripts/cross-arm64.sh does all of this (make cross-arm64, make test-arm64).
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

set(CROSS_TRIPLE aarch64-linux-gnu)
set(CMAKE_C_COMPILER ${CROSS_TRIPLE}-gcc)
set(CMAKE_CXX_COMPILER ${CROSS_TRIPLE}-g++)

# Debian multiarch: arm64 libraries live in /usr/lib/aarch64-linux-gnu,
# headers are shared in /usr/include (with arch-specific ones under
# /usr/include/aarch64-linux-gnu, which the cross compiler searches).
set(CMAKE_LIBRARY_ARCHITECTURE ${CROSS_TRIPLE})
set(CMAKE_FIND_ROOT_PATH /usr/${CROSS_TRIPLE} /usr/lib/${CROSS_TRIPLE})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE BOTH)

# pkg-config must see the arm64 .pc files, never the host's.
set(ENV{PKG_CONFIG_LIBDIR} "/usr/lib/${CROSS_TRIPLE}/pkgconfig:/usr/share/pkgconfig")
set(ENV{PKG_CONFIG_PATH} "")
set(ENV{PKG_CONFIG_SYSROOT_DIR} "")

# Tests run under user-mode emulation (ctest and add_test honour this), with
# the multiarch arm64 libc (/lib/ld-linux-aarch64.so.1, from libc6:arm64):
# -L /usr/aarch64-linux-gnu would mix the cross toolchain's older libc with
# the multiarch libstdc++ and hang in pthread_create.
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64;-L;/)
