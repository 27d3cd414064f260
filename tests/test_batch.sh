#!/usr/bin/env bash
# test_batch.sh - batch mode (advjpgd --run) and advjpg merge, on the
# embedded model over a generated set:
#   1. one run over the whole set, then 4 shard runs (--shard I/4, one of them
#      through --shard auto/4 and $SLURM_ARRAY_TASK_ID, one through
#      $JOB_COMPLETION_INDEX) merged: rows.csv byte-identical to the one run,
#      result.json equal but for the id, the figures equal but for the id in
#      their caption; the rows of the single run checked against the daemon's
#      HTTP job of the same request (GET /jobs/ID/rows, GET /jobs/ID/result);
#   2. resuming: a run whose rows.csv was cut mid-row and whose status is gone
#      completes with the same bytes; a run stopped by SIGTERM exits 1 and,
#      run again, ends with the same rows; the same --out with another
#      request is refused (exit 2); a run whose status says it failed (a full
#      disk) is run again from its last row;
#   3. exit statuses: a bad request, a missing dataset, auto/N without the
#      environment (2); a set no image of which can be read (1);
#   4. the merge's refusals, each naming what is wrong: a shard missing, given
#      twice, unfinished, of another model, of other parameters, an image in
#      two shards, a non-empty --out.
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
: "${ADVJPGD:?}" "${ADVJPG:?}" "${ADVJPG_GEN:?}"
lib_tmp advjpg-batch
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
py=/usr/bin/python3
cd "$tmp" || exit 1
"$ADVJPG_GEN" --out data/set --count 16 --seed 7 >/dev/null || exit 1
echo '{"dataset": "set", "eps": [1], "seed": 3}' >req.json
run() { "$ADVJPGD" --config /dev/null --data-root data --run "$@"; }

# ---- 1. shards merged = one run
run req.json --out one 2>one.log || { fail "one run failed"; cat one.log; }
grep -q ' of 16 images' one.log || fail "no progress lines on stderr"
for f in request.json rows.csv status.json result.json figure3.svg figure4.svg; do
  [ -s one/$f ] || fail "one/$f missing"
done
run req.json --out s0 --shard 0/4 2>/dev/null || fail "shard 0/4"
SLURM_ARRAY_TASK_ID=1 run req.json --out s1 --shard auto/4 2>/dev/null || fail "shard auto/4 (Slurm)"
JOB_COMPLETION_INDEX=2 run req.json --out s2 --shard auto/4 2>/dev/null || fail "shard auto/4 (Kubernetes)"
run req.json --out s3 --shard 3/4 2>/dev/null || fail "shard 3/4"
"$ADVJPG" merge s0 s1 s2 s3 --out merged 2>merge.log || { fail "merge"; cat merge.log; }
cmp -s one/rows.csv merged/rows.csv || fail "merged rows.csv differs from one run's"
[ "$(grep -c . s1/rows.csv)" = 5 ] || fail "shard 1/4 should hold a header and 4 rows"
$py - one merged <<'PY' || fail "merged result or figures differ from one run's"
import json, sys
a, b = (json.load(open(d + "/result.json")) for d in sys.argv[1:])
ida, idb = a.pop("id"), b.pop("id")
assert a == b, [k for k in a if a[k] != b.get(k)]
assert a["complete"] and a["n"] == 16, a
for f in ("figure3.svg", "figure4.svg"):
    fa, fb = (open(d + "/" + f).read() for d in sys.argv[1:])
    assert fa.replace(ida, "ID") == fb.replace(idb, "ID"), f
ra, rb = (json.load(open(d + "/request.json")) for d in sys.argv[1:])
for k in ("id", "created", "created_ms"):
    ra.pop(k); rb.pop(k)
assert ra == rb, [k for k in ra if ra[k] != rb.get(k)]
PY
# the same request as an HTTP job of the daemon: the same rows and table
"$ADVJPGD" --config /dev/null --listen 127.0.0.1:0 --port-file port --data-root data \
  --jobs-dir jobs 2>daemon.log &
pids="$pids $!"
for _ in $(seq 1 300); do [ -s port ] && curl -sf "http://127.0.0.1:$(cat port)/health" >/dev/null && break; sleep 0.1; done
url=http://127.0.0.1:$(cat port)
id=$(curl -s -H 'Content-Type: application/json' --data @req.json "$url/evaluate" |
     $py -c 'import json,sys; print(json.load(sys.stdin)["id"])')
