#!/usr/bin/env bash
# test_kubernetes.sh - the manifests in deploy/kubernetes/ checked without a
# cluster: tests/k8s/validate.mjs (schemas of the API versions they name, no
# unknown fields, only options advjpgd --help lists) over each file, the
# validator itself shown to refuse broken copies, and advjpgd started with the
# container's entry point (deploy/Containerfile) plus the Deployment's args,
# paths moved under a temporary folder, until /health answers (and /livez);
# then the batch manifests' commands run the same way: the Indexed Job's pod
# for each index (SHARD and JOB_COMPLETION_INDEX set as the Job controller
# sets them) over a generated set, the merge Job's after them, and the merged
# rows compared byte for byte with one local run.
# Skipped (77) when npm is missing or the registry cannot be reached.
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$here/..
. "$here/lib.sh"
lib_tmp advjpg-k8s
if ! command -v npm >/dev/null; then
  echo "SKIP: npm is not installed (./run.sh deps installs it)"
  exit 77
fi
if ! (cd "$tmp" && timeout 240 npm install --no-audit --no-fund --silent --no-save \
        kubernetes-models@4.5.1 @kubernetes/client-node@2.0.1 yaml@2.9.1 >"$tmp/npm.log" 2>&1); then
  echo "SKIP: npm could not install the validator's packages:"
  tail -5 "$tmp/npm.log"
  exit 77
fi
cp "$here/k8s/validate.mjs" "$tmp/"
"$ADVJPGD" --help >"$tmp/help.txt"
"$ADVJPG" merge --help >"$tmp/merge-help.txt"
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

