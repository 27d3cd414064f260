#!/bin/bash
# submit.sh - one evaluation over a Slurm cluster: an array job of N shards
# (advjpg-shard.sbatch: advjpgd --run ... --shard auto/N, one task each) and
# the merge job (advjpg-merge.sbatch) after it (--dependency=afterok).
#
#   deploy/slurm/submit.sh --request req.json --data-root /data/imagenet \
#       --out /shared/run1 --shards 16 [--cpus 4] [-- ADVJPGD-OPTION...]
#
# The output folder must be on a file system every node sees. Other sbatch
# settings come from sbatch's own environment variables (SBATCH_PARTITION,
# SBATCH_TIMELIMIT, SBATCH_ACCOUNT, ...). Prints the two job ids; the
# result is $OUT/merged/result.json once the merge job has run.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
usage() {
  echo "usage: $0 --request FILE --data-root DIR --out DIR --shards N [--cpus C] [-- ADVJPGD-OPTION...]" >&2
  exit 2
}
request='' data_root='' out='' shards='' cpus=2
while [ $# -gt 0 ]; do
  case $1 in
    --request) request=$2; shift 2 ;;
    --data-root) data_root=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --shards) shards=$2; shift 2 ;;
    --cpus) cpus=$2; shift 2 ;;
    --) shift; break ;;
    *) usage ;;
  esac
done
if [ -z "$request" ] || [ -z "$data_root" ] || [ -z "$out" ] || [ -z "$shards" ]; then usage; fi
case $shards in '' | *[!0-9]* | 0) usage ;; esac
abs() { (cd "$(dirname "$1")" && echo "$(pwd)/$(basename "$1")"); }
mkdir -p "$out"
request=$(abs "$request") data_root=$(abs "$data_root") out=$(abs "$out")
common="ALL,ADVJPG_OUT=$out,ADVJPG_SHARDS=$shards"
array=$(sbatch --parsable --array="0-$((shards - 1))" --cpus-per-task="$cpus" \
  --chdir="$out" \
  --export="$common,ADVJPG_REQUEST=$request,ADVJPG_DATA_ROOT=$data_root,ADVJPGD_ARGS=$*" \
  "$here/advjpg-shard.sbatch")
array=${array%%;*}
merge=$(sbatch --parsable --dependency="afterok:$array" --kill-on-invalid-dep=yes \
  --chdir="$out" --export="$common" "$here/advjpg-merge.sbatch")
merge=${merge%%;*}
echo "array job $array ($shards shards into $out/shard-*), merge job $merge (into $out/merged)"
