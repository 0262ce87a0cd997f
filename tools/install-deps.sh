#!/bin/sh
# Install what Cairn needs to build and test on Debian 12 (bookworm).
#
#   tools/install-deps.sh [--bench]
#
# --bench also installs what bench/compare needs to run etcd next to Cairn:
# etcd-server (etcd 3.4), golang-go and golang-etcd-server-dev (etcd's Go
# client sources, to build bench/etcd-bench offline) and curl.
#
# Idempotent and fast on re-runs: when every package is already present
# (and libraft is at least 0.22) it does not touch apt at all, so it also
# works offline. Otherwise it adds bookworm-backports if missing, runs
# apt-get update once and installs only what is missing. libraft comes from
# bookworm-backports: bookworm's own 0.15 has a Raft safety bug
# (DESIGN.md section 4).
set -eu

RAFT_MIN=0.22
BACKPORTS_LINE='deb http://deb.debian.org/debian bookworm-backports main'
BACKPORTS_FILE=/etc/apt/sources.list.d/bookworm-backports.list
PACKAGES='build-essential meson ninja-build pkg-config liblmdb-dev
libuv1-dev libssl-dev libmsgpack-dev libcmocka-dev libjansson-dev
libpcre2-dev clang-format jq'
BENCH_PACKAGES='etcd-server golang-go golang-etcd-server-dev curl'

usage() {
    echo "usage: tools/install-deps.sh [--bench]"
    echo "  --bench  also install $BENCH_PACKAGES (bench/compare)"
}

for arg in "$@"; do
    case $arg in
        --bench) PACKAGES="$PACKAGES $BENCH_PACKAGES" ;;
        -h | --help)
            usage
            exit 0
            ;;
        *)
            usage >&2
            exit 2
            ;;
    esac
done

export DEBIAN_FRONTEND=noninteractive

installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null |
        grep -q 'install ok installed'
}

raft_ok() {
    command -v pkg-config >/dev/null 2>&1 &&
        pkg-config --atleast-version="$RAFT_MIN" raft 2>/dev/null
}

missing=''
for p in $PACKAGES; do
    installed "$p" || missing="$missing $p"
done
need_raft=0
raft_ok || need_raft=1

if [ -z "$missing" ] && [ "$need_raft" -eq 0 ]; then
    echo "install-deps: all dependencies present (libraft $(pkg-config --modversion raft))"
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-deps: apt-get not found; install by hand:$missing" \
         "libraft-dev (>= $RAFT_MIN)" >&2
    exit 1
fi

# Run apt as root, through sudo when we are not root.
SUDO=''
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO='sudo DEBIAN_FRONTEND=noninteractive'
    else
        echo "install-deps: missing:$missing" \
             "$([ "$need_raft" -eq 1 ] && echo "libraft-dev (>= $RAFT_MIN)");" \
             "run this script as root" >&2
        exit 1
    fi
fi

if [ "$need_raft" -eq 1 ] &&
   ! grep -rqsE '^[^#]*bookworm-backports' /etc/apt/sources.list \
        /etc/apt/sources.list.d/; then
    echo "install-deps: adding bookworm-backports to $BACKPORTS_FILE"
    echo "$BACKPORTS_LINE" | $SUDO tee "$BACKPORTS_FILE" >/dev/null
fi

echo "install-deps: installing:$missing$([ "$need_raft" -eq 1 ] && echo ' libraft-dev (bookworm-backports)')"
$SUDO apt-get update
if [ -n "$missing" ]; then
    # shellcheck disable=SC2086 # word splitting is wanted
    $SUDO apt-get install -y --no-install-recommends $missing
fi
if [ "$need_raft" -eq 1 ]; then
    $SUDO apt-get install -y --no-install-recommends -t bookworm-backports \
        libraft-dev
fi

if ! raft_ok; then
    echo "install-deps: libraft >= $RAFT_MIN still not found by pkg-config" >&2
    exit 1
fi
echo "install-deps: done (libraft $(pkg-config --modversion raft))"
