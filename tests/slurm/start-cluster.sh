#!/usr/bin/env bash
# Start a single-node SLURM cluster on localhost (no systemd), for the `slurm` tests and CI.
#   sudo tests/slurm/start-cluster.sh      # installs Debian's munge + slurm if missing
#   tests/slurm/stop-cluster.sh            # stops it again
# munged runs as the munge user; slurmctld and slurmd as root with select/cons_tres,
# proctrack/linuxproc, no accounting database and GRES gpu backed by stand-in device files
# (character devices 1:3, i.e. /dev/null) so GPU requests are scheduled on a machine without GPUs.
# Idempotent: exits 0 at once when the cluster already answers. Exits non-zero (with the reason
# on stderr) when the cluster cannot be started; the tests then skip.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
STATE="${WSGM_SLURM_STATE:-/var/lib/wsgm-slurm}"
CPUS="${WSGM_SLURM_CPUS:-8}"
GPUS="${WSGM_SLURM_GPUS:-4}"
CONF=/etc/slurm/slurm.conf
MARK="written by tests/slurm/start-cluster.sh (wsgm)"
t0=$(date +%s)
say() { echo "start-cluster: $*" >&2; }
die() { say "$*"; exit 1; }

node_ready() { sinfo -h -o %T 2>/dev/null | grep -qE '^(idle|mixed|allocated|completing)'; }

if [ -f "$CONF" ] && grep -q "$MARK" "$CONF" && node_ready; then
  say "cluster already up"; exit 0
fi
[ "$(id -u)" = 0 ] || die "must run as root (installs packages, starts daemons)"
if [ -f "$CONF" ] && ! grep -q "$MARK" "$CONF"; then
  die "$CONF exists and was not written by this script: refusing to replace a real cluster's config"
fi

if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null \
   || ! command -v sbatch >/dev/null; then
  command -v apt-get >/dev/null || die "slurm is not installed and apt-get is not available"
  say "installing munge and slurm (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null || die "apt-get update failed"
  apt-get install -y -qq --no-install-recommends munge slurmctld slurmd slurm-client >/dev/null \
    || die "apt-get install munge slurmctld slurmd slurm-client failed"
fi

# munge: key, runtime dir, daemon as the munge user.
mkdir -p /etc/munge /run/munge /var/lib/munge /var/log/munge
if [ ! -s /etc/munge/munge.key ]; then
  dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
fi
chown -R munge:munge /etc/munge /run/munge /var/lib/munge /var/log/munge
chmod 0700 /etc/munge && chmod 0400 /etc/munge/munge.key && chmod 0755 /run/munge
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  runuser -u munge -- /usr/sbin/munged --force || die "munged did not start"
  for _ in $(seq 50); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.1; done
  munge -n | unmunge >/dev/null || die "munge does not answer"
fi

# Config and state.
HOST="$(hostname -s)"
mkdir -p "$STATE/slurmctld" "$STATE/slurmd" "$STATE/gpu" /etc/slurm
sed -e "s|@HOST@|$HOST|g" -e "s|@STATE@|$STATE|g" -e "s|@CPUS@|$CPUS|g" -e "s|@GPUS@|$GPUS|g" \
    "$HERE/slurm.conf.in" > "$CONF.tmp"
sed -i "1s|^|# $MARK\n|" "$CONF.tmp" && mv "$CONF.tmp" "$CONF"
{
  echo "# $MARK"
  echo "AutoDetect=off"
  for i in $(seq 0 $((GPUS - 1))); do
    [ -e "$STATE/gpu/nvidia$i" ] || mknod "$STATE/gpu/nvidia$i" c 1 3
    echo "NodeName=$HOST Name=gpu File=$STATE/gpu/nvidia$i"
  done
} > /etc/slurm/gres.conf

# Daemons (each daemonizes itself). A stale one from an earlier start is stopped first.
"$HERE/stop-cluster.sh" --daemons-only >/dev/null 2>&1 || true
/usr/sbin/slurmctld || die "slurmctld did not start: see $STATE/slurmctld.log"
/usr/sbin/slurmd || die "slurmd did not start: see $STATE/slurmd.log"
for _ in $(seq 120); do
  node_ready && break
  sinfo -h -o %T 2>/dev/null | grep -qE 'down|drain' && scontrol update nodename="$HOST" state=resume 2>/dev/null || true
  sleep 0.5
done
node_ready || die "node $HOST did not become idle: $(sinfo -h -o '%T %E' 2>&1); see $STATE/*.log"
say "cluster up in $(( $(date +%s) - t0 )) s: $(sinfo -h -o '%P %D %T %c CPUs %G')"
