"""Launch one DDP process group for ``wsgm train --gpus N --nodes M`` (N·M processes, one per GPU).

``wsgm train`` re-executes itself under torchrun when N·M > 1 and it is not already a torchrun
worker; the workers run the very same command line and train one process group (``wsgm.train``):

- one node: ``python -m wsgm.launch --standalone --nnodes 1 --nproc_per_node N -m wsgm train ...``,
  run in this process (torchrun's agent; the venv's torch.distributed.run behind ``wsgm.launch``);
- M > 1 nodes (inside a SLURM job only): ``srun --overlap --nodes M --ntasks M --ntasks-per-node 1
  [--gpus-per-node N] python -m wsgm.launch --nnodes M --nproc_per_node N --rdzv_backend c10d
  --rdzv_endpoint HOST:PORT --rdzv_id JOBID -m wsgm train ...``: one torchrun agent per node,
  meeting at the job's first node (asked from ``squeue``: the Snakemake jobstep strips
  SLURM_JOB_NODELIST), on a port derived from the job id.

``python -m wsgm.launch`` is torchrun (``torch.distributed.run``) with one addition: SIGUSR1 (what
``sbatch --signal=USR1@120`` sends before the time limit) is turned into SIGTERM, which torchrun
forwards to its workers; plain torchrun would die of SIGUSR1 and leave them behind. The workers
save a checkpoint and exit 143; the launcher then exits 143 too (non-zero: the job is not
complete, a rerun resumes).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from wsgm.errors import UserError

INTERRUPTED = 143  # the exit status of an interrupted stage (wsgm.cli)


def is_worker(env=os.environ) -> bool:
    """Whether this process is a torchrun worker (then it trains; it does not launch)."""
    return "TORCHELASTIC_RUN_ID" in env or ("LOCAL_RANK" in env and "WORLD_SIZE" in env)


def port_for(job_id: str) -> int:
    """The rendezvous port of a multi-node job: fixed by its SLURM job id (20000-39999)."""
    return 20000 + int("".join(c for c in str(job_id) if c.isdigit()) or "0") % 20000


def launch_argv(args: list[str], gpus: int, nodes: int, *, python: str = sys.executable,
                job_id: str | None = None, host: str | None = None, gpus_per_node: bool = False) -> list[str]:
    """The command that runs ``python -m wsgm <args>`` as gpus × nodes DDP processes."""
    if gpus < 1 or nodes < 1:
        raise UserError(f"--gpus {gpus} --nodes {nodes}: both must be at least 1")
    worker = ["-m", "wsgm", *args]
    if nodes == 1:
        return [python, "-m", "wsgm.launch", "--standalone", "--nnodes", "1", "--nproc_per_node", str(gpus), *worker]
    if not job_id or not host:
        raise UserError(f"train.nodes = {nodes} needs a SLURM job (one torchrun per node, started by srun), "
                        "but this is not inside one (no SLURM_JOB_ID). Fix: run it through the SLURM profile "
                        "(snakemake --profile profiles/slurm), or set train.nodes: 1 to train on this machine")
    srun = ["srun", "--overlap", "--nodes", str(nodes), "--ntasks", str(nodes), "--ntasks-per-node", "1",
            "--kill-on-bad-exit=1"]
    if gpus_per_node:
        srun.append(f"--gpus-per-node={gpus}")
    return [*srun, python, "-m", "wsgm.launch", "--nnodes", str(nodes), "--nproc_per_node", str(gpus),
            "--rdzv_backend", "c10d", "--rdzv_endpoint", f"{host}:{port_for(job_id)}", "--rdzv_id", str(job_id),
            *worker]


def first_node(job_id: str) -> str:
    """The first host of a SLURM job's allocation (from squeue: the jobstep strips SLURM_JOB_NODELIST)."""
    nodelist = os.environ.get("SLURM_JOB_NODELIST")
    try:
        if not nodelist:
            nodelist = subprocess.run(["squeue", "-h", "-j", str(job_id), "-o", "%N"], capture_output=True,
                                      text=True, timeout=60, check=True).stdout.strip()
        hosts = subprocess.run(["scontrol", "show", "hostnames", nodelist], capture_output=True, text=True,
                               timeout=60, check=True).stdout.split()
    except (OSError, subprocess.SubprocessError) as exc:
        raise UserError(f"cannot find the nodes of SLURM job {job_id} ({exc}). Fix: run multi-node training "
                        "inside a SLURM job where squeue and scontrol work") from None
    if not hosts:
        raise UserError(f"SLURM job {job_id} has no nodes yet (squeue says {nodelist!r})")
    return hosts[0]


def _srun_env() -> dict:
    """This environment without the SLURM_* settings of the enclosing step (as the jobstep does),
    so that the inner srun asks for its own geometry; the job id is kept."""
    keep = {"SLURM_JOB_ID", "SLURM_JOBID", "SLURM_CLUSTER_NAME", "SLURM_CONF"}
    return {k: v for k, v in os.environ.items() if not k.startswith("SLURM_") or k in keep}


def relaunch(args: list[str], gpus: int, nodes: int, cuda: bool) -> int:
    """Run ``wsgm <args>`` as one process group of gpus × nodes processes; its exit status."""
    if nodes == 1:
        return torchrun(launch_argv(args, gpus, 1)[3:])
    job_id = os.environ.get("SLURM_JOB_ID")
    argv = launch_argv(args, gpus, nodes, job_id=job_id, host=first_node(job_id) if job_id else None,
                       gpus_per_node=cuda)
    proc = subprocess.Popen(argv, env=_srun_env())
    forward = lambda signum, _frame: proc.send_signal(signum)  # noqa: E731 (srun passes them to the tasks)
    old = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT)}
    try:
        code = proc.wait()
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
    return code if code >= 0 else 128 - code


def torchrun(argv: list[str]) -> int:
    """torch.distributed.run with SIGUSR1 forwarded as SIGTERM; 143 if the workers were interrupted."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

    try:
        from torch.distributed.elastic.multiprocessing.api import SignalException
    except ImportError:  # pragma: no cover (older torch)
        SignalException = ()  # noqa: N806
    from torch.distributed.run import main

    signal.signal(signal.SIGUSR1, lambda *_: os.kill(os.getpid(), signal.SIGTERM))
    try:
        main(argv)
    except ChildFailedError as exc:
        codes = [f.exitcode for f in exc.failures.values()]
        if any(c in (INTERRUPTED, -signal.SIGTERM, -signal.SIGINT, -signal.SIGUSR1) for c in codes):
            return INTERRUPTED
        return next((c for c in codes if c > 0), 1)
    except SignalException:
        return INTERRUPTED
    return 0


if __name__ == "__main__":
    sys.exit(torchrun(sys.argv[1:]))
