#!/usr/bin/env bash
# test_slurm.sh - deploy/slurm/ on a real one-host Slurm: munged, slurmctld
# and slurmd started here with a generated key and a minimal slurm.conf on
# loopback (free ports, state and logs in a temporary folder), the node
# waited for (idle), then deploy/slurm/submit.sh: a 4-task array job of
# advjpgd --run --shard auto/4 over a generated set (the embedded model) and
# the merge job after it (--dependency=afterok); waited for, and the merged
# rows.csv compared byte for byte with one local --run (and its table).
# Everything started is stopped at exit. Installs nothing: ./run.sh's
# TEST_PACKAGES has slurm-wlm and munge. Runs as root and as a plain user
# (SlurmUser and SlurmdUser are whoever runs it; seen to pass as nobody).
# Skipped (77) when slurmctld or munged is missing, when munged does not
# start, or, as a user other than root, when the node never becomes idle.
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$here/..
# shellcheck source=tests/lib.sh
. "$here/lib.sh"
: "${ADVJPGD:?}" "${ADVJPG:?}" "${ADVJPG_GEN:?}"
for p in slurmctld slurmd munged sbatch sinfo squeue sacct scontrol; do
  command -v "$p" >/dev/null || PATH=$PATH:/usr/sbin
done
if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
  echo "SKIP: slurmctld or munged is not installed (./run.sh deps: slurm-wlm munge)"
  exit 77
fi
lib_tmp advjpg-slurm
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
stop_all() {
  [ -n "${SLURM_CONF:-}" ] && scancel --quiet --user "$(id -un)" 2>/dev/null
  for f in slurmd slurmctld munged; do
    [ -s "$tmp/$f.pid" ] && kill "$(cat "$tmp/$f.pid")" 2>/dev/null
  done
  sleep 0.5
  lib_cleanup
}
trap stop_all EXIT
user=$(id -un)
node=$(hostname -s)
free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# ---- munge: its own key, socket, pid, log and seed files here
mkdir -p "$tmp/munge" && chmod 700 "$tmp/munge"
dd if=/dev/urandom of="$tmp/munge/munge.key" bs=1024 count=1 2>/dev/null
chmod 400 "$tmp/munge/munge.key"
sock=$tmp/munge/munge.socket
munged --force --socket="$sock" --key-file="$tmp/munge/munge.key" --pid-file="$tmp/munged.pid" \
  --log-file="$tmp/munge/munged.log" --seed-file="$tmp/munge/munged.seed" 2>"$tmp/munged.err" || {
  echo "SKIP: munged does not start here:"; cat "$tmp/munged.err" "$tmp/munge/munged.log" 2>/dev/null
  exit 77
}
for _ in $(seq 1 50); do [ -S "$sock" ] && break; sleep 0.1; done

# ---- slurm.conf: one node (this machine as slurmd -C sees it), one partition
mkdir -p "$tmp/state" "$tmp/spool" "$tmp/jobs"
export SLURM_CONF=$tmp/slurm.conf
cat >"$SLURM_CONF" <<CONF
ClusterName=advjpgtest
SlurmctldHost=$node(127.0.0.1)
SlurmUser=$user
SlurmdUser=$user
SlurmctldPort=$(free_port)
SlurmdPort=$(free_port)
AuthType=auth/munge
AuthInfo=socket=$sock
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
StateSaveLocation=$tmp/state
SlurmdSpoolDir=$tmp/spool
SlurmctldPidFile=$tmp/slurmctld.pid
SlurmdPidFile=$tmp/slurmd.pid
SlurmctldLogFile=$tmp/slurmctld.log
SlurmdLogFile=$tmp/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
$(slurmd -C | head -n 1) NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=test Nodes=$node Default=YES MaxTime=INFINITE State=UP
CONF
slurmctld -D -i -f "$SLURM_CONF" >"$tmp/slurmctld.out" 2>&1 &
slurmd -D -N "$node" -f "$SLURM_CONF" >"$tmp/slurmd.out" 2>&1 &
idle=0
for _ in $(seq 1 300); do
  state=$(sinfo -h -N -n "$node" -o %t 2>/dev/null)
  case $state in idle*) idle=1; break ;; esac
  sleep 0.2
done
if [ $idle != 1 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "SKIP: as user $user the node never became idle (state '$state'); run as root:"
    tail -5 "$tmp/slurmd.log" "$tmp/slurmctld.log" 2>/dev/null
    exit 77
  fi
  echo "FAIL: the node never became idle (state '$state')"
  tail -20 "$tmp/slurmctld.log" "$tmp/slurmd.log" "$tmp/slurmctld.out" "$tmp/slurmd.out" 2>/dev/null
  exit 1
fi

# ---- the evaluation: 4 shards, then the merge
"$ADVJPG_GEN" --out "$tmp/data/set" --count 24 --seed 11 >/dev/null || exit 1
echo '{"dataset": "set", "eps": [1, 5]}' >"$tmp/req.json"
out=$tmp/run
cfg=(--config /dev/null --job-batch 4)
ids=$(ADVJPGD="$ADVJPGD" ADVJPG="$ADVJPG" "$root/deploy/slurm/submit.sh" --request "$tmp/req.json" \
  --data-root "$tmp/data" --out "$out" --shards 4 --cpus 1 -- "${cfg[@]}") ||
  { fail "submit.sh failed"; exit 1; }
echo "$ids"
array=$(echo "$ids" | sed -n 's/^array job \([0-9]*\).*/\1/p')
merge=$(echo "$ids" | sed -n 's/.*merge job \([0-9]*\).*/\1/p')
if [ -z "$array" ] || [ -z "$merge" ]; then fail "submit.sh printed no job ids"; fi
dep=$(scontrol show job "$merge" | grep -o 'Dependency=[^ ]*')
case $dep in *"afterok:${array}_"*) ;; *) fail "the merge job's dependency is '$dep', not afterok:${array}_*" ;; esac
for _ in $(seq 1 900); do
  [ -z "$(squeue -h -o %i 2>/dev/null)" ] && break
  sleep 0.2
done
[ -z "$(squeue -h -o %i)" ] || fail "jobs still queued after 180 s: $(squeue -h)"
for i in 0 1 2 3; do
  [ -s "$out/shard-$i/result.json" ] || fail "shard $i has no result (advjpg-shard-${array}_$i.out):"
done
[ -s "$out/merged/result.json" ] || { fail "no merged result:"; cat "$out"/advjpg-*.out; }
"$ADVJPGD" "${cfg[@]}" --data-root "$tmp/data" --run "$tmp/req.json" --out "$tmp/one" 2>/dev/null ||
  fail "the local run failed"
cmp -s "$tmp/one/rows.csv" "$out/merged/rows.csv" || fail "the merged rows differ from one local run's"
/usr/bin/python3 - "$tmp/one/result.json" "$out/merged/result.json" <<'PY' || fail "the merged table differs"
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:])
assert a["table"] == b["table"] and b["complete"] and b["n"] == 24
PY
if command -v shellcheck >/dev/null; then
  shellcheck "$root"/deploy/slurm/*.sh "$root"/deploy/slurm/*.sbatch || fail "deploy/slurm/ is not shellcheck-clean"
fi
[ $failures = 0 ] && echo "PASS: a 4-task Slurm array job and its merge equal one run"
[ $failures = 0 ]
