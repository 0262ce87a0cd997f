#!/usr/bin/env bash
# SecureString benchmark: what sealing on put and opening on get cost, on
# one cairnd node, against the same operations on String parameters.
#
#   CAIRN_BUILD=build-release bench/secure-bench.sh [--seconds S]
#       [--keys K] [--base-port P] [--keep]
#
# Binaries come from a release build directory, $CAIRN_BUILD (default
# ./build): tools/cairnd, tools/cairn and bench/cairn-bench. Make one with
#   meson setup build-release --buildtype=release -Dbench=true
#   ninja -C build-release
# Needs jq. Progress goes to stderr, the summary (markdown) to stdout:
#   bench/secure-bench.sh > secure.md
#
# What it does:
# 1. Starts one cairnd with a fresh data directory: a single node creates
#    its root key there (DATA-DIR/root.key) and the default key
#    (alias/aws/ssm) on start.
# 2. Creates K String parameters under /bench/string and K SecureString
#    parameters under /bench/secure (default 5,000 each, 1 KB values,
#    64 writes in flight): a parameter's type cannot change between String
#    and SecureString, and 2 x 5,000 stays within the 10,000 standard
#    parameters a store allows. 1 KB is well inside the 4,096-character
#    standard limit, which counts the plaintext, not the sealed value.
# 3. Runs, one after the other, each with 64 clients over 4 connections
#    for S seconds (default 5), a closed loop of cairn-bench clients over
#    the K parameters of its type:
#      put String                  PutParameter, Type String, 1 KB
#      put SecureString            PutParameter, Type SecureString, 1 KB
#      get String                  GetParameter (linearizable)
#      get SecureString, decrypted GetParameter, WithDecryption: true
#      get SecureString, sealed    GetParameter without it (the sealed
#                                  value comes back)
# 4. Checks one SecureString parameter with the cairn CLI: with decryption
#    its value is the 1,024 bytes cairn-bench wrote; without, a sealed
#    value ("CRNE", base64).
# The summary: one table, QPS and p50/p99/max latency of each run, errors,
# and each SecureString run's figures divided by those of the String run
# of the same operation; the snapshots the node took during each run
# (every 8192 log entries by default: writes are batched into few entries,
# but each linearizable read barrier is one, so they fall in the get runs
# and a copy of the store shows in their max); for a run with errors, its
# first error and the server's log lines of that run.
#
# The node listens on 127.0.0.1 only: the client API on P and Raft on P+1,
# P being --base-port or the first of 32000, 32010, ..., 32990 with both
# ports free. Its data and log go to a temporary directory removed at the
# end (--keep keeps it and says where). The node is stopped by its PID on
# exit, also after an error or Ctrl-C. A run takes about 40 s.
set -euo pipefail

prog=$(basename "$0")
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

seconds=5
keys=5000
base_port=
keep=no
CLIENTS=64
CONNECTIONS=4
VALUE_SIZE=1024

usage() {
    cat <<EOF
usage: $prog [--seconds S] [--keys K] [--base-port P] [--keep]

On one cairnd node: put String vs put SecureString, get String vs get
SecureString with and without decryption; 64 clients, 4 connections, 1 KB
values, S seconds each (default 5) over K parameters of each type (default
5000). Binaries from \$CAIRN_BUILD (default ./build), a release build.
Summary (markdown) on stdout, progress on stderr. --keep keeps the data
and the node's log.
EOF
}


