#!/usr/bin/env bash
# Stop the local test cluster started by tests/slurm/start-cluster.sh (slurmd, slurmctld, munged).
#   tests/slurm/stop-cluster.sh                 # stop everything
#   tests/slurm/stop-cluster.sh --daemons-only  # keep munged running
set -uo pipefail
STATE="${WSGM_SLURM_STATE:-/var/lib/wsgm-slurm}"
stop() {  # pidfile
  [ -s "$1" ] || return 0
  local pid; pid="$(cat "$1")"
  kill "$pid" 2>/dev/null || return 0
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
}
stop "$STATE/slurmd.pid"
stop "$STATE/slurmctld.pid"
if [ "${1:-}" != "--daemons-only" ]; then
  stop /run/munge/munged.pid
fi