for _ in $(seq 1 600); do
  st=$(curl -s "$url/jobs/$id" | $py -c 'import json,sys; print(json.load(sys.stdin)["status"])')
  [ "$st" = done ] && break; sleep 0.1
done
curl -s "$url/jobs/$id/rows" >http-rows.csv
cmp -s http-rows.csv one/rows.csv || fail "the HTTP job's rows differ from --run's"
curl -s "$url/jobs/$id/result" >http-result.json
$py - <<'PY' || fail "the HTTP job's result differs from --run's result.json"
import json
a, b = json.load(open("http-result.json")), json.load(open("one/result.json"))
a.pop("id"); b.pop("id")
assert a == b
PY

# an adaptive attack: shards merged = one run, and its twin's columns are the
# non-adaptive run's (the same attack without adaptation), byte for byte
echo '{"dataset": "set", "eps": [1], "seed": 3, "attack": {"attack": "pgd", "steps": 2, "adaptive": "bpda"}}' >bpda.json
echo '{"dataset": "set", "eps": [1], "seed": 3, "attack": {"attack": "pgd", "steps": 2}}' >pgd.json
run bpda.json --out bpda 2>/dev/null || fail "the adaptive run"
run pgd.json --out pgd 2>/dev/null || fail "the non-adaptive run"
run bpda.json --out b0 --shard 0/2 2>/dev/null && run bpda.json --out b1 --shard 1/2 2>/dev/null ||
  fail "the adaptive shards"
"$ADVJPG" merge b0 b1 --out bmerged 2>/dev/null || fail "merge of adaptive shards"
cmp -s bpda/rows.csv bmerged/rows.csv || fail "merged adaptive rows.csv differs from one run's"
$py - bpda/rows.csv pgd/rows.csv <<'PY' || fail "the adaptive run's twin columns differ from the non-adaptive run's"
import csv, sys
(ha, *ra), (hn, *rn) = (list(csv.reader(open(f))) for f in sys.argv[1:])
assert ha[:len(hn)] == hn, "the non-adaptive columns first"
col = {h: i for i, h in enumerate(ha)}
def twin(h):
    t, _, f = h.rpartition(":")
    return "%s PGD-2:%s" % (t, f) if "Adv" in t else h
assert len(ra) == len(rn) == 16
for a, n in zip(ra, rn):
    assert [a[col[twin(h)]] for h in hn] == n, a[0]
PY

# ---- 2. resuming
cp -r one cut
rm cut/status.json cut/result.json cut/figure*.svg cut/.lock
head -c "$(($(head -n 8 one/rows.csv | wc -c) + 17))" one/rows.csv >cut/rows.csv # 7 rows and a torn one
run req.json --out cut 2>cut.log || fail "resumed run failed"
grep -q 'resuming at image 8 of 16' cut.log || { fail "the run did not resume at image 8"; cat cut.log; }
cmp -s cut/rows.csv one/rows.csv || fail "resumed rows.csv differs from one run's"
cmp -s cut/result.json one/result.json || fail "resumed result.json differs"
run req.json --out cut 2>/dev/null || fail "a run on a finished --out should exit 0"
cmp -s cut/rows.csv one/rows.csv || fail "a finished run changed its rows"
"$ADVJPGD" --config /dev/null --data-root data --job-batch 1 --run req.json --out stopped 2>stop.log &
p=$!
for _ in $(seq 1 1000); do
  n=$(grep -c . stopped/rows.csv 2>/dev/null)
  [ "${n:-0}" -ge 2 ] && break
  sleep 0.02
done
kill -TERM $p
wait $p
st=$?
if grep -q -- '--run stopped: done$' stop.log; then
  echo "note: the run ended before SIGTERM; the stop is not checked"
else
  [ $st = 1 ] || fail "a run stopped by SIGTERM exited $st, not 1"
  grep -q 'run again with the same --out to resume' stop.log || fail "no resume hint after SIGTERM"
  [ -e stopped/status.json ] && fail "a stopped run wrote status.json"