while (($# > 0)); do
    case $1 in
        --seconds)
            (($# >= 2)) || die "--seconds needs a value"
            seconds=$2
            shift 2
            ;;
        --keys)
            (($# >= 2)) || die "--keys needs a value"
            keys=$2
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
[[ $seconds =~ ^[1-9][0-9]*$ ]] || die "--seconds must be a whole number >= 1"
# Both types together within the 10,000 standard parameters of a store.
if ! [[ $keys =~ ^[1-9][0-9]*$ ]] || ((keys < 10 || keys > 5000)); then
    die "--keys must be a number from 10 to 5000"
fi

build=${CAIRN_BUILD:-./build}
cairnd=$build/tools/cairnd
cairn=$build/tools/cairn
bench=$build/bench/cairn-bench
for b in "$cairnd" "$cairn" "$bench"; do
    [[ -x $b ]] || die "no $b; build with 'meson setup $build" \
        "--buildtype=release -Dbench=true && ninja -C $build' or set CAIRN_BUILD"
done
command -v jq >/dev/null || die "jq is needed (apt-get install jq)"
"$bench" --help | grep -q -- --with-decryption ||
    die "$bench has no --type/--with-decryption; rebuild it"



warn_unless_release

# ---- the node -------------------------------------------------------------

work=$(mktemp -d "${TMPDIR:-/tmp}/cairn-secure-bench.XXXXXX")
log=$work/cairnd.log
node_pid=



# Stop the node: SIGTERM, up to 15 s, then SIGKILL.
stop_node() {
    local t rc=0
    [[ -n $node_pid ]] || return 0
    kill -TERM "$node_pid" 2>/dev/null || true
    for ((t = 0; t < 150; t++)); do
        alive "$node_pid" || break
        sleep 0.1
    done
    if alive "$node_pid"; then
        say "cairnd (PID $node_pid) did not stop in 15 s; sending SIGKILL"
        kill -KILL "$node_pid" 2>/dev/null || true
    fi
    wait "$node_pid" 2>/dev/null || rc=$?
    if ((rc != 0)); then
        say "cairnd (PID $node_pid) exited with status $rc; the end of $log:"
        tail -n 5 "$log" >&2 || true
    fi
    node_pid=
}

# Die (showing its log) if the node has exited.
check_node() {
    if [[ -z $node_pid ]] || ! alive "$node_pid"; then
        say "cairnd exited; the end of $log:"
        tail -n 20 "$log" >&2 || true
        exit 1
    fi
}

cleanup() {
    local rc=$?
    set +e
    trap - EXIT INT TERM
    stop_node
    if [[ $keep == yes ]]; then
        say "kept $work (the node's log: $log)"
    else
        rm -rf "$work"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [[ -z $base_port ]]; then
    for ((p = 32000; p <= 32990; p += 10)); do
        if ! listening "$p" && ! listening $((p + 1)); then
            base_port=$p
            break
        fi
    done
    [[ -n $base_port ]] || die "no free ports from 32000 to 32991; use --base-port"
elif ! [[ $base_port =~ ^[1-9][0-9]*$ ]] || ((base_port + 1 > 65535)); then
    die "bad --base-port $base_port"
fi
ep=127.0.0.1:$base_port

say "starting cairnd: client API $ep, Raft 127.0.0.1:$((base_port + 1))," \
    "data in $work/data"
"$cairnd" --node-id 1 --data-dir "$work/data" --api "$ep" \
    --raft "127.0.0.1:$((base_port + 1))" >>"$log" 2>&1 </dev/null &
node_pid=$!

ready=no
for ((t = 0; t < 600; t++)); do
    check_node
    json=$("$cairn" --endpoint "$ep" cluster status --output json 2>/dev/null ||
        true)
    if [[ -n $json ]] && (($(jq '.Leader // 0' <<<"$json") > 0)); then
        ready=yes
        break
    fi
    sleep 0.1
done
[[ $ready == yes ]] || die "cairnd at $ep is not ready after 60 s; see $log"
root_line=$(grep -m1 'root key' "$log" || true)
say "ready (PID $node_pid); ${root_line#* info }"

# ---- cairn-bench ----------------------------------------------------------

# run_bench OUT [cairn-bench options]: run in the foreground; stdout to
# OUT and, indented, to stderr.
run_bench() {
    local out=$1
    shift
    if ! "$bench" "$@" >"$out" 2>"$out.err"; then
        cat "$out" "$out.err" >&2
        say "the server's log since the run started:"
        tail -n +$((mark + 1)) "$log" >&2
        die "cairn-bench $* failed"
    fi
    sed 's/^/    /' "$out.err" "$out" >&2
}

mark=$(wc -l <"$log")
for t in String SecureString; do
    prefix=/bench/string
    [[ $t == SecureString ]] && prefix=/bench/secure
    say "creating $keys $t parameters of $VALUE_SIZE bytes under $prefix"
    run_bench "$work/load-$t.out" --endpoint "$ep" --load-only "$keys" \
        --clients "$CLIENTS" --connections "$CONNECTIONS" \
        --value-size "$VALUE_SIZE" --type "$t" --prefix "$prefix"
done

RUNS=(put-s put-ss get-s get-ss-dec get-ss-sealed)
declare -A run_name=(
    [put-s]="put String"
    [put-ss]="put SecureString"
    [get-s]="get String"
    [get-ss-dec]="get SecureString, WithDecryption"
    [get-ss-sealed]="get SecureString, sealed (no decryption)"
)
declare -A run_args=(
    [put-s]="--op put --type String --prefix /bench/string"
    [put-ss]="--op put --type SecureString --prefix /bench/secure"
    [get-s]="--op get --prefix /bench/string"
    [get-ss-dec]="--op get --with-decryption --prefix /bench/secure"
    [get-ss-sealed]="--op get --prefix /bench/secure"
)
declare -A run_base=(  # the String run a SecureString run is compared with
    [put-ss]=put-s
    [get-ss-dec]=get-s
    [get-ss-sealed]=get-s
)
declare -A result     # [run] = "QPS p50 p99 max errors"
declare -A first_err  # [run] = the "first error:" line, if any
declare -A snaps      # [run] = snapshots the node took during it
declare -A log_from   # [run] = first line of the log written during it
declare -A log_to     # [run] = last one

# The node's log lines written during run $1 (none if it wrote none).
log_lines() {
    awk -v a="${log_from[$1]}" -v b="${log_to[$1]}" \
        'NR >= a && NR <= b' "$log"
}

for r in "${RUNS[@]}"; do
    check_node
    say "${run_name[$r]}: $CLIENTS clients, $CONNECTIONS connections," \
        "$seconds s"
    log_from[$r]=$(($(wc -l <"$log") + 1))
    mark=$((log_from[$r] - 1))
    # shellcheck disable=SC2086 # run_args holds several words
    run_bench "$work/$r.out" --endpoint "$ep" --clients "$CLIENTS" \
        --connections "$CONNECTIONS" --seconds "$seconds" --keys "$keys" \
        --value-size "$VALUE_SIZE" --no-load ${run_args[$r]}
    log_to[$r]=$(wc -l <"$log")
    op=${r%%-*}
    # op clients conns QPS p50 p99 p99.9 max errors
    result[$r]=$(awk -v op="$op" '$1 == op { print $4, $5, $6, $8, $9; exit }' \
        "$work/$r.out")
    [[ -n ${result[$r]} ]] || die "no $op row in $work/$r.out"
    first_err[$r]=$(sed -n 's/^ *first error: //p' "$work/$r.out")
    snaps[$r]=$(log_lines "$r" |
        grep -cE 'snapshot at index [0-9]+ copied' || true)
done
check_node

# ---- a check of what was stored -------------------------------------------

name=/bench/secure/app0000/key0
check=ok
dec=$("$cairn" --endpoint "$ep" get-parameter --name "$name" \
    --with-decryption --output json 2>&1) || check="get-parameter failed: $dec"
sealed=$("$cairn" --endpoint "$ep" get-parameter --name "$name" \
    --output json 2>&1) || check="get-parameter failed: $sealed"
if [[ $check == ok ]]; then
    want=$(printf "%${VALUE_SIZE}s" '' | tr ' ' v)
    dtype=$(jq -r .Parameter.Type <<<"$dec")
    dval=$(jq -r .Parameter.Value <<<"$dec")
    sval=$(jq -r .Parameter.Value <<<"$sealed")
    if [[ $dtype != SecureString ]]; then
        check="$name has type $dtype"
    elif [[ $dval != "$want" ]]; then
        check="$name decrypts to ${#dval} bytes, not the $VALUE_SIZE written"
    elif [[ $sval != Q1JORQ* ]]; then
        check="$name without decryption is not a sealed value: ${sval:0:40}"
    else
        check="ok: $name is a SecureString; WithDecryption gives the"
        check+=" $VALUE_SIZE bytes written, without it a sealed value of"
        check+=" $(base64 -d <<<"$sval" | wc -c) bytes (\"CRNE\"...)"
    fi
fi
say "check: $check"

# ---- summary --------------------------------------------------------------

# ratio A B: A / B to 2 decimals, or "-".
ratio() {
    awk -v a="$1" -v b="$2" 'BEGIN {
        if (b + 0 == 0) print "-"; else printf "%.2f\n", a / b }'
}

cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null ||
    true)
version=$("$cairnd" --version 2>/dev/null || echo unknown)
echo "## SecureString vs String, one node"
echo
echo "$version, $buildtype build ($build), $(nproc) CPU(s)${cpu:+ ($cpu)}," \
    "$(date -u +%Y-%m-%dT%H:%MZ)."
echo "$CLIENTS clients over $CONNECTIONS connections, $seconds s per run," \
    "$VALUE_SIZE-byte values, $keys parameters of each type; gets are" \
    "linearizable. Latencies in ms; the ratios are the SecureString run's" \
    "figure divided by that of the String run of the same operation" \
    "(QPS < 1 and latency > 1: SecureString is slower)."
echo
echo "| run | QPS | p50 | p99 | max | errors | snapshots | QPS ratio | p50 ratio | p99 ratio | max ratio |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
for r in "${RUNS[@]}"; do
    read -r qps p50 p99 max errors <<<"${result[$r]}"
    b=${run_base[$r]:-}
    if [[ -n $b ]]; then
        read -r bqps bp50 bp99 bmax _ <<<"${result[$b]}"
        rs="$(ratio "$qps" "$bqps") | $(ratio "$p50" "$bp50") |"
        rs+=" $(ratio "$p99" "$bp99") | $(ratio "$max" "$bmax")"
    else
        rs="(base) | | |"
    fi
    printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' "${run_name[$r]}" \
        "$qps" "$p50" "$p99" "$max" "$errors" "${snaps[$r]}" "$rs"
done
echo
echo "Loads (64 writes in flight, before the runs):"
for t in String SecureString; do
    sed -n 's/^loaded /- '"$t"': /p' "$work/load-$t.out.err"
done
echo
echo "Check: $check"
any_err=no
for r in "${RUNS[@]}"; do
    [[ -n ${first_err[$r]} ]] || continue
    any_err=yes
    echo
    echo "**${run_name[$r]}**: first error: ${first_err[$r]}"
    lines=$(log_lines "$r" | head -n 40)
    if [[ -n $lines ]]; then
        echo "The server's log during the run (up to 40 lines):"
        echo '```'
        printf '%s\n' "$lines"
        echo '```'
    else
        echo "The server logged nothing during the run."
    fi
done
if [[ $any_err == no ]]; then
    echo
    echo "No request failed."
fi
n_warn=$(grep -cE '^[^ ]+ (warn|error) ' "$log" || true)
if ((n_warn > 0)); then
    echo
    echo "The server logged $n_warn warn/error line(s) in all; the first:"
    echo '```'
    grep -E '^[^ ]+ (warn|error) ' "$log" | head -n 10
    echo '```'
fi
say "done"
