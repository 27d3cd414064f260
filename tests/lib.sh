# tests/lib.sh - what the shell tests share; source it after setting `here`
# (the tests folder):
#
#   lib_tmp NAME    a new temporary folder in $tmp, removed at exit together
#                   with the daemons whose pids the test adds to $pids
#   lib_daemon NAME [OPTIONS...]   starts advjpgd and waits for /health (below)
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

# lib_daemon NAME [OPTIONS...]: starts $ADVJPGD on 127.0.0.1 (a free port) with an
# empty config, the model $tmp/spec.json with $tmp/w.bin and the jobs folder
# $tmp/jobs-NAME, OPTIONS added; its output goes to (the end of) $tmp/NAME.log.
# Returns once /health answers 200 (the model may still be loading before), with
# $port, $url and $daemon_pid set (the pid added to $pids); exits the test with the
# log printed if the daemon dies or is not healthy within 60 s. Called again with
# the same NAME (after the first is stopped), it restarts on the same jobs folder.
lib_daemon() {
    name=$1
    shift
    : >>"$tmp/empty.conf"
    rm -f "$tmp/$name.port"
    "$ADVJPGD" --config "$tmp/empty.conf" --listen 127.0.0.1:0 --port-file "$tmp/$name.port" \
        --model "$tmp/spec.json" --weights "$tmp/w.bin" --jobs-dir "$tmp/jobs-$name" "$@" \
        >>"$tmp/$name.log" 2>&1 &
    daemon_pid=$!
    pids="$pids $daemon_pid"
    i=0
    while [ ! -s "$tmp/$name.port" ] ||
        ! curl -sf "http://127.0.0.1:$(cat "$tmp/$name.port")/health" >/dev/null 2>&1; do
        if ! kill -0 "$daemon_pid" 2>/dev/null || [ $i -ge 600 ]; then
            echo "FAIL: advjpgd ($name) did not start or never became healthy; its log:" >&2
            cat "$tmp/$name.log" >&2
            exit 1
        fi
        sleep 0.1
        i=$((i + 1))
    done
    port=$(cat "$tmp/$name.port")
    url="http://127.0.0.1:$port"
}
