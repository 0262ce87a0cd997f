#!/usr/bin/env bash
# A development cluster of N cairnd nodes on 127.0.0.1 (docs/cluster.md).
#
#   tools/cluster.sh start [N] [--dir DIR] [--base-port P]
#   tools/cluster.sh stop [--dir DIR]
#   tools/cluster.sh status [--dir DIR] [cairn cluster status options]
#
# Node i (1..N, default N=3) listens for clients on 127.0.0.1:P+10*(i-1)
# and for Raft on the port after it (default P=7400: 7400/7401,
# 7410/7411, 7420/7421). Its data directory, log (cairnd.log) and PID file
# (cairnd.pid) are in DIR/node-i (default DIR=./cairn-cluster). The first
# start bootstraps all N nodes with --initial-cluster; a later start of the
# same DIR reuses the stored Raft configuration, so start it with the same
# N and base port (they are kept in DIR/cluster.env). Delete DIR to begin
# afresh.
#
# Binaries come from $CAIRN_BUILD/tools if CAIRN_BUILD is set, else from
# the first of build/, build-release/ and build-asan/ (tools/run-tests.sh)
# at the top of the source tree that has them; build with
# `meson setup build && ninja -C build`.
#
# Processes are found only through their PID files, never by name: stop
# sends SIGTERM, waits up to 10 s, then sends SIGKILL.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
prog=$(basename "$0")

STOP_WAIT_TENTHS=100  # 10 s for a clean shutdown before SIGKILL
READY_WAIT_TENTHS=300 # 30 s for every node to listen

usage() {
    cat <<EOF
usage: $prog start [N] [--dir DIR] [--base-port P]
       $prog stop [--dir DIR]
       $prog status [--dir DIR] [cairn cluster status options]

Runs N (default 3) cairnd nodes on 127.0.0.1 for development: node i
serves clients on port P+10*(i-1) and Raft on the next port (default
P=7400), and keeps its data, cairnd.log and cairnd.pid in DIR/node-i
(default DIR=./cairn-cluster). Binaries: \$CAIRN_BUILD/tools, else
build/, build-release/ or build-asan/ in $root.
EOF
}

die() {
    printf '%s: %s\n' "$prog" "$*" >&2
    exit 1
}

# die with the usage text, for a bad command line.
usage_error() {
    printf '%s: %s\n' "$prog" "$*" >&2
    usage >&2
    exit 2
}

# The directory holding the built tools: $CAIRN_BUILD, or the first build
# directory of the source tree with both binaries.
find_tools() {
    local d
    if [[ -n ${CAIRN_BUILD:-} ]]; then
        d=$CAIRN_BUILD/tools
        [[ -x $d/cairnd && -x $d/cairn ]] ||
            die "no cairnd and cairn in $d (CAIRN_BUILD=$CAIRN_BUILD)"
        printf '%s\n' "$d"
        return
    fi
    for d in "$root/build" "$root/build-release" "$root/build-asan"; do
        if [[ -x $d/tools/cairnd && -x $d/tools/cairn ]]; then
            printf '%s\n' "$d/tools"
            return
        fi
    done
    die "no cairnd and cairn under $root/build, build-release or build-asan;" \
        "build with 'meson setup build && ninja -C build' or set CAIRN_BUILD"
}

# Whether process $1 is running (a zombie has stopped running).
alive() {
    local state
    kill -0 "$1" 2>/dev/null || return 1
    state=$(awk '/^State:/ { print $2 }' "/proc/$1/status" 2>/dev/null) ||
        return 0
    [[ $state != Z ]]
}

