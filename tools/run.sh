#!/bin/sh
# Install what is missing, build Cairn in release mode in build/, and run
# cairnd in the foreground: a single-node cluster on its embedded defaults
# (data in ./cairn-data, client API on 127.0.0.1:7400, Raft on
# 127.0.0.1:7401). Ctrl-C stops it cleanly. Extra arguments go to cairnd
# (see ./build/tools/cairnd --help).
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
exec ./build/tools/cairnd "$@"
