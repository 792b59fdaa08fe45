#!/bin/bash
# Entry point of the shardcast image (deploy/docker/Dockerfile).
#   serve FLAGS...      mpirun -np $SHARDCAST_RANKS shardcastd FLAGS (one loader rank per GPU).
#                       SIGTERM (pod termination) goes to the shardcastd ranks, which drain (health
#                       NOT_SERVING, transfers in flight finish) and exit 0; mpirun would instead
#                       kill the job and exit 1. The exit status is shardcastd's (README: 0/1/2/3).
#   copy-client DIR     copies the client for a trainer container of another image into DIR:
#                       DIR/python (PYTHONPATH=DIR/python: `import shardcast`, the CLI as
#                       DIR/python/shardcast/_bin/shardcast, native libraries bundled), DIR/wheels.
#   anything else       run as given (e.g. `shardcast status`, `shardcastd --version`).
set -euo pipefail
SHARDCAST_HOME=${SHARDCAST_HOME:-/opt/shardcast}

serve() {
  mpirun --allow-run-as-root -np "${SHARDCAST_RANKS:-1}" --mca orte_abort_on_non_zero_status 0 \
    -x NCCL_NVLS_ENABLE -x PATH "$SHARDCAST_HOME/bin/shardcastd" "$@" &
  local pid=$! status=0
  # The ranks are mpirun's children on this node.
  trap 'pkill -TERM -P "$pid" -x shardcastd || true' TERM INT
  wait "$pid" || status=$?
  if kill -0 "$pid" 2>/dev/null; then   # woken by the trap: wait for the drain itself
    status=0
    wait "$pid" || status=$?
  fi
  exit "$status"
}

copy_client() {
  local dest=${1:?copy-client needs the destination folder (a volume the trainer mounts)}
  mkdir -p "$dest"
  cp -a "$SHARDCAST_HOME/python" "$SHARDCAST_HOME/wheels" "$dest/"
  echo "shardcast client copied to $dest: PYTHONPATH=$dest/python, CLI $dest/python/shardcast/_bin/shardcast"
}

case "${1:-}" in
  serve) shift; serve "$@" ;;
  copy-client) shift; copy_client "$@" ;;
  "") echo "usage: entrypoint.sh serve SHARDCASTD_FLAGS... | copy-client DIR | COMMAND..." >&2; exit 2 ;;
  *) exec "$@" ;;
esac