# Whether process $1 runs a cairnd binary: a PID file may be stale and its
# number reused by an unrelated process, which must not be signalled. (This
# checks the one process the PID file names; nothing is looked up by name.)
is_cairnd() {
    local exe comm=
    if exe=$(readlink "/proc/$1/exe" 2>/dev/null); then
        exe=${exe% (deleted)}
        [[ ${exe##*/} == cairnd ]]
        return
    fi
    read -r comm <"/proc/$1/comm" 2>/dev/null || true
    [[ $comm == cairnd ]]
}

# The PID stored in file $1, or nothing if it has none.
read_pid() {
    local pid=
    if [[ -f $1 ]]; then
        read -r pid <"$1" || true
    fi
    if [[ $pid =~ ^[1-9][0-9]*$ ]]; then
        printf '%s\n' "$pid"
    fi
}

# Whether something accepts TCP connections on 127.0.0.1 port $1.
listening() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# The node directories of DIR, node-1 first.
node_dirs() {
    local d n
    for d in "$1"/node-*; do
        n=${d##*/node-}
        if [[ -d $d && $n =~ ^[0-9]+$ ]]; then
            printf '%s\n' "$n"
        fi
    done | sort -n | while IFS= read -r n; do
        printf '%s/node-%s\n' "$1" "$n"
    done
}

# Parse "--dir DIR" / "--dir=DIR" and friends into the globals below.
dir=./cairn-cluster
base_port=7400
nodes=3
rest=()
parse_args() {
    local allow_n=$1 allow_port=$2 allow_rest=$3
    shift 3
    while (($# > 0)); do
        case $1 in
            --dir)
                (($# >= 2)) || usage_error "--dir needs a value"
                dir=$2
                shift 2
                ;;
            --dir=*)
                dir=${1#--dir=}
                shift
                ;;
            --base-port)
                [[ $allow_port == yes ]] || usage_error "unknown option $1"
                (($# >= 2)) || usage_error "--base-port needs a value"
                base_port=$2
                shift 2
                ;;
            --base-port=*)
                [[ $allow_port == yes ]] || usage_error "unknown option $1"
                base_port=${1#--base-port=}
                shift
                ;;
            -h | --help)
                usage
                exit 0
                ;;
            [0-9]*)
                [[ $allow_n == yes ]] || usage_error "unexpected argument $1"
                nodes=$1
                shift
                ;;
            *)
                [[ $allow_rest == yes ]] || usage_error "unexpected argument $1"
                rest+=("$1")
                shift
                ;;
        esac
    done
    [[ -n $dir ]] || usage_error "--dir must not be empty"
}

cmd_start() {
    parse_args yes yes no "$@"
    if ! [[ $nodes =~ ^[1-9][0-9]?$ ]]; then
        usage_error "N must be a number of nodes from 1 to 99, not '$nodes'"
    fi
    if ! [[ $base_port =~ ^[1-9][0-9]{0,4}$ ]] ||
        ((base_port + 10 * (nodes - 1) + 1 > 65535)); then
        usage_error "bad --base-port '$base_port' for $nodes nodes"
    fi

    local tools cairnd i api raft ndir pid port initial='' endpoints=''
    tools=$(find_tools)
    cairnd=$tools/cairnd
    # Absolute, for the messages and PID files; created only once the
    # checks below have passed.
    [[ $dir == /* ]] || dir=$PWD/${dir#./}

    for ((i = 1; i <= nodes; i++)); do
        raft=$((base_port + 10 * (i - 1) + 1))
        initial+="${initial:+,}$i=127.0.0.1:$raft"
        endpoints+="${endpoints:+,}127.0.0.1:$((raft - 1))"
    done

    # Refuse before starting anything, so that a refusal changes nothing.
    for ((i = 1; i <= nodes; i++)); do
        ndir=$dir/node-$i
        api=$((base_port + 10 * (i - 1)))
        pid=$(read_pid "$ndir/cairnd.pid")
        if [[ -n $pid ]] && alive "$pid"; then
            if is_cairnd "$pid"; then
                die "node $i is running already (PID $pid in" \
                    "$ndir/cairnd.pid); run '$prog stop --dir $dir' first"
            fi
            die "$ndir/cairnd.pid names PID $pid, a live process that is" \
                "not cairnd (a stale PID file?); remove the file to start"
        fi
        for port in "$api" $((api + 1)); do
            if listening "$port"; then
                die "port $port (node $i) is in use by another process"
            fi
        done
    done
    if [[ -f $dir/cluster.env ]] &&
        ! grep -qx "CAIRN_ENDPOINT=$endpoints" "$dir/cluster.env"; then
        die "$dir holds a cluster started with other nodes or ports" \
            "($(cat "$dir/cluster.env")); use them, or another --dir"
    fi

    # One root key for the whole cluster, so that SecureString works.
    mkdir -p "$dir"
    if [[ ! -f $dir/root.key ]]; then
        "$tools/cairn" keygen "$dir/root.key" >/dev/null ||
            die "cannot create the root key $dir/root.key"
    fi

    local started=()
    for ((i = 1; i <= nodes; i++)); do
        ndir=$dir/node-$i
        api=$((base_port + 10 * (i - 1)))
        mkdir -p "$ndir"
        # setsid: the nodes outlive this script and the terminal's signals.
        # It runs in a background child that is not a process group
        # leader, so it execs cairnd in place and $! is cairnd's PID.
        setsid "$cairnd" --node-id "$i" --data-dir "$ndir" \
            --api "127.0.0.1:$api" --raft "127.0.0.1:$((api + 1))" \
            --initial-cluster "$initial" --root-key-file "$dir/root.key" \
            >>"$ndir/cairnd.log" 2>&1 </dev/null &
        pid=$!
        printf '%s\n' "$pid" >"$ndir/cairnd.pid"
        started+=("$pid")
    done
    printf 'CAIRN_ENDPOINT=%s\n' "$endpoints" >"$dir/cluster.env"

    # Ready when every node listens on its client port. A node that exits
    # first failed to start: show why, and stop the others.
    local t ready
    for ((t = 0; t < READY_WAIT_TENTHS; t++)); do
        ready=0
        for ((i = 1; i <= nodes; i++)); do
            pid=${started[i - 1]}
            if ! alive "$pid"; then
                printf '%s: node %i (PID %s) exited; the end of %s:\n' \
                    "$prog" "$i" "$pid" "$dir/node-$i/cairnd.log" >&2
                tail -n 20 "$dir/node-$i/cairnd.log" >&2 || true
                stop_dir "$dir" >&2
                exit 1
            fi
            if listening $((base_port + 10 * (i - 1))); then
                ready=$((ready + 1))
            fi
        done
        ((ready == nodes)) && break
        sleep 0.1
    done
    if ((ready != nodes)); then
        printf '%s: only %d of %d nodes listen after %d s; see %s/node-*/cairnd.log\n' \
            "$prog" "$ready" "$nodes" $((READY_WAIT_TENTHS / 10)) "$dir" >&2
        exit 1
    fi

    for ((i = 1; i <= nodes; i++)); do
        api=$((base_port + 10 * (i - 1)))
        printf 'node %d: PID %s, api 127.0.0.1:%d, raft 127.0.0.1:%d, %s\n' \
            "$i" "${started[i - 1]}" "$api" $((api + 1)) "$dir/node-$i"
    done
    printf '\nexport CAIRN_ENDPOINT=%s\n' "$endpoints"
}

# Stop every node of directory $1 by its PID file.
stop_dir() {
    local d=$1 ndir pid pidfile t
    local pids=() files=()
    while IFS= read -r ndir; do
        pidfile=$ndir/cairnd.pid
        pid=$(read_pid "$pidfile")
        [[ -n $pid ]] || continue
        if ! alive "$pid"; then
            rm -f "$pidfile"
            continue
        fi
        if ! is_cairnd "$pid"; then
            printf '%s: PID %s in %s is not cairnd (a stale PID file?); left alone\n' \
                "$prog" "$pid" "$pidfile" >&2
            continue
        fi
        kill -TERM "$pid" 2>/dev/null || true
        printf 'stopping %s (PID %s)\n' "${ndir##*/}" "$pid"
        pids+=("$pid")
        files+=("$pidfile")
    done < <(node_dirs "$d")

    for ((t = 0; t < STOP_WAIT_TENTHS; t++)); do
        local left=0
        for pid in "${pids[@]}"; do
            if alive "$pid"; then
                left=1
            fi
        done
        ((left == 0)) && break
        sleep 0.1
    done
    local i
    for i in "${!pids[@]}"; do
        pid=${pids[i]}
        if alive "$pid"; then
            printf '%s: PID %s did not stop in %d s; sending SIGKILL\n' \
                "$prog" "$pid" $((STOP_WAIT_TENTHS / 10)) >&2
            kill -KILL "$pid" 2>/dev/null || true
        fi
        rm -f "${files[i]}"
    done
}

cmd_stop() {
    parse_args no no no "$@"
    [[ -d $dir ]] || die "no cluster directory $dir"
    stop_dir "$dir"
}

cmd_status() {
    parse_args no no yes "$@"
    local tools endpoint=${CAIRN_ENDPOINT:-}
    tools=$(find_tools)
    if [[ -f $dir/cluster.env ]]; then
        endpoint=$(sed -n 's/^CAIRN_ENDPOINT=//p' "$dir/cluster.env")
    fi
    CAIRN_ENDPOINT=$endpoint exec "$tools/cairn" cluster status \
        --output table "${rest[@]}"
}

main() {
    (($# > 0)) || {
        usage >&2
        exit 2
    }
    local cmd=$1
    shift
    case $cmd in
        start) cmd_start "$@" ;;
        stop) cmd_stop "$@" ;;
        status) cmd_status "$@" ;;
        -h | --help | help) usage ;;
        *) usage_error "unknown command '$cmd'" ;;
    esac
}

main "$@"
