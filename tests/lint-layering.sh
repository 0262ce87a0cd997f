#!/bin/sh
# Fails when a lower layer includes a higher one: storage/ must not see Raft,
# libuv, sockets or the API; the wire codec and server must not see raft/ or
# storage/ directly (DESIGN.md section 1, STYLE.md 2.1).
root=${1:-.}
status=0
bad=$(grep -nE '#include *[<"](raft\.h|raft/|uv\.h|sys/socket\.h|api/|\.\./)' \
      "$root"/storage/*.c "$root"/storage/*.h 2>/dev/null)
if [ -n "$bad" ]; then
    echo "storage/ includes a higher layer:"; echo "$bad"; status=1
fi
bad=$(grep -nE '#include *[<"](uv\.h|api/|\.\./)' \
      "$root"/common/*.c "$root"/common/*.h 2>/dev/null)
if [ -n "$bad" ]; then
    echo "common/ includes a higher layer:"; echo "$bad"; status=1
fi
for f in "$root"/api/wire* "$root"/api/server* "$root"/api/handlers* \
         "$root"/raft/*; do
    [ -f "$f" ] || continue
    case "$f" in
    "$root"/raft/*) pat='#include *"(api/|service|wire|server|handlers)' ;;
    *) pat='#include *"(raft/|storage/|store\.h|sm\.h|query\.h|node\.h)' ;;
    esac
    bad=$(grep -nE "$pat" "$f")
    if [ -n "$bad" ]; then
        echo "$f reaches across the layering:"; echo "$bad"; status=1
    fi
done
[ $status -eq 0 ] && echo "layering ok"
exit $status
