#!/usr/bin/env bash
# Cluster benchmark: throughput and latency of 1 and 3 cairnd nodes, and the
# longest pause clients see while nodes snapshot a store of 100,000
# parameters and while a new node catches up by snapshot.
#
#   CAIRN_BUILD=build-release bench/cluster-bench.sh [--params N]
#       [--seconds S] [--base-port P] [--keep] [--pause-only]
#
# Binaries come from a release build directory, $CAIRN_BUILD (default
# ./build): tools/cairnd, tools/cairn and bench/cairn-bench. Make one with
#   meson setup build-release --buildtype=release -Dbench=true
#   ninja -C build-release
# Needs jq. Progress goes to stderr, the summary (markdown) to stdout:
#   bench/cluster-bench.sh > summary.md
#
# What it does, every load a closed loop of cairn-bench clients:
# 1. One node: put 1 KB (64 clients, 4 connections), linearizable get and
#    stale get (64 clients), get-by-path of 10 results (16 clients), S
#    seconds each (default 5) after creating the 10,000 parameters they use.
# 2. Three nodes (--initial-cluster): the same loads, the connections spread
#    round-robin over the three client ports (4 connections: 2, 1, 1).
# 3. Snapshot pause. Three fresh nodes with a snapshot threshold no load
#    reaches; create N parameters (default 100,000, 1 KB values, 128 writes
#    in flight; the default tier set to Intelligent-Tiering, as 10,000
#    standard parameters is the limit); a 5 s baseline of mixed load: 16
#    clients get (linearizable) and 16 clients put, one row every 0.5 s
#    (cairn-bench --interval). The Raft index it added gives the index
#    rate; the nodes are restarted with --snapshot-threshold = index +
#    about 6 s of that load (a threshold is per process), then the same
#    load runs for 16 s while each node takes a snapshot, found by its
#    "raft: snapshot at index N: store synced (T ms)" log line (or "copied
#    (B bytes, T ms)" for a full copy). Byte-triggered snapshots are off
#    (--snapshot-log-mb 0). Reported: the longest latency over the window, in the
#    0.5 s intervals that overlap a snapshot (from the start of its copy to
#    2 s after it: raft_uv then writes and syncs the file and compacts the
#    log, which cairnd does not log), and in the other intervals; and the
#    intervals around the snapshots, one line each.
# 4. Catch-up pause. Nodes 1-3 restart with a threshold out of reach again
#    (no further snapshot muddles the figures); with every log compacted
#    (--snapshot-trailing 64), a 4th node with a fresh directory starts with
#    --join 3 s into the same mixed load (25 s, clients on nodes 1-3 only),
#    so it can only catch up by InstallSnapshot. `cairn cluster status
#    --output json` is polled until its AppliedIndex reaches the leader's;
#    reported: how long that took, the longest latency while it did, and
#    the intervals of the catch-up.
# The get load ends 1 s before the put load in 3 and 4: with no write
# traffic, a linearizable read on a follower waits for the next heartbeat
# to learn the commit index, which would show at the end of every window.
#
# Nodes listen on 127.0.0.1 only: node i (1..4) on P+10*(i-1) for clients
# and the next port for Raft, P being --base-port or the first of 30100,
# 30200, ..., 30900 with all eight ports free. Data and logs go to a
# temporary directory removed at the end (--keep keeps it and says where).
# Every process started is stopped by its PID on exit, also after an error
# or Ctrl-C. A run takes about 2 minutes; --params 20000 --seconds 2 is a
# quick check of the script itself, and --pause-only skips steps 1 and 2.
set -euo pipefail

prog=$(basename "$0")
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

params=100000
seconds=5
base_port=
keep=no
pause_only=no
BASE_S=5         # baseline window of the snapshot step
SNAP_AT_S=6      # the snapshot is expected this far into its window
SNAP_WINDOW_S=16 # window of the snapshot step
CATCHUP_S=25     # window of the catch-up step
JOIN_AT_S=3      # the 4th node starts this far into its window
MIX_CLIENTS=16   # clients per operation of the mixed load
AFTER_COPY_S=2   # a snapshot's span ends this long after its copy
HUGE_THRESHOLD=1073741824
TRAILING=64

