# tests/lib.sh - what the shell tests share; source it after setting `here`
# (the tests folder):
#
#   lib_tmp NAME    a new temporary folder in $tmp, removed at exit together
#                   with the daemons whose pids the test adds to $pids
#   $here/specs/tiny.json   the tiny model (conv 3x3/8, relu, pool, fc 10) the
#                   client-side tests serve, with 20714 random weights

lib_cleanup() {
    for p in $pids; do
        kill "$p" 2>/dev/null
    done
    for p in $pids; do
        wait "$p" 2>/dev/null
    done
    rm -rf "$tmp"
}

lib_tmp() {
    tmp=$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX")
    pids=""
    trap lib_cleanup EXIT
    trap 'exit 1' HUP INT TERM
}
