#!/bin/sh
# Install what is missing, build Cairn in release mode in build/, and run it.
# Until the server exists (issue 3) "running Cairn" means cairn-sample: it
# loads sample parameters into a local store (./cairn-data) and lists them
# by path. Extra arguments go to cairn-sample (for example --data-dir DIR).
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

sh tools/install-deps.sh

# meson 1.0.1 reconfigures only a directory that holds a complete build tree;
# a first setup that failed leaves a directory without one.
if [ -f build/meson-private/coredata.dat ]; then
    meson setup --reconfigure --buildtype=release build
else
    meson setup --buildtype=release build
fi
ninja -C build
exec ./build/tools/cairn-sample "$@"
