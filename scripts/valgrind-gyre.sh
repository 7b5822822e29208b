#!/usr/bin/env bash
# gyre under valgrind's memcheck, for `make valgrind` (the integration tests start it as GYRE_BIN).
# Each process (master, workers) writes build/valgrind/vg.PID.log. PYTHONMALLOC=malloc sends
# CPython's small objects through malloc, so valgrind sees them; python3.supp (Debian's valgrind)
# silences CPython's own known reports. Leaks: only "definitely lost" counts.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$root/build/valgrind"
export PYTHONMALLOC=malloc
exec valgrind --quiet --error-exitcode=99 --suppressions=/usr/lib/valgrind/python3.supp \
    --leak-check=full --show-leak-kinds=definite --errors-for-leak-kinds=definite \
    --trace-children=no --child-silent-after-fork=no \
    --log-file="$root/build/valgrind/vg.%p.log" "$root/gyre" "$@"
