#!/usr/bin/env bash
# Cairn against etcd: the same closed-loop loads on a 3-node cluster of
# each, on this machine.
#
#   CAIRN_BUILD=build-release bench/compare.sh [--seconds S] [--base-port P]
#       [--keep] > compare.md
#
# Needs: a release build of Cairn in $CAIRN_BUILD (default ./build;
# tools/cairnd, tools/cairn, bench/cairn-bench), etcd (3.4, $ETCD, default
# `etcd` on PATH), Go with the etcd client sources (Debian:
# golang-etcd-server-dev, under /usr/share/gocode; $GOCODE overrides), jq
# and curl. bench/etcd-bench is built offline into a temporary GOPATH.
#
# Both clusters: 3 nodes on 127.0.0.1, data in temporary directories,
# default durability (etcd fsyncs its WAL; cairnd as shipped). Each system
# gets 10,000 keys of 1 KB, PREFIX/appNNNN/keyD with 10 keys per path; etcd
# also 10,000 under /bench100 with 100 keys per path, for the range of 100.
# Loads, S seconds each (default 5), 4 connections spread round-robin over
# the 3 nodes (the first node gets two):
#   put 1 KB            1 client and 64 clients
#   get (linearizable)  64 clients   (etcd: Get; Cairn: GetParameter)
#   get (stale)         64 clients   (etcd: WithSerializable; Cairn: --stale)
#   path read, 10 keys  16 clients   (etcd: Get WithPrefix; Cairn:
#                                      GetParametersByPath)
#   path read, 100 keys 16 clients   (etcd only: cairn-bench's by-path is
#                                      fixed at 10 results; n/a for Cairn)
# The two clusters run one after the other, never together. Progress on
# stderr, a markdown table on stdout. Ratio: Cairn QPS / etcd QPS.
#
# Ports: etcd node i on P+10*(i-1) (client) and the next (peer), Cairn
# node i on P+100+10*(i-1) (API) and the next (Raft); P is --base-port or
# the first of 36000, 36200, ..., 37800 with all those ports free. Every
# process started is stopped by its PID on exit (also after an error or
# Ctrl-C) and the temporary directory removed (--keep keeps it).
set -euo pipefail

prog=$(basename "$0")
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
seconds=5
base_port=
keep=no
KEYS=10000
CONNS=4


usage() {
    cat <<EOF
usage: $prog [--seconds S] [--base-port P] [--keep]

Runs the same loads (put 1 and 64 clients, linearizable and stale get,
path reads of 10 and 100 keys) on a 3-node etcd cluster and a 3-node Cairn
cluster, S seconds each (default 5); prints a markdown table on stdout.
Binaries from \$CAIRN_BUILD (default ./build), a release build.
EOF
}