for f in "$root"/deploy/kubernetes/*.yaml; do
  node "$tmp/validate.mjs" "$tmp/help.txt" --merge-help="$tmp/merge-help.txt" "$f" || fail "$f"
done

# broken copies must be refused, each for its own reason
m=$root/deploy/kubernetes/advjpgd.yaml
check_refused() { # NAME SED-EXPRESSION EXPECTED-TEXT [MANIFEST]
  sed "$2" "${4:-$m}" >"$tmp/$1.yaml"
  if node "$tmp/validate.mjs" "$tmp/help.txt" --merge-help="$tmp/merge-help.txt" "$tmp/$1.yaml" >"$tmp/$1.out"; then
    fail "validator accepted $1"
  elif ! grep -q -- "$3" "$tmp/$1.out"; then
    fail "validator refused $1 but not for '$3':"; cat "$tmp/$1.out"
  fi
}
check_refused unknown-field 's/livenessProbe/livenesProbe/' 'livenesProbe: no such field'
check_refused bad-enum 's/type: Recreate/type: Recreat/' 'strategy/type must be equal'
check_refused bad-type 's/replicas: 1/replicas: "1"/' 'replicas must be integer'
check_refused bad-option 's/--data-root/--data-rot/' 'no option --data-rot'
check_refused bad-kind 's/^kind: Service$/kind: Servic/' 'unknown apiVersion/kind'
check_refused liveness-health '/livenessProbe/,/path/s|/livez|/health|' 'livenessProbe on /health'
check_refused no-readiness 's/readinessProbe:/readinesProbe:/' 'no readinessProbe'
b=$root/deploy/kubernetes/advjpg-batch.yaml
check_refused shard-count 's|auto/4|auto/5|' 'should pass --shard auto/4, not auto/5' "$b"
check_refused undeclared-env 's|shard-$(SHARD)|shard-$(INDEX)|' '$(INDEX) but no env INDEX' "$b"
check_refused bad-completions 's/completions: 4/completions: "4"/' 'completions must be integer' "$b"
check_refused bad-merge-option 's/"--out", "\/var\/lib\/advjpg\/results\/run1\/merged"/"--output", "x"/' \
  'advjpg merge has no option --output' "$root/deploy/kubernetes/advjpg-merge.yaml"

# the daemon as the pod runs it: the image's entry point (deploy/Containerfile:
# deploy/container-entrypoint.sh) with the Deployment's args, paths under $tmp
grep -q '^ENTRYPOINT \["/usr/local/bin/advjpg-container-entrypoint"\]' "$root/deploy/Containerfile" ||
  fail "the Containerfile's entry point is no longer deploy/container-entrypoint.sh: update this test"
cat >"$tmp/args.mjs" <<'JS'
import { readFileSync } from "node:fs";
import { parseAllDocuments } from "yaml";
const dep = parseAllDocuments(readFileSync(process.argv[2], "utf8")).map((d) => d.toJS()).find((d) => d?.kind === "Deployment");
const c = dep.spec.template.spec.containers[0];
if (c.command) console.log("COMMAND-SET");
for (const a of c.args ?? []) console.log(a);
JS
mapfile -t pod_args < <(cd "$tmp" && node args.mjs "$m")
[ "${#pod_args[@]}" -gt 0 ] && [ "${pod_args[0]}" != COMMAND-SET ] ||
  fail "the Deployment should pass args to the image's entry point (and set no command)"
mkdir -p "$tmp/var/lib/advjpg/data" "$tmp/etc/advjpg/token"
echo "k8s-test-token" >"$tmp/etc/advjpg/token/token"
args=()
for a in "${pod_args[@]}"; do
  case $a in /*) a=$tmp$a ;; esac
  args+=("$a")
done
: >"$tmp/empty.conf"
echo "container-entrypoint.sh ${args[*]}"
ADVJPGD="$ADVJPGD" ADVJPGD_LISTEN=127.0.0.1:0 ADVJPGD_JOBS_DIR="$tmp/var/lib/advjpg/jobs" \
  "$root/deploy/container-entrypoint.sh" "${args[@]}" --config "$tmp/empty.conf" --port-file "$tmp/port" \
  >"$tmp/daemon.log" 2>&1 &
pids="$pids $!"
ok=0
for _ in $(seq 1 300); do
  if [ -s "$tmp/port" ] && curl -sf "http://127.0.0.1:$(cat "$tmp/port")/health" >/dev/null 2>&1; then
    ok=1; break
  fi
  sleep 0.1
done
if [ $ok = 1 ]; then
  port=$(cat "$tmp/port")
  code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/models")
  [ "$code" = 401 ] || fail "/models without the Secret's token answered $code, not 401"
  code=$(curl -s -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer k8s-test-token' "http://127.0.0.1:$port/models")
  [ "$code" = 200 ] || fail "/models with the Secret's token answered $code"
  code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/livez")
  [ "$code" = 200 ] || fail "/livez (the liveness probe, no token) answered $code"
else
  fail "advjpgd with the pod's arguments never became healthy:"; cat "$tmp/daemon.log"
fi

# ---- the batch manifests' pods, run as the Job controller runs them
cat >"$tmp/job.mjs" <<'JS'
import { readFileSync } from "node:fs";
import { parseAllDocuments } from "yaml";
const docs = parseAllDocuments(readFileSync(process.argv[2], "utf8")).map((d) => d.toJS());
const job = docs.find((d) => d?.kind === "Job");
const c = job.spec.template.spec.containers[0];
if (c.command) console.log("COMMAND-SET");
if (process.argv[3] === "request") console.log(docs.find((d) => d?.kind === "ConfigMap").data["request.json"]);
else if (process.argv[3] === "completions") console.log(job.spec.completions);
else for (const a of c.args ?? []) console.log(a);
JS
bm=$root/deploy/kubernetes/advjpg-batch.yaml
mapfile -t job_args < <(cd "$tmp" && node job.mjs "$bm")
mapfile -t merge_args < <(cd "$tmp" && node job.mjs "$root/deploy/kubernetes/advjpg-merge.yaml")
n=$(cd "$tmp" && node job.mjs "$bm" completions)
[ "${job_args[0]}" != COMMAND-SET ] && [ "${merge_args[0]}" != COMMAND-SET ] ||
  fail "the batch Jobs should pass args to the image's entry point (and set no command)"
under_tmp() { case $1 in /*) echo "$tmp$1" ;; *) echo "$1" ;; esac; }
req=$(under_tmp /etc/advjpg/request/request.json)
data=$(under_tmp /var/lib/advjpg/data)
mkdir -p "$(dirname "$req")" "$data"
# the ConfigMap's request: a valid /evaluate body (its ImageNet folder is not here)
(cd "$tmp" && node job.mjs "$bm" request) >"$req"
entry() { ADVJPGD="$ADVJPGD" ADVJPG="$ADVJPG" "$root/deploy/container-entrypoint.sh" "$@"; }
pod_args() { # INDEX ARGS...: the pod's args, $(SHARD) expanded, paths under $tmp
  local i=$1 a; shift
  for a in "$@"; do under_tmp "${a//\$(SHARD)/$i}"; done
}
mapfile -t a0 < <(pod_args 0 "${job_args[@]}")
SHARD=0 JOB_COMPLETION_INDEX=0 entry "${a0[@]}" --config "$tmp/empty.conf" >"$tmp/cm.out" 2>&1
st=$?
[ $st = 2 ] && grep -q "imagenet/val" "$tmp/cm.out" ||
  { fail "the ConfigMap's request should be refused only for its missing dataset (exit $st):"; cat "$tmp/cm.out"; }
rm -rf "$(under_tmp /var/lib/advjpg/results)"
"$ADVJPG_GEN" --out "$data/set" --count 8 --seed 4 >/dev/null
echo '{"dataset": "set", "eps": [1]}' >"$req"
for ((i = 0; i < n; i++)); do
  mapfile -t ai < <(pod_args "$i" "${job_args[@]}")
  SHARD=$i JOB_COMPLETION_INDEX=$i entry "${ai[@]}" --config "$tmp/empty.conf" 2>"$tmp/shard-$i.log" ||
    { fail "the Indexed Job's pod $i failed:"; cat "$tmp/shard-$i.log"; }
done
mapfile -t am < <(pod_args x "${merge_args[@]}")
entry "${am[@]}" 2>"$tmp/merge.log" || { fail "the merge Job's pod failed:"; cat "$tmp/merge.log"; }
"$ADVJPGD" --config "$tmp/empty.conf" --data-root "$data" --run "$req" --out "$tmp/one" 2>/dev/null
merged=${am[-1]}
cmp -s "$tmp/one/rows.csv" "$merged/rows.csv" || fail "the Jobs' merged rows differ from one run's"

[ $failures = 0 ] && echo "PASS: deploy/kubernetes validated and its daemon arguments run"
[ $failures = 0 ]
