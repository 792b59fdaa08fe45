#!/usr/bin/env bash
# Cold start of the sidecar against a plain read of the same files (issue 13, goals 4 and 5), the
# page cache dropped before each run (needs root: /proc/sys/vm/drop_caches), the two alternating:
#   plain    the checkpoint's files (.metadata + data) read one after another, front to back, in
#            16 MiB reads (dd bs=16M: what read_bench calls a plain read)
#   cat-par  the same files read by one cat each, in parallel (the storage's parallelism)
#   mpirun   `mpirun -np N true`: the launcher's own cost, which any sidecar pays
#   sidecar  `mpirun -np N shardcastd --device D` (or, --launcher none, `shardcastd` started on its
#            own: one rank, no MPI) from launch until the ready file exists
# and each sidecar run's "start-up" log line (where its time went, step by step). --warm keeps the
# page cache (the files read once before each run) instead of dropping it.
#
#   bench/cold_start.sh CHECKPOINT [--device cuda|cpu] [--np N] [--runs K] [--bin DIR]
#                       [--launcher mpirun|none] [--warm]
# Prints one line per run and the medians; logs go to $OUT (default ./cold_start_results).
set -uo pipefail
ckpt=${1:?usage: bench/cold_start.sh CHECKPOINT [--device cuda|cpu] [--np N] [--runs K] [--bin DIR]}
shift
device=cuda np=1 runs=3 bin=bazel-bin/server how=mpirun warm=0
while [ $# -gt 0 ]; do
  case "$1" in
    --launcher) how=$2; shift 2 ;;
    --warm) warm=1; shift ;;
    --device) device=$2; shift 2 ;;
    --np) np=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --bin) bin=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
OUT=${OUT:-cold_start_results}
mkdir -p "$OUT"
export NCCL_NVLS_ENABLE=0
mpi=(mpirun --allow-run-as-root --oversubscribe -np "$np")
launch=("${mpi[@]}")
if [ "$how" = none ]; then
  [ "$np" = 1 ] || { echo "--launcher none starts one rank: leave --np at 1" >&2; exit 2; }
  launch=(env -u OMPI_COMM_WORLD_SIZE -u OMPI_COMM_WORLD_RANK -u PMI_RANK -u PMI_SIZE -u PMIX_RANK -u SLURM_PROCID)
fi
files=("$ckpt"/.metadata "$ckpt"/*.distcp)
drop() {
  if [ "$warm" = 1 ]; then cat "${files[@]}" > /dev/null; return; fi
  sync; echo 3 > /proc/sys/vm/drop_caches || { echo "cannot drop the page cache (root?)" >&2; exit 1; }
}
now() { date +%s.%N; }
secs() { python3 -c "import sys; print('%.3f' % (float(sys.argv[2]) - float(sys.argv[1])))" "$1" "$2"; }
declare -a plain par launcher sidecar
for i in $(seq 1 "$runs"); do
  drop; t0=$(now); for f in "${files[@]}"; do dd if="$f" of=/dev/null bs=16M status=none; done; t1=$(now); plain+=("$(secs "$t0" "$t1")")
  drop; t0=$(now); for f in "${files[@]}"; do cat "$f" > /dev/null & done; wait; t1=$(now); par+=("$(secs "$t0" "$t1")")
  t0=$(now); "${mpi[@]}" true; t1=$(now); launcher+=("$(secs "$t0" "$t1")")
  drop
  ready="$OUT/ready.$i.json" log="$OUT/shardcastd.$device.$how.$i.log"
  rm -f "$ready"
  t0=$(now)
  "${launch[@]}" "$bin/shardcastd" --checkpoint "$ckpt" --device "$device" --listen localhost:0 \
    --ready-file "$ready" > "$log" 2>&1 &
  pid=$!
  while [ ! -s "$ready" ] && kill -0 "$pid" 2>/dev/null; do sleep 0.002; done
  t1=$(now)
  kill -TERM "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
  grep -q '"ready"' "$ready" 2>/dev/null || { echo "run $i: the sidecar did not become ready:"; tail -5 "$log"; exit 1; }
  sidecar+=("$(secs "$t0" "$t1")")
  echo "run $i: plain read ${plain[-1]} s, parallel cat ${par[-1]} s, mpirun true ${launcher[-1]} s, sidecar ready ${sidecar[-1]} s"
  grep "start-up" "$log" | sed 's/^/  /'
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
p=$(median "${plain[@]}") q=$(median "${par[@]}") m=$(median "${launcher[@]}") s=$(median "${sidecar[@]}")
echo "medians of $runs ($device, np $np, launcher $how, $([ "$warm" = 1 ] && echo warm || echo cold)): plain read $p s, parallel cat $q s, mpirun true $m s, sidecar ready $s s"
python3 -c "import sys; p,s=float(sys.argv[1]),float(sys.argv[2]); print('sidecar / plain read: %.2fx (goal: 1.15x or less)' % (s/p))" "$p" "$s"
