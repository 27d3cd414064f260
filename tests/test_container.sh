#!/bin/sh
# test_container.sh - the container image's files, without a container engine:
#   1. deploy/Containerfile's runtime stage runs as a user other than root,
#      has a VOLUME that holds the jobs folder, a HEALTHCHECK, and starts
#      through deploy/container-entrypoint.sh (installed by the build stage),
#      with no 0.0.0.0 of its own in the ENTRYPOINT;
#   2. the entry point, with a stand-in daemon that prints its arguments:
#      refuses (exit 2, naming ADVJPGD_TOKEN) to listen on 0.0.0.0 without a
#      token; passes ADVJPGD_TOKEN as a --token-file of mode 600 (never on the
#      command line), ADVJPGD_TOKEN_FILE as it is, and a --token-file among the
#      arguments untouched; starts without one on a loopback address or with
#      ADVJPGD_ALLOW_NO_TOKEN=1;
#   3. the entry point with the real advjpgd (ADVJPGD) and ADVJPGD_TOKEN: the
#      daemon wants that token (401 without, 200 with), and the HEALTHCHECK's
#      own command (the build's client, ADVJPG, for /usr/local/bin/advjpg, this
#      daemon's port for 8080) succeeds with no token, and fails once the
#      daemon is gone.
# Needs python3 (which meson itself runs on). Exit 0 when every check passed,
# 1 otherwise, 77 (meson: skipped) without python3.
set -u

here=$(cd "$(dirname "$0")" && pwd)
src="$here/.."
containerfile="$src/deploy/Containerfile"
entry="$src/deploy/container-entrypoint.sh"
: "${ADVJPGD:?ADVJPGD must name the daemon}" "${ADVJPG:?ADVJPG must name the client}"
PYTHON=${PYTHON:-python3}
command -v "$PYTHON" >/dev/null 2>&1 || {
    echo "test_container: SKIP: no $PYTHON" >&2
    exit 77
}

# shellcheck source=tests/lib.sh
. "$here/lib.sh"
lib_tmp advjpg-container

failures=0
checks=0
fail() {
    failures=$((failures + 1))
    echo "FAIL: $*" >&2
}
# check DESCRIPTION COMMAND...
check() {
    desc=$1
    shift
    checks=$((checks + 1))
    "$@" || fail "$desc"
}

# ---- 1. the Containerfile ------------------------------------------------------

"$PYTHON" - "$containerfile" >"$tmp/static.out" 2>&1 <<'PY' || fail "Containerfile: $(cat "$tmp/static.out")"
import json, re, sys

text = open(sys.argv[1]).read().replace("\\\n", " ")
stages = re.split(r"(?m)^FROM ", text)
if len(stages) < 3:
    sys.exit("want a build stage and a runtime stage")
build, runtime = stages[-2], stages[-1]
lines = [l.strip() for l in runtime.splitlines() if l.strip() and not l.lstrip().startswith("#")]

def instr(name):
    return [l[len(name):].strip() for l in lines if l.upper().startswith(name + " ")]

problems = []
users = instr("USER")
if not users or users[-1].split(":")[0] in ("root", "0"):
    problems.append(f"the runtime stage runs as {users[-1] if users else 'root'}")
volumes = [v for spec in instr("VOLUME") for v in (json.loads(spec) if spec.startswith("[") else spec.split())]
env = " ".join(instr("ENV"))
m = re.search(r"ADVJPGD_JOBS_DIR=(\S+)", env)
jobs = m.group(1) if m else None
if not jobs or not any(jobs == v or jobs.startswith(v.rstrip("/") + "/") for v in volumes):
    problems.append(f"the jobs folder {jobs} is in no VOLUME ({volumes})")
if not instr("HEALTHCHECK"):
    problems.append("no HEALTHCHECK")
entry = instr("ENTRYPOINT")
if not entry:
    problems.append("no ENTRYPOINT")