while (($# > 0)); do
    case $1 in
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

here=$(cd "$(dirname "$0")" && pwd)
build=${CAIRN_BUILD:-./build}
cairnd=$build/tools/cairnd
cairn=$build/tools/cairn
cbench=$build/bench/cairn-bench
etcd_bin=${ETCD:-etcd}
gocode=${GOCODE:-/usr/share/gocode}
for b in "$cairnd" "$cairn" "$cbench"; do
    [[ -x $b ]] || die "no $b; build with 'meson setup $build" \
        "--buildtype=release -Dbench=true && ninja -C $build' or set CAIRN_BUILD"
done
command -v "$etcd_bin" >/dev/null || die "no etcd ($etcd_bin); apt-get install etcd-server"
command -v go >/dev/null || die "no go; apt-get install golang-go"
[[ -d $gocode/src/go.etcd.io/etcd/clientv3 ]] ||
    die "no etcd client sources in $gocode; apt-get install golang-etcd-server-dev"
command -v jq >/dev/null || die "jq is needed"
command -v curl >/dev/null || die "curl is needed"



warn_unless_release

# ---- processes ------------------------------------------------------------

work=$(mktemp -d "${TMPDIR:-/tmp}/cairn-compare.XXXXXX")
declare -A pid_of=() # name -> PID of a server we started
declare -A log_of=() # name -> its log



# stop NAME...: SIGTERM, up to 15 s, then SIGKILL.
stop() {
    local n pid t left
    for n in "$@"; do
        pid=${pid_of[$n]:-}
        if [[ -n $pid ]]; then
            kill -TERM "$pid" 2>/dev/null || true
        fi
    done
    for ((t = 0; t < 150; t++)); do
        left=0
        for n in "$@"; do
            pid=${pid_of[$n]:-}
            [[ -n $pid ]] && alive "$pid" && left=1
        done
        ((left == 0)) && break
        sleep 0.1
    done
    for n in "$@"; do
        pid=${pid_of[$n]:-}
        [[ -n $pid ]] || continue
        if alive "$pid"; then
            say "$n (PID $pid) did not stop in 15 s; sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
        wait "$pid" 2>/dev/null || true
        pid_of[$n]=
    done
}

# Die (showing its log) if one of the given servers has exited.
check() {
    local n pid
    for n in "$@"; do
        pid=${pid_of[$n]:-}
        if [[ -z $pid ]] || ! alive "$pid"; then
            say "$n exited; the end of ${log_of[$n]}:"
            tail -n 20 "${log_of[$n]}" >&2 || true
            exit 1
        fi
    done
}

cleanup() {
    local rc=$? n names=()
    set +e
    trap - EXIT INT TERM
    for n in "${!pid_of[@]}"; do
        [[ -n ${pid_of[$n]} ]] && names+=("$n")
    done
    ((${#names[@]} > 0)) && stop "${names[@]}"
    if [[ $keep == yes ]]; then
        say "kept $work"
    else
        rm -rf "$work"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [[ -z $base_port ]]; then
    for p in 36000 36200 36400 36600 36800 37000 37200 37400 37600 37800; do
        busy=no
        for off in 0 10 20 100 110 120; do
            if listening $((p + off)) || listening $((p + off + 1)); then
                busy=yes
            fi
        done
        if [[ $busy == no ]]; then
            base_port=$p
            break
        fi
    done
    [[ -n $base_port ]] || die "no free ports from 36000 to 37921; use --base-port"
elif ! [[ $base_port =~ ^[1-9][0-9]*$ ]] || ((base_port + 121 > 65535)); then
    die "bad --base-port $base_port"
fi
etcd_port() { echo $((base_port + 10 * ($1 - 1))); }
cairn_port() { echo $((base_port + 100 + 10 * ($1 - 1))); }

# ---- etcd-bench -----------------------------------------------------------

say "building etcd-bench (GOPATH $work/gopath, offline)"
mkdir -p "$work/gopath"
(cd "$here/.." && GOPATH="$work/gopath:$gocode" GO111MODULE=off \
    GOCACHE="$work/gocache" GOPROXY=off GOFLAGS="" \
    go build -o "$work/etcd-bench" ./bench/etcd-bench) 2>"$work/go-build.log" ||
    { cat "$work/go-build.log" >&2; die "building etcd-bench failed"; }
ebench=$work/etcd-bench

# run OUT CMD...: run a bench tool in the foreground; stdout to OUT, both
# to stderr indented.
run() {
    local out=$1
    shift
    if ! "$@" >"$out" 2>"$out.err"; then
        cat "$out" "$out.err" >&2
        die "$* failed"
    fi
    sed 's/^/    /' "$out.err" "$out" >&2
}

# "QPS p50 p99 errors" of the result row of op $2 in output $1.
summary_of() {
    awk -v op="$2" '$1 == op { printf "%s %s %s %s\n", $4, $5, $6, $9; exit }' "$1"
}

# Loads: id, label, clients; options per system.
LOADS=(put1 put64 get stale path10 path100)
declare -A label=(
    [put1]="put 1 KB" [put64]="put 1 KB" [get]="get (linearizable)"
    [stale]="get (stale / serializable)" [path10]="path read, 10 keys"
    [path100]="path read, 100 keys"
)
declare -A clients=([put1]=1 [put64]=64 [get]=64 [stale]=64 [path10]=16 [path100]=16)
declare -A cairn_args=(
    [put1]="--op put" [put64]="--op put" [get]="--op get"
    [stale]="--op get --stale" [path10]="--op by-path" [path100]=""
)
declare -A cairn_op=([put1]=put [put64]=put [get]=get [stale]=get [path10]=by-path)
declare -A etcd_args=(
    [put1]="--op put" [put64]="--op put" [get]="--op get"
    [stale]="--op get-serializable" [path10]="--op range --range-size 10"
    [path100]="--op range --range-size 100 --prefix /bench100"
)
declare -A etcd_op=([put1]=put [put64]=put [get]=get [stale]=get-serializable
    [path10]=range [path100]=range)
declare -A result=() # [system:load] = "QPS p50 p99 errors"

# ---- etcd -----------------------------------------------------------------

ecluster=
eeps=
for i in 1 2 3; do
    ecluster+="${ecluster:+,}e$i=http://127.0.0.1:$(($(etcd_port $i) + 1))"
    eeps+="${eeps:+,}127.0.0.1:$(etcd_port $i)"
done
say "== etcd ($("$etcd_bin" --version | awk 'NR == 1 { print $3 }')): starting 3 members ($eeps)"
for i in 1 2 3; do
    d=$work/etcd-$i
    mkdir -p "$d"
    p=$(etcd_port $i)
    "$etcd_bin" --name "e$i" --data-dir "$d/data" \
        --listen-client-urls "http://127.0.0.1:$p" \
        --advertise-client-urls "http://127.0.0.1:$p" \
        --listen-peer-urls "http://127.0.0.1:$((p + 1))" \
        --initial-advertise-peer-urls "http://127.0.0.1:$((p + 1))" \
        --initial-cluster "$ecluster" --initial-cluster-state new \
        --initial-cluster-token cairn-compare \
        --logger zap --log-outputs stderr \
        >"$d/etcd.log" 2>&1 </dev/null &
    pid_of[etcd-$i]=$!
    log_of[etcd-$i]=$d/etcd.log
done
for ((t = 0; ; t++)); do
    ok=0
    for i in 1 2 3; do
        if curl -fsS -m 1 "http://127.0.0.1:$(etcd_port $i)/health" 2>/dev/null |
            grep -q '"health":"true"'; then
            ok=$((ok + 1))
        fi
    done
    ((ok == 3)) && break
    check etcd-1 etcd-2 etcd-3
    ((t < 600)) || die "etcd is not healthy after 60 s; see $work"
    sleep 0.1
done
say "etcd ready; creating $KEYS keys under /bench (10 per path) and $KEYS under /bench100 (100 per path)"
ed=$work/etcd-out
mkdir -p "$ed"
run "$ed/load.out" "$ebench" --endpoints "$eeps" --load-only "$KEYS" \
    --clients 64 --connections "$CONNS"
run "$ed/load100.out" "$ebench" --endpoints "$eeps" --load-only "$KEYS" \
    --clients 64 --connections "$CONNS" --prefix /bench100 --range-size 100
for l in "${LOADS[@]}"; do
    check etcd-1 etcd-2 etcd-3
    say "etcd: ${label[$l]}, ${clients[$l]} clients, $seconds s"
    # shellcheck disable=SC2086 # etcd_args holds several words
    run "$ed/$l.out" "$ebench" --endpoints "$eeps" --connections "$CONNS" \
        --seconds "$seconds" --keys "$KEYS" --no-load \
        --clients "${clients[$l]}" ${etcd_args[$l]}
    result[etcd:$l]=$(summary_of "$ed/$l.out" "${etcd_op[$l]}")
done
say "etcd: stopping"
stop etcd-1 etcd-2 etcd-3

# ---- Cairn ----------------------------------------------------------------

ccluster=
ceps=
for i in 1 2 3; do
    ccluster+="${ccluster:+,}$i=127.0.0.1:$(($(cairn_port $i) + 1))"
    ceps+="${ceps:+,}127.0.0.1:$(cairn_port $i)"
done
say "== Cairn: starting 3 nodes ($ceps)"
for i in 1 2 3; do
    d=$work/cairn-$i
    mkdir -p "$d"
    p=$(cairn_port $i)
    "$cairnd" --node-id "$i" --data-dir "$d" --api "127.0.0.1:$p" \
        --raft "127.0.0.1:$((p + 1))" --initial-cluster "$ccluster" \
        >"$d/cairnd.log" 2>&1 </dev/null &
    pid_of[cairn-$i]=$!
    log_of[cairn-$i]=$d/cairnd.log
done
# Ready: a leader and 3 members answering as leader or follower with their
# API address registered (writes on a follower need the leader's).
for ((t = 0; ; t++)); do
    json=$("$cairn" --endpoint "$ceps" cluster status --output json 2>/dev/null || true)
    if [[ -n $json ]]; then
        n=$(jq '[.Members[] | select((.State == "leader" or
                .State == "follower") and (.ApiAddress // "") != "")]
                | length' <<<"$json")
        (($(jq '.Leader // 0' <<<"$json") > 0 && n >= 3)) && break
    fi
    check cairn-1 cairn-2 cairn-3
    ((t < 600)) || die "the Cairn cluster is not ready after 60 s; see $work"
    sleep 0.1
done
say "Cairn ready; creating $KEYS parameters"
cd_=$work/cairn-out
mkdir -p "$cd_"
run "$cd_/load.out" "$cbench" --endpoint "$ceps" --load-only "$KEYS" \
    --clients 64 --connections "$CONNS"
for l in "${LOADS[@]}"; do
    if [[ -z ${cairn_args[$l]} ]]; then
        say "Cairn: ${label[$l]}: n/a (cairn-bench's by-path returns 10 results)"
        continue
    fi
    check cairn-1 cairn-2 cairn-3
    say "Cairn: ${label[$l]}, ${clients[$l]} clients, $seconds s"
    # shellcheck disable=SC2086 # cairn_args holds several words
    run "$cd_/$l.out" "$cbench" --endpoint "$ceps" --connections "$CONNS" \
        --seconds "$seconds" --keys "$KEYS" --no-load \
        --clients "${clients[$l]}" ${cairn_args[$l]}
    result[cairn:$l]=$(summary_of "$cd_/$l.out" "${cairn_op[$l]}")
done
say "Cairn: stopping"
stop cairn-1 cairn-2 cairn-3

# ---- summary --------------------------------------------------------------

echo "## Cairn and etcd, 3 nodes each"
echo
printf '%s, %s cores, Cairn %s build, etcd %s; closed-loop clients\n' \
    "$(date -u +%Y-%m-%dT%H:%MZ)" "$(nproc)" "$buildtype" \
    "$("$etcd_bin" --version | awk 'NR == 1 { print $3 }')"
printf '(cairn-bench, etcd-bench), %s s per load over %s keys of 1 KB, %s\n' \
    "$seconds" "$KEYS" "$CONNS"
echo "connections spread round-robin over the 3 nodes, everything on"
echo "127.0.0.1, one cluster at a time. Latencies in ms; ratio = Cairn QPS /"
echo "etcd QPS."
echo
echo "| operation | clients | Cairn QPS | p50 | p99 | etcd QPS | p50 | p99 | ratio |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
errors_note=
for l in "${LOADS[@]}"; do
    read -r cq cp50 cp99 ce <<<"${result[cairn:$l]:-n/a n/a n/a 0}"
    read -r eq ep50 ep99 ee <<<"${result[etcd:$l]:-n/a n/a n/a 0}"
    ratio=n/a
    if [[ $cq =~ ^[0-9]+$ && $eq =~ ^[0-9]+$ ]] && ((eq > 0)); then
        ratio=$(awk -v a="$cq" -v b="$eq" 'BEGIN { printf "%.2f", a / b }')
    fi
    printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "${label[$l]}" \
        "${clients[$l]}" "$cq" "$cp50" "$cp99" "$eq" "$ep50" "$ep99" "$ratio"
    if [[ $ce != 0 || $ee != 0 ]]; then
        errors_note+="${label[$l]} (${clients[$l]} clients): $ce errors on Cairn, $ee on etcd. "
    fi
done
echo
echo "- put: Cairn PutParameter (Overwrite) / etcd Put of a random one of the"
echo "  keys. get: GetParameter / linearizable Get; stale: GetParameter with"
echo "  consistency stale / Get WithSerializable. path read: Cairn"
echo "  GetParametersByPath (MaxResults 10) / etcd Get WithPrefix of"
echo "  PREFIX/appNNNN/."
echo "- path read of 100 keys: n/a for Cairn, cairn-bench's by-path is fixed"
echo "  at 10 results per path (10 parameters per path, MaxResults 10)."
[[ -n $errors_note ]] && printf -- '- errors: %s\n' "$errors_note"
say "done"
