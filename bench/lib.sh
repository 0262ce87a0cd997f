# shellcheck shell=bash disable=SC2154
# Helpers shared by the benchmark scripts (sourced, not run). The caller
# sets $prog and $build first.

die() {
    printf '%s: %s\n' "$prog" "$*" >&2
    exit 1
}

t_start=$EPOCHREALTIME
# A progress line on stderr, with the seconds since the script started.
say() {
    awk -v a="$EPOCHREALTIME" -v b="$t_start" -v m="$*" \
        'BEGIN { printf "[%6.1fs] %s\n", a - b, m }' >&2
}

# Set $buildtype and $sanitize from $build's meson options, and warn when
# it is not a release build without sanitizers.
warn_unless_release() {
    local info=$build/meson-info/intro-buildoptions.json
    buildtype=unknown
    sanitize=none
    if [[ -f $info ]] && command -v jq >/dev/null; then
        buildtype=$(jq -r '.[] | select(.name == "buildtype") | .value' "$info")
        sanitize=$(jq -r '.[] | select(.name == "b_sanitize") | .value' "$info")
    fi
    if [[ $buildtype != release || $sanitize != none ]]; then
        say "warning: $build is a '$buildtype' build (sanitize: $sanitize);" \
            "figures need a release build"
    fi
}

# Whether process $1 is running (one of ours that exited is a zombie until
# it is waited for).
alive() {
    local state
    kill -0 "$1" 2>/dev/null || return 1
    state=$(awk '/^State:/ { print $2 }' "/proc/$1/status" 2>/dev/null) ||
        return 0
    [[ $state != Z ]]
}

# Whether something accepts connections on 127.0.0.1:$1.
listening() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}