usage() {
    cat <<EOF
usage: $prog [--params N] [--seconds S] [--base-port P] [--keep]
          [--pause-only]

Benchmarks 1 and 3 cairnd nodes (put, linearizable get, stale get,
get-by-path; S seconds each, default 5), then the longest request latency
while 3 nodes snapshot N parameters (default 100000) and while a 4th node
catches up by snapshot. Binaries from \$CAIRN_BUILD (default ./build), a
release build. Summary on stdout, progress on stderr. --keep keeps the
data and logs; --pause-only skips the 1- and 3-node loads.
EOF
}


while (($# > 0)); do
    case $1 in
        --params)
            (($# >= 2)) || die "--params needs a value"
            params=$2
            shift 2
            ;;
        --seconds)
            (($# >= 2)) || die "--seconds needs a value"
            seconds=$2
            shift 2
            ;;
        --base-port)
            (($# >= 2)) || die "--base-port needs a value"
            base_port=$2
            shift 2
            ;;
        --keep)
            keep=yes
            shift
            ;;
        --pause-only)
            pause_only=yes
            shift
            ;;
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
# The store's limits, as AWS's: 10,000 standard and 100,000 advanced
# parameters.
if ! [[ $params =~ ^[1-9][0-9]*$ ]] || ((params < 10000 || params > 110000)); then
    die "--params must be a number from 10000 to 110000"
fi
[[ $seconds =~ ^[1-9][0-9]*$ ]] || die "--seconds must be a whole number >= 1"

build=${CAIRN_BUILD:-./build}
cairnd=$build/tools/cairnd
cairn=$build/tools/cairn
bench=$build/bench/cairn-bench
for b in "$cairnd" "$cairn" "$bench"; do
    [[ -x $b ]] || die "no $b; build with 'meson setup $build" \
        "--buildtype=release -Dbench=true && ninja -C $build' or set CAIRN_BUILD"
done
command -v jq >/dev/null || die "jq is needed (apt-get install jq)"



warn_unless_release

# ---- processes ------------------------------------------------------------

work=$(mktemp -d "${TMPDIR:-/tmp}/cairn-cluster-bench.XXXXXX")
node_pid=()   # by node id; empty when not running
node_dir=()   # by node id
bench_pids=() # cairn-bench processes running in the background



api_port() {
    printf '%s\n' $((base_port + 10 * ($1 - 1)))
}

# Endpoints of nodes $1..$2.
endpoints() {
    local i eps=
    for ((i = $1; i <= $2; i++)); do
        eps+="${eps:+,}127.0.0.1:$(api_port "$i")"
    done
    printf '%s\n' "$eps"
}

# --initial-cluster of nodes 1..$1.
initial_cluster() {
    local i ic=
    for ((i = 1; i <= $1; i++)); do
        ic+="${ic:+,}$i=127.0.0.1:$(($(api_port "$i") + 1))"
    done
    printf '%s\n' "$ic"
}

# start_node ID DIR [cairnd options]: start node ID with its data and its
# log (cairnd.log) in DIR.
start_node() {
    local id=$1 dir=$2 api
    shift 2
    api=$(api_port "$id")
    mkdir -p "$dir"
    "$cairnd" --node-id "$id" --data-dir "$dir" --api "127.0.0.1:$api" \
        --raft "127.0.0.1:$((api + 1))" "$@" \
        >>"$dir/cairnd.log" 2>&1 </dev/null &
    node_pid[id]=$!
    node_dir[id]=$dir
}

# Stop the given nodes: SIGTERM to each, up to 15 s, then SIGKILL.
stop_nodes() {
    local id pid t left rc
    for id in "$@"; do
        pid=${node_pid[id]:-}
        if [[ -n $pid ]]; then
            kill -TERM "$pid" 2>/dev/null || true
        fi
    done
    for ((t = 0; t < 150; t++)); do
        left=0
        for id in "$@"; do
            pid=${node_pid[id]:-}
            if [[ -n $pid ]] && alive "$pid"; then
                left=1
            fi
        done
        ((left == 0)) && break
        sleep 0.1
    done
    for id in "$@"; do
        pid=${node_pid[id]:-}
        [[ -n $pid ]] || continue
        if alive "$pid"; then
            say "node $id (PID $pid) did not stop in 15 s; sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
        rc=0
        wait "$pid" 2>/dev/null || rc=$?
        if ((rc != 0)); then
            say "node $id (PID $pid) exited with status $rc; the end of" \
                "${node_dir[id]}/cairnd.log:"
            tail -n 5 "${node_dir[id]}/cairnd.log" >&2 || true
        fi
        node_pid[id]=
    done
}

# Die (showing its log) if one of the given nodes has exited.
check_nodes() {
    local id pid
    for id in "$@"; do
        pid=${node_pid[id]:-}
        if [[ -z $pid ]] || ! alive "$pid"; then
            say "node $id exited; the end of ${node_dir[id]}/cairnd.log:"
            tail -n 20 "${node_dir[id]}/cairnd.log" >&2 || true
            exit 1
        fi
    done
}

cleanup() {
    local rc=$? pid id ids=()
    set +e
    trap - EXIT INT TERM
    for pid in "${bench_pids[@]}"; do
        kill -TERM "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    done
    for id in "${!node_pid[@]}"; do
        [[ -n ${node_pid[id]} ]] && ids+=("$id")
    done
    ((${#ids[@]} > 0)) && stop_nodes "${ids[@]}"
    if [[ $keep == yes ]]; then
        say "kept $work (node logs in */node-*/cairnd.log)"
    else
        rm -rf "$work"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [[ -z $base_port ]]; then
    for p in 30100 30200 30300 30400 30500 30600 30700 30800 30900; do
        busy=no
        for ((i = 0; i < 4; i++)); do
            if listening $((p + 10 * i)) || listening $((p + 10 * i + 1)); then
                busy=yes
            fi
        done
        if [[ $busy == no ]]; then
            base_port=$p
            break
        fi
    done
    [[ -n $base_port ]] || die "no free ports from 30100 to 30931; use --base-port"
elif ! [[ $base_port =~ ^[1-9][0-9]*$ ]] || ((base_port + 31 > 65535)); then
    die "bad --base-port $base_port"
fi

# ---- cluster status -------------------------------------------------------

# `cairn cluster status --output json` through endpoints $1, or nothing.
status_json() {
    "$cairn" --endpoint "$1" cluster status --output json 2>/dev/null || true
}

# Wait until endpoints $1 show a leader and $2 members that answer as
# leader or follower with their API address registered (writes on a
# follower need the leader's).
wait_ready() {
    local eps=$1 want=$2 t json n
    for ((t = 0; t < 600; t++)); do
        json=$(status_json "$eps")
        if [[ -n $json ]]; then
            n=$(jq '[.Members[] | select((.State == "leader" or
                    .State == "follower") and (.ApiAddress // "") != "")]
                    | length' <<<"$json")
            if (($(jq '.Leader // 0' <<<"$json") > 0 && n >= want)); then
                return 0
            fi
        fi
        sleep 0.1
    done
    die "the cluster at $eps is not ready after 60 s; see $work"
}

# The leader's id, commit and applied index through endpoints $1.
leader_info() {
    status_json "$1" | jq -r '. as $s | [.Members[] |
        select(.Id == $s.Leader)][0] |
        "\(.Id // 0) \(.CommitIndex // 0) \(.AppliedIndex // 0)"'
}

# ---- cairn-bench ----------------------------------------------------------

# run_bench OUT [cairn-bench options]: run in the foreground; stdout to
# OUT and to stderr.
run_bench() {
    local out=$1
    shift
    if ! "$bench" "$@" >"$out" 2>"$out.err"; then
        cat "$out" "$out.err" >&2
        die "cairn-bench $* failed"
    fi
    sed 's/^/    /' "$out.err" "$out" >&2
}

# The row of operation $2 in cairn-bench output $1:
# op clients conns QPS p50 p99 p99.9 max errors.
row() {
    awk -v op="$2" '$1 == op { print; exit }' "$1"
}

# mixed_start DIR EPS SECONDS KEYS: the mixed load in the background, get
# for SECONDS and put for one second more, rows every 0.5 s.
mixed_start() {
    local dir=$1 eps=$2 s=$3 keys=$4
    mkdir -p "$dir"
    "$bench" --endpoint "$eps" --op get --clients "$MIX_CLIENTS" \
        --connections 4 --seconds "$s" --keys "$keys" --no-load \
        --interval 0.5 >"$dir/get.out" 2>"$dir/get.err" &
    bench_pids+=($!)
    "$bench" --endpoint "$eps" --op put --clients "$MIX_CLIENTS" \
        --connections 4 --seconds $((s + 1)) --keys "$keys" --no-load \
        --interval 0.5 >"$dir/put.out" 2>"$dir/put.err" &
    bench_pids+=($!)
}

mixed_wait() {
    local dir=$1 pid failed=no
    for pid in "${bench_pids[@]}"; do
        wait "$pid" || failed=yes
    done
    bench_pids=()
    if [[ $failed == yes ]]; then
        cat "$dir"/*.err >&2
        die "the mixed load failed"
    fi
    sed 's/^/    /' <(row "$dir/get.out" get) <(row "$dir/put.out" put) >&2
}

# Unix time of a cairnd log line's timestamp.
log_epoch() {
    date -d "$1" +%s.%3N
}

# Interval rows of a mixed load DIR overlapping the spans in file $2 (one
# "from to" Unix-time pair per line; "-" for none), as
# "op n max_ms mean_qps" per op, for the rows inside (in) or outside (out).
interval_stats() {
    local dir=$1 spans=$2 which=$3
    awk -v which="$which" -v iv=0.5 '
        FNR == NR { if ($1 != "-") { from[++n] = $1; to[n] = $2 }; next }
        $1 != "interval" { next }
        {
            e = $3; s = e - iv; inside = 0
            for (i = 1; i <= n; i++)
                if (e > from[i] && s < to[i]) inside = 1
            if ((which == "in") != inside) next
            op = $4; cnt[op]++; qps[op] += $5
            if ($6 > mx[op]) mx[op] = $6
        }
        END {
            for (op in cnt)
                printf "%s %d %.1f %.0f\n", op, cnt[op], mx[op], qps[op] / cnt[op]
        }' "$spans" "$dir/get.out" "$dir/put.out"
}

# timeline DIR SPANS FROM TO: the interval rows of mixed load DIR whose end
# is in [FROM, TO] (Unix times) as a markdown table, get and put side by
# side (paired by row: both start together), "*" on rows overlapping a span.
timeline() {
    local dir=$1 spans=$2 from=$3 to=$4
    echo "| s | get QPS | get max | put QPS | put max | |"
    echo "|---:|---:|---:|---:|---:|---|"
    awk -v from="$from" -v to="$to" -v iv=0.5 '
        FILENAME == ARGV[1] { if ($1 != "-") { sf[++n] = $1; st[n] = $2 }; next }
        FILENAME == ARGV[3] && $1 == "interval" { pq[++np] = $5; pm[np] = $6; next }
        $1 == "interval" { ++ng; gt[ng] = $2; ge[ng] = $3; gq[ng] = $5; gm[ng] = $6 }
        END {
            for (i = 1; i <= ng; i++) {
                if (ge[i] < from || ge[i] > to) continue
                mark = ""
                for (j = 1; j <= n; j++)
                    if (ge[i] > sf[j] && ge[i] - iv < st[j]) mark = "*"
                printf "| %.1f | %s | %.1f | %s | %.1f | %s |\n", gt[i], gq[i], \
                    gm[i], pq[i], pm[i], mark
            }
        }' "$spans" "$dir/get.out" "$dir/put.out"
}

# Field $3 (n, max, qps) of op $2 in interval_stats output $1, or "-".
stat_of() {
    awk -v op="$2" -v f="$3" '
        $1 == op { v = (f == "n") ? $2 : (f == "max") ? $3 : $4 }
        END { print (v == "") ? "-" : v }' <<<"$1"
}

# "QPS p50 p99 max errors" of op $2 in cairn-bench output $1.
summary_of() {
    row "$1" "$2" | awk '{ printf "%s %s %s %s %s\n", $4, $5, $6, $8, $9 }'
}

# ---- 1. and 2.: steady loads on 1 and 3 nodes -----------------------------

LOADS=(put get stale by-path)
declare -A load_name=(
    [put]="put 1 KB"
    [get]="get (linearizable)"
    [stale]="get (stale)"
    [by-path]="get-by-path (10 results)"
)
declare -A load_args=(
    [put]="--op put --clients 64"
    [get]="--op get --clients 64"
    [stale]="--op get --stale --clients 64"
    [by-path]="--op by-path --clients 16"
)
declare -A load_clients=([put]=64 [get]=64 [stale]=64 [by-path]=16)
declare -A result # [N:load] = "QPS p50 p99 max errors"

steady_suite() {
    local n=$1 dir eps i l op ic
    dir=$work/steady-$n
    say "== $n node(s): starting"
    eps=$(endpoints 1 "$n")
    ic=$(initial_cluster "$n")
    for ((i = 1; i <= n; i++)); do
        start_node "$i" "$dir/node-$i" --initial-cluster "$ic"
    done
    wait_ready "$eps" "$n"
    say "$n node(s) ready ($eps); creating 10000 parameters"
    run_bench "$dir/load.out" --endpoint "$eps" --load-only 10000 \
        --clients 64 --connections 4
    for l in "${LOADS[@]}"; do
        check_nodes $(seq 1 "$n")
        say "$n node(s): ${load_name[$l]}, ${load_clients[$l]} clients," \
            "4 connections, $seconds s"
        # shellcheck disable=SC2086 # load_args holds several words
        run_bench "$dir/$l.out" --endpoint "$eps" --connections 4 \
            --seconds "$seconds" --keys 10000 --no-load ${load_args[$l]}
        op='get'
        [[ $l == put || $l == by-path ]] && op=$l
        result[$n:$l]=$(summary_of "$dir/$l.out" "$op")
    done
    say "$n node(s): stopping"
    stop_nodes $(seq 1 "$n")
}

if [[ $pause_only == no ]]; then
    steady_suite 1
    steady_suite 3
fi

# ---- 3.: pause during a snapshot of N parameters --------------------------

pdir=$work/pause
eps=$(endpoints 1 3)
ic=$(initial_cluster 3)
say "== snapshot pause: 3 fresh nodes, no snapshot until restarted"
for i in 1 2 3; do
    start_node "$i" "$pdir/node-$i" --initial-cluster "$ic" \
        --snapshot-threshold "$HUGE_THRESHOLD" --snapshot-trailing "$TRAILING" \
        --snapshot-log-mb 0
done
wait_ready "$eps" 3
# Beyond 10,000 standard parameters new ones must be advanced (AWS's limits).
"$cairn" --endpoint "$eps" update-service-setting --setting-id \
    /ssm/parameter-store/default-parameter-tier \
    --setting-value Intelligent-Tiering >/dev/null
say "creating $params parameters of 1 KB (default tier Intelligent-Tiering:" \
    "10000 standard, the rest advanced; 128 in flight, 6 connections)"
run_bench "$pdir/load.out" --endpoint "$eps" --load-only "$params" \
    --clients 128 --connections 6
read -r _ idx0 _ < <(leader_info "$eps")
say "loaded; Raft commit index $idx0. Baseline: mixed load for $BASE_S s"
t0=$EPOCHREALTIME
mixed_start "$pdir/baseline" "$eps" "$BASE_S" "$params"
mixed_wait "$pdir/baseline"
t1=$EPOCHREALTIME
check_nodes 1 2 3
read -r _ idx1 _ < <(leader_info "$eps")
rate=$(awk -v a="$idx0" -v b="$idx1" -v x="$t0" -v y="$t1" \
    'BEGIN { printf "%.0f", (b - a) / (y - x) }')
threshold=$((idx1 + rate * SNAP_AT_S))
say "baseline added $((idx1 - idx0)) entries ($rate/s); restarting the" \
    "nodes with --snapshot-threshold $threshold"
stop_nodes 1 2 3
declare -A log_mark # lines of each log before the restart
for i in 1 2 3; do
    log_mark[$i]=$(wc -l <"$pdir/node-$i/cairnd.log")
done
for i in 1 2 3; do
    start_node "$i" "$pdir/node-$i" --initial-cluster "$ic" \
        --snapshot-threshold "$threshold" --snapshot-trailing "$TRAILING" \
        --snapshot-log-mb 0
done
wait_ready "$eps" 3
read -r leader idx2 _ < <(leader_info "$eps")
say "restarted (leader: node $leader, index $idx2); mixed load for" \
    "$SNAP_WINDOW_S s, a snapshot expected at index $threshold"
mixed_start "$pdir/snapshot" "$eps" "$SNAP_WINDOW_S" "$params"
mixed_wait "$pdir/snapshot"
check_nodes 1 2 3
read -r leader idx3 _ < <(leader_info "$eps")

# Snapshot lines since the restart: "node epoch_end index bytes ms".
: >"$pdir/snapshots"
for i in 1 2 3; do
    while IFS= read -r line; do
        ts=${line%% *}
        # "... raft: snapshot at index N copied (B bytes, T ms)" (a full
        # copy) or "... raft: snapshot at index N: store synced (T ms)" (a
        # reference to the synced store, the default: 0 bytes copied)
        read -r index bytes ms < <(sed -E \
            -e 's/.*snapshot at index ([0-9]+) copied \(([0-9]+) bytes, ([0-9]+) ms\).*/\1 \2 \3/' \
            -e 's/.*snapshot at index ([0-9]+): store synced \(([0-9]+) ms\).*/\1 0 \2/' \
            <<<"$line")
        printf '%s %s %s %s %s\n' "$i" "$(log_epoch "$ts")" "$index" \
            "$bytes" "$ms" >>"$pdir/snapshots"
    done < <(tail -n +$((log_mark[$i] + 1)) "$pdir/node-$i/cairnd.log" |
        grep -E 'raft: snapshot at index [0-9]+( copied|: store synced)' || true)
done
if [[ ! -s $pdir/snapshots ]]; then
    say "no snapshot was taken in the window (index $idx3 < $threshold?)"
    echo - >"$pdir/spans"
else
    # A snapshot's span: from the start of its copy to AFTER_COPY_S after.
    awk -v a="$AFTER_COPY_S" '{ printf "%.3f %.3f\n", $2 - $5 / 1000, $2 + a }' \
        "$pdir/snapshots" >"$pdir/spans"
    while read -r i e index bytes ms; do
        say "node $i: snapshot at index $index, $bytes bytes, copied in $ms ms"
    done <"$pdir/snapshots"
fi

# ---- 4.: pause while a 4th node catches up by snapshot --------------------

cdir=$work/catchup
# No more snapshots on nodes 1-3 (nor on node 4): the pause measured is the
# catch-up's alone. The logs stay compacted.
say "== catch-up pause: restarting nodes 1-3 with no snapshot threshold in reach"
stop_nodes 1 2 3
for i in 1 2 3; do
    log_mark[$i]=$(wc -l <"$pdir/node-$i/cairnd.log")
    start_node "$i" "$pdir/node-$i" --initial-cluster "$ic" \
        --snapshot-threshold "$HUGE_THRESHOLD" --snapshot-trailing "$TRAILING" \
        --snapshot-log-mb 0
done
wait_ready "$eps" 3
read -r leader4 _ _ < <(leader_info "$eps")
say "restarted (leader: node $leader4); mixed load for $CATCHUP_S s on nodes" \
    "1-3, node 4 joins after $JOIN_AT_S s"
log4=$pdir/node-4/cairnd.log
mixed_start "$cdir" "$eps" "$CATCHUP_S" "$params"
sleep "$JOIN_AT_S"
t_join=$EPOCHREALTIME
start_node 4 "$pdir/node-4" --join "127.0.0.1:$(api_port 1)" \
    --snapshot-threshold "$HUGE_THRESHOLD" --snapshot-trailing "$TRAILING" \
        --snapshot-log-mb 0
t_caught='' t_voter='' t_seen='' caught_index='' la=0 ma=0 role=none
deadline=$(awk -v t="$t_join" -v s="$CATCHUP_S" \
    'BEGIN { printf "%.3f", t + s + 30 }')
while :; do
    json=$(status_json "$eps")
    now=$EPOCHREALTIME
    if [[ -n $json ]]; then
        read -r la ma role < <(jq -r '. as $s |
            ([.Members[] | select(.Id == $s.Leader)][0].AppliedIndex // 0)
            as $la | ([.Members[] | select(.Id == 4)][0] // {}) as $m |
            "\($la) \($m.AppliedIndex // 0) \($m.Role // "none")"' <<<"$json")
        if [[ $role != none && -z $t_seen ]]; then
            t_seen=$now
            say "node 4 is a member ($role)"
        fi
        if [[ -z $t_caught ]] && ((la > 0 && ma >= la)); then
            t_caught=$now
            caught_index=$ma
            say "node 4 caught up: applied index $ma, leader's $la"
        fi
        if [[ $role == voter && -z $t_voter ]]; then
            t_voter=$now
            say "node 4 is a voter"
        fi
    fi
    [[ -n $t_caught && -n $t_voter ]] && break
    if ! alive "${node_pid[4]}"; then
        say "node 4 exited; the end of its log:"
        tail -n 20 "$log4" >&2
        break
    fi
    if awk -v n="$now" -v d="$deadline" 'BEGIN { exit !(n > d) }'; then
        say "node 4 has not caught up $((CATCHUP_S + 30)) s after starting" \
            "(leader applied $la, node 4 applied $ma, role $role)"
        break
    fi
    sleep 0.25
done
mixed_wait "$cdir"
check_nodes 1 2 3

restored=$(grep -m1 'store restored from a snapshot' "$log4" || true)
# Snapshots taken by nodes 1-3 in this window: none expected.
extra_snapshots=$(for i in 1 2 3; do
    tail -n +$((log_mark[$i] + 1)) "$pdir/node-$i/cairnd.log" |
        grep 'raft: snapshot at index' | sed "s/^/node $i: /" || true
done)
t_restored='' restored_bytes='' restored_index=
if [[ -n $restored ]]; then
    t_restored=$(log_epoch "${restored%% *}")
    restored_index=$(sed -E 's/.*raft index ([0-9]+).*/\1/' <<<"$restored")
    restored_bytes=$(sed -E 's/.*\(([0-9]+) bytes\).*/\1/' <<<"$restored")
fi
if [[ -n $t_caught ]]; then
    printf '%s %s\n' "$t_join" "$t_caught" >"$cdir/spans"
else
    printf '%s %s\n' "$t_join" "$EPOCHREALTIME" >"$cdir/spans"
fi
say "stopping"
stop_nodes 1 2 3 4

# ---- 5.: summary ----------------------------------------------------------

rel() { # seconds from $1 to $2, or "-"
    if [[ -z $2 ]]; then
        echo -
    else
        awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'
    fi
}

echo "## Cairn cluster benchmark"
echo
printf '%s, %s cores, %s build, cairn-bench (closed loop) and cairnd on\n' \
    "$(date -u +%Y-%m-%dT%H:%MZ)" "$(nproc)" "$buildtype"
echo "127.0.0.1. Latencies in ms."
echo
errors_note=
[[ $pause_only == yes ]] && LOADS=()
if [[ $pause_only == no ]]; then
    printf '%s s per load over 10,000 parameters of 1 KB, 4 connections, spread\n' \
        "$seconds"
    echo "round-robin over the 3 nodes (node 1 gets two)."
    echo
    echo "| load | clients | 1 node QPS | p50 | p99 | max | 3 nodes QPS | p50 | p99 | max |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
fi
for l in "${LOADS[@]}"; do
    read -r q1 a1 b1 m1 e1 <<<"${result[1:$l]:-- - - - 0}"
    read -r q3 a3 b3 m3 e3 <<<"${result[3:$l]:-- - - - 0}"
    printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' \
        "${load_name[$l]}" "${load_clients[$l]}" "$q1" "$a1" "$b1" "$m1" \
        "$q3" "$a3" "$b3" "$m3"
    if [[ $e1 != 0 || $e3 != 0 ]]; then
        errors_note+="${load_name[$l]}: $e1 errors on 1 node, $e3 on 3 nodes. "
    fi
done
((${#LOADS[@]} > 0)) && echo
[[ -n $errors_note ]] && printf 'Errors: %s\n\n' "$errors_note"

echo "### Longest pause ($params parameters, 3 nodes)"
echo
printf 'Mixed load on nodes 1-3: %s clients linearizable get + %s clients put\n' \
    "$MIX_CLIENTS" "$MIX_CLIENTS"
echo "1 KB, 4 connections each (the get load stops 1 s before the put load);"
echo "QPS of the intervals of 0.5 s averaged, max latency in ms."
echo
echo "| window | get QPS | put QPS | get max | put max |"
echo "|---|---:|---:|---:|---:|"
for w in baseline snapshot; do
    d=$pdir/$w
    read -r gq _ _ gm _ <<<"$(summary_of "$d/get.out" get)"
    read -r pq _ _ pm _ <<<"$(summary_of "$d/put.out" put)"
    case $w in
        baseline) label="baseline, no snapshot ($BASE_S s)" ;;
        snapshot) label="snapshot run, whole window ($SNAP_WINDOW_S s)" ;;
    esac
    printf '| %s | %s | %s | %s | %s |\n' "$label" "$gq" "$pq" "$gm" "$pm"
done
if [[ -s $pdir/snapshots ]]; then
    for which in in out; do
        s=$(interval_stats "$pdir/snapshot" "$pdir/spans" "$which")
        if [[ $which == in ]]; then
            label="intervals overlapping a snapshot ($(stat_of "$s" get n) intervals)"
        else
            label="other intervals of the snapshot run ($(stat_of "$s" get n) intervals)"
        fi
        printf '| %s | %s | %s | %s | %s |\n' "$label" \
            "$(stat_of "$s" get qps)" "$(stat_of "$s" put qps)" \
            "$(stat_of "$s" get max)" "$(stat_of "$s" put max)"
    done
fi
read -r gq _ _ gm _ <<<"$(summary_of "$cdir/get.out" get)"
read -r pq _ _ pm _ <<<"$(summary_of "$cdir/put.out" put)"
printf '| catch-up run, whole window (%s s) | %s | %s | %s | %s |\n' \
    "$CATCHUP_S" "$gq" "$pq" "$gm" "$pm"
for which in in out; do
    s=$(interval_stats "$cdir" "$cdir/spans" "$which")
    if [[ $which == in ]]; then
        label="while node 4 catches up ($(stat_of "$s" get n) intervals)"
    else
        label="before it joins and after ($(stat_of "$s" get n) intervals)"
    fi
    printf '| %s | %s | %s | %s | %s |\n' "$label" \
        "$(stat_of "$s" get qps)" "$(stat_of "$s" put qps)" \
        "$(stat_of "$s" get max)" "$(stat_of "$s" put max)"
done
echo
if [[ -s $pdir/snapshots ]]; then
    g0=$(awk '$1 == "interval" { printf "%.3f", $3 - $2; exit }' \
        "$pdir/snapshot/get.out")
    echo "Snapshots (leader: node $leader; loading ended at Raft index $idx0,"
    echo "the window began at $idx2, threshold $threshold):"
    echo
    # Versions written before it: the parameters, the baseline's puts and
    # those of the window's intervals that ended before the copy did.
    while read -r i e index bytes ms; do
        w=$(awk -v e="$e" -v n="$params" -v b="$(row "$pdir/baseline/put.out" put |
            awk '{ print $4 }')" -v bs=$((BASE_S + 1)) '
            $1 == "interval" && $4 == "put" && $3 <= e { n += $5 * 0.5 }
            END { printf "%.0f", n + b * bs }' "$pdir/snapshot/put.out")
        printf -- '- node %s: index %s, %s bytes (%.0f MB) for %s parameters and about %s versions written in all (%s bytes per version); copied in %s ms, done %s s into the window\n' \
            "$i" "$index" "$bytes" "$((bytes / 1000000))" "$params" "$w" \
            "$((bytes / w))" "$ms" "$(rel "$g0" "$e")"
    done <"$pdir/snapshots"
else
    echo "No snapshot was taken in the snapshot window (index $idx3, threshold $threshold)."
fi
echo
echo "Catch-up of node 4 (fresh, --join, 3 s into the window; leader's log"
echo "compacted, $TRAILING trailing entries):"
echo
if [[ -n $restored ]]; then
    printf -- '- store restored from a snapshot at index %s (%s bytes) %s s after start\n' \
        "$restored_index" "$restored_bytes" "$(rel "$t_join" "$t_restored")"
else
    echo "- no \"store restored from a snapshot\" line in node 4's log"
fi
printf -- '- member %s s, applied index reached the leader'"'"'s (%s) %s s, voter %s s after start (leader: node %s)\n' \
    "$(rel "$t_join" "$t_seen")" "${caught_index:--}" \
    "$(rel "$t_join" "$t_caught")" "$(rel "$t_join" "$t_voter")" "$leader4"
if [[ -n $extra_snapshots ]]; then
    printf -- '- snapshots on nodes 1-3 in this window (none expected):\n'
    while IFS= read -r line; do
        printf '  - %s\n' "$line"
    done <<<"$extra_snapshots"
fi
echo
if [[ -s $pdir/snapshots ]]; then
    read -r from to < <(awk 'NR == 1 || $1 < f { f = $1 } NR == 1 || $2 > t { t = $2 }
        END { printf "%.3f %.3f\n", f - 1, t + 1.5 }' "$pdir/spans")
    echo "Snapshot run, intervals around the snapshots (s: end of the interval"
    echo "since the load began; *: overlaps a copy or the ${AFTER_COPY_S} s after it):"
    echo
    timeline "$pdir/snapshot" "$pdir/spans" "$from" "$to"
    echo
fi
read -r from to < <(awk '{ printf "%.3f %.3f\n", $1 - 1, $2 + 1.5 }' "$cdir/spans")
echo "Catch-up run, intervals around node 4's catch-up (*: from its start"
echo "until its applied index reached the leader's):"
echo
timeline "$cdir" "$cdir/spans" "$from" "$to"
echo
warn=$(cat "$work"/*/node-*/cairnd.log | grep -E ' (warn|error) ' || true)
if [[ -n $warn ]]; then
    echo "Server warnings and errors ($(wc -l <<<"$warn") lines, first 10):"
    echo
    echo '```'
    head -n 10 <<<"$warn"
    echo '```'
else
    echo "No warnings or errors in the server logs."
fi
say "done"