else:
    argv = json.loads(entry[-1])
    if "0.0.0.0" in " ".join(argv):
        problems.append(f"the ENTRYPOINT listens on 0.0.0.0 itself: {argv}")
    m = re.search(r"deploy/container-entrypoint\.sh\s+(\S+)", build)
    if not m:
        problems.append("the build stage does not install deploy/container-entrypoint.sh")
    elif not m.group(1).endswith(argv[0]):
        problems.append(f"the ENTRYPOINT {argv[0]} is not the installed entry point {m.group(1)}")
if problems:
    sys.exit("; ".join(problems))
print("ok")
PY
checks=$((checks + 1))

# ---- 2. the entry point with a stand-in daemon -----------------------------------

cat >"$tmp/fake-advjpgd" <<'EOF'
#!/bin/sh
# prints one argument a line; for a --token-file, also its mode and first line
while [ $# -gt 0 ]; do
    echo "$1"
    if [ "$1" = --token-file ]; then
        echo "mode=$(stat -c %a "$2") token=$(head -n 1 "$2")"
    fi
    shift
done
echo "env-token=${ADVJPGD_TOKEN:-}"
EOF
chmod +x "$tmp/fake-advjpgd"

# entry [VAR=VALUE...] -- [ARGS...]: runs the entry point; $rc, $tmp/out, $tmp/err
entry() {
    set -- env -u ADVJPGD_TOKEN -u ADVJPGD_TOKEN_FILE -u ADVJPGD_ALLOW_NO_TOKEN -u ADVJPGD_LISTEN \
        ADVJPGD="$tmp/fake-advjpgd" TMPDIR="$tmp" "$@"
    "$@" >"$tmp/out" 2>"$tmp/err"
    rc=$?
}
has() { grep -qxF -- "$1" "$tmp/out"; }
err_has() { grep -qF -- "$1" "$tmp/err"; }
rc_is() { [ "$rc" -eq "$1" ]; }

entry ADVJPGD_LISTEN=0.0.0.0:8080 sh "$entry"
check "no token on 0.0.0.0: exit 2 (got $rc)" rc_is 2
check "no token: the message names ADVJPGD_TOKEN" err_has ADVJPGD_TOKEN
check "no token: the daemon is not started" test ! -s "$tmp/out"

entry sh "$entry" --model tiny
check "no token, default address: refused" rc_is 2

entry ADVJPGD_LISTEN=0.0.0.0:8080 ADVJPGD_TOKEN=s3cr3t sh "$entry" --model tiny
check "ADVJPGD_TOKEN: started" rc_is 0
check "ADVJPGD_TOKEN: --listen 0.0.0.0:8080" has 0.0.0.0:8080
check "ADVJPGD_TOKEN: a --token-file" has --token-file
check "ADVJPGD_TOKEN: its file is mode 600 and holds the token" has "mode=600 token=s3cr3t"
check "ADVJPGD_TOKEN: not on the command line" sh -c "! grep -qx s3cr3t '$tmp/out'"
check "ADVJPGD_TOKEN: unset for the daemon" has "env-token="
check "ADVJPGD_TOKEN: the daemon's own arguments follow" has --model

printf 'from-a-secret\n' >"$tmp/secret"
chmod 600 "$tmp/secret"
entry ADVJPGD_TOKEN_FILE="$tmp/secret" ADVJPGD_TOKEN=ignored sh "$entry"
check "ADVJPGD_TOKEN_FILE: started" rc_is 0
check "ADVJPGD_TOKEN_FILE: passed as it is, before ADVJPGD_TOKEN" has "$tmp/secret"

entry sh "$entry" --token-file "$tmp/secret"
check "--token-file among the arguments: started" rc_is 0
check "--token-file among the arguments: only that one" \
    test "$(grep -c -x -- --token-file "$tmp/out")" -eq 1

entry sh "$entry" --listen 127.0.0.1:9000
check "loopback without a token: started" rc_is 0
entry ADVJPGD_LISTEN=0.0.0.0:8080 sh "$entry" --listen=127.0.0.1:9000
check "--listen=loopback without a token: started" rc_is 0

entry ADVJPGD_ALLOW_NO_TOKEN=1 sh "$entry"
check "ADVJPGD_ALLOW_NO_TOKEN=1: started" rc_is 0
check "ADVJPGD_ALLOW_NO_TOKEN=1: says so" err_has "without a token"

# ---- 3. the real daemon, and the health check ------------------------------------

"$PYTHON" - "$tmp/w.bin" <<'PY' || exit 1
import random, struct, sys
rng = random.Random(5)
w = [rng.uniform(-0.1, 0.1) for _ in range(20714)]  # tests/specs/tiny.json's weights
open(sys.argv[1], "wb").write(struct.pack("<%df" % len(w), *w))
PY
: >"$tmp/empty.conf"
env -u ADVJPGD_TOKEN_FILE ADVJPGD="$ADVJPGD" ADVJPGD_TOKEN=real-token ADVJPGD_LISTEN=127.0.0.1:0 \
    ADVJPGD_JOBS_DIR="$tmp/jobs" TMPDIR="$tmp" sh "$entry" --config "$tmp/empty.conf" \
    --port-file "$tmp/port" --model "$here/specs/tiny.json" --weights "$tmp/w.bin" \
    >"$tmp/daemon.log" 2>&1 &
daemon=$!
pids="$daemon"
i=0
while [ ! -s "$tmp/port" ] && kill -0 "$daemon" 2>/dev/null && [ $i -lt 600 ]; do
    sleep 0.1
    i=$((i + 1))
done
if [ ! -s "$tmp/port" ]; then
    fail "advjpgd did not start through the entry point: $(cat "$tmp/daemon.log")"
else
    port=$(cat "$tmp/port")
    # the HEALTHCHECK's command, on this build's client and this daemon's port
    hc=$("$PYTHON" - "$containerfile" "$ADVJPG" "$port" <<'PY'
import json, re, shlex, sys
text = open(sys.argv[1]).read().replace("\\\n", " ")
m = re.search(r"(?m)^HEALTHCHECK .*?CMD (\[.*\])", text)
argv = json.loads(m.group(1))
argv = [sys.argv[2] if a == "/usr/local/bin/advjpg" else a.replace(":8080", ":" + sys.argv[3]) for a in argv]
print(" ".join(shlex.quote(a) for a in argv))
PY
    )
    i=0
    until eval "$hc" >"$tmp/hc.out" 2>&1 || [ $i -ge 100 ]; do
        sleep 0.2
        i=$((i + 1))
    done
    check "the HEALTHCHECK command succeeds on a running daemon ($hc): $(cat "$tmp/hc.out")" \
        eval "$hc" ">/dev/null 2>&1"
    code() { "$PYTHON" -c '
import sys, urllib.request, urllib.error
req = urllib.request.Request(sys.argv[1], headers={"Authorization": "Bearer " + sys.argv[2]} if sys.argv[2] else {})
try:
    print(urllib.request.urlopen(req, timeout=10).status)
except urllib.error.HTTPError as e:
    print(e.code)' "http://127.0.0.1:$port/models" "$1"; }
    check "the daemon wants the token: /models without it is 401 (got $(code ''))" test "$(code '')" = 401
    check "the daemon takes ADVJPGD_TOKEN: /models with it is 200 (got $(code real-token))" \
        test "$(code real-token)" = 200
    kill "$daemon" 2>/dev/null
    wait "$daemon" 2>/dev/null
    check "the HEALTHCHECK command fails once the daemon is gone" sh -c "! $hc >/dev/null 2>&1"
fi

if [ "$failures" -ne 0 ]; then
    echo "test_container: $failures of $checks checks failed" >&2
    exit 1
fi
echo "test_container: $checks checks passed"
exit 0
