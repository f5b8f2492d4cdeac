#!/usr/bin/env bash
# A real single-node SLURM cluster on this machine for the tests: Debian's slurm-wlm and munge, partitions `cpu`
# and `a100`, two fake A100 GPUs (GRES backed by empty files). Needs root and apt. Idempotent.
#   bash tests/slurm/setup_local_slurm.sh        # install (if needed), configure, start, wait for the node
set -euo pipefail
if [[ $(id -u) -ne 0 ]]; then echo "setup_local_slurm: needs root (apt-get, daemons)" >&2; exit 2; fi
if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
  command -v apt-get >/dev/null || { echo "setup_local_slurm: no apt-get to install slurm-wlm" >&2; exit 2; }
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null
fi
host=$(hostname -s)
cpus=$(nproc)
mem=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 2048 ))
gpudir=/var/lib/darecipe-fake-gpus
mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm "$gpudir"
touch "$gpudir/gpu0" "$gpudir/gpu1"
cat > /etc/slurm/slurm.conf <<CONF
ClusterName=darecipe-test
SlurmctldHost=$host
SlurmUser=root
AuthType=auth/munge
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
MinJobAge=3600
ReturnToService=2
GresTypes=gpu
NodeName=$host CPUs=$cpus RealMemory=$mem Gres=gpu:a100:2 State=UNKNOWN
PartitionName=cpu Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
PartitionName=a100 Nodes=$host MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
CONF
cat > /etc/slurm/gres.conf <<CONF
AutoDetect=off
NodeName=$host Name=gpu Type=a100 File=$gpudir/gpu[0-1]
CONF
[[ -s /etc/munge/munge.key ]] || mungekey --create >/dev/null 2>&1 || dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 2>/dev/null
mkdir -p /run/munge /var/log/munge /var/lib/munge
chown -R munge: /etc/munge /var/lib/munge /var/log/munge /run/munge 2>/dev/null || true
chmod 400 /etc/munge/munge.key
pgrep -x munged >/dev/null || munged --force
pkill -x slurmctld 2>/dev/null || true
pkill -x slurmd 2>/dev/null || true
sleep 1
slurmctld
slurmd
for _ in $(seq 60); do
  if sinfo -h -o '%T' 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; then
    scontrol update nodename="$host" state=resume >/dev/null 2>&1 || true
    echo "setup_local_slurm: node $host up (partitions cpu, a100; 2 fake A100)"; exit 0
  fi
  sleep 1
done
echo "setup_local_slurm: the node did not come up; see /var/log/slurm/" >&2
sinfo >&2 || true
exit 1