fi
run req.json --out stopped 2>/dev/null || fail "the stopped run did not resume"
cmp -s stopped/rows.csv one/rows.csv || fail "stopped and resumed rows differ from one run's"
# a failed run (here: its status says a full disk) is run again from its last row
cp -r one failed && rm failed/.lock
head -n 12 one/rows.csv >failed/rows.csv
$py - failed/status.json <<'PY'
import json, sys
s = json.load(open(sys.argv[1])); s.update(status="failed", error="No space left on device")
json.dump(s, open(sys.argv[1], "w"))
PY
run req.json --out failed 2>failed.log || fail "a failed run was not run again"
grep -q 'its last run failed (No space left on device); running it again' failed.log || fail "retry: message"
cmp -s failed/rows.csv one/rows.csv || fail "the rows of a failed run run again differ from one run's"
echo '{"dataset": "set", "eps": [1], "seed": 4}' >req-seed4.json
run req-seed4.json --out one 2>other.log
[ $? = 2 ] || fail "another request on the same --out should exit 2"
grep -q "holds another evaluation: its 'seed' is 3, this run's 4" other.log || { fail "other request: message"; cat other.log; }

# ---- 3. exit statuses
expect_exit() { # STATUS TEXT ARGS...
  local want=$1 text=$2; shift 2
  "$@" >out.txt 2>&1
  local got=$?
  [ $got = "$want" ] || fail "$* exited $got, not $want"
  grep -q -- "$text" out.txt || { fail "$*: no '$text' in:"; cat out.txt; }
}
echo '{"dataset": "set", "eps": "x"}' >bad.json
expect_exit 2 'eps' run bad.json --out bad
echo '{"dataset": "nosuch"}' >missing.json
expect_exit 2 'nosuch' run missing.json --out missing
expect_exit 2 'SLURM_ARRAY_TASK_ID' env -u SLURM_ARRAY_TASK_ID -u JOB_COMPLETION_INDEX \
  "$ADVJPGD" --config /dev/null --data-root data --run req.json --out x --shard auto/4
expect_exit 2 'not in 0..3' env SLURM_ARRAY_TASK_ID=4 \
  "$ADVJPGD" --config /dev/null --data-root data --run req.json --out x --shard auto/4
expect_exit 2 'go together' "$ADVJPGD" --config /dev/null --run req.json
mkdir -p data/broken
for i in 1 2 3; do echo "not an image" >data/broken/b$i.jpg; done
echo '{"dataset": "broken"}' >broken.json
expect_exit 1 'none of the 3 images could be read' run broken.json --out broken

# ---- 4. the merge's refusals
refused() { # TEXT DIR...
  local text=$1; shift
  rm -rf m
  "$ADVJPG" merge "$@" --out m >out.txt 2>&1
  local got=$?
  [ $got = 2 ] || fail "merge $* exited $got, not 2"
  grep -q -- "$text" out.txt || { fail "merge $*: no '$text' in:"; cat out.txt; }
}
refused 'shard 2/4 is missing' s0 s1 s3
refused 'shard 1/4 is given twice: s1 and s1' s0 s1 s1 s2 s3
cp -r s2 s2u
rm s2u/status.json
head -n 3 s2/rows.csv >s2u/rows.csv
refused 'unfinished shards .*s2u (shard 2/4, unfinished: 2 of 4 rows)' s0 s1 s2u s3
cp -r s3 s3m
$py - s3m/request.json <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); r["model"]["name"] = "other-model"
json.dump(r, open(sys.argv[1], "w"))
PY
refused "s0 and s3m are not shards of one evaluation: their 'model'" s0 s1 s2 s3m
# the same model name with other weights (one byte changed): its weights_sha256 differs
cp "$here/../config/advjpg-shapes.weights" other.weights
printf '\001' | dd of=other.weights bs=1 seek=100 conv=notrunc 2>/dev/null
run req.json --out s3w --shard 3/4 --weights other.weights 2>/dev/null || fail "shard 3/4, other weights"
refused "s0 and s3w are not shards of one evaluation: their 'model'" s0 s1 s2 s3w
echo '{"dataset": "set", "eps": [1, 10], "seed": 3}' >req-eps.json
run req-eps.json --out s3e --shard 3/4 2>/dev/null
refused "s0 and s3e are not shards of one evaluation: their 'eps' is \[1\] and \[1,10\]" s0 s1 s2 s3e
cp -r s1 s3d
$py - s3d/request.json <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); r["shard"]["index"] = 3
json.dump(r, open(sys.argv[1], "w"))
PY
refused "is in two shards: s1 and s3d" s0 s1 s2 s3d
mkdir -p full && touch full/x
"$ADVJPG" merge s0 s1 s2 s3 --out full >out.txt 2>&1
[ $? = 2 ] && grep -q 'not empty' out.txt || fail "merge into a non-empty --out"

[ $failures = 0 ] && echo "PASS: batch runs, resuming, shards merged equal one run, refusals"
[ $failures = 0 ]
