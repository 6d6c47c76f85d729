"""`snakemake --profile slurm` against a real single-node SLURM cluster on localhost.

The cluster is started by tests/slurm/start-cluster.sh (CI: .ci/run does it before `make test`);
without one every test here skips, saying how to start it. The runs use the shipped profile
profiles/slurm plus the settings a cluster without an accounting database needs (poll with
squeue; see PROFILE_FOR_TEST_CLUSTER).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import yaml
import zarr

from .helpers import BIN, REPO, assert_same_weights, make_project, snakemake

pytestmark = pytest.mark.slurm

# What the test cluster needs on top of profiles/slurm: no slurmdbd, so no sacct and no accounts.
PROFILE_FOR_TEST_CLUSTER = {
    "slurm-status-command": "squeue",
    "slurm-init-seconds-before-status-checks": 2,  # tiny jobs: poll soon (MinJobAge is a day)
    "slurm-no-account": True,
    "latency-wait": 5,
}
SUBMITTED = re.compile(r"has been submitted with SLURM jobid (\d+) \(log: ([^)]+)\)")
START_SCRIPT = "tests/slurm/start-cluster.sh"


def _cluster_problem() -> str | None:
    if not shutil.which("sbatch") or not shutil.which("sinfo"):
        return f"SLURM is not installed: start the local test cluster with `sudo {START_SCRIPT}`"
    try:
        res = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=10)
    except subprocess.TimeoutExpired:
        return f"sinfo does not answer: start the local test cluster with `sudo {START_SCRIPT}`"
    states = res.stdout.split()
    if res.returncode != 0 or not {"idle", "mixed", "allocated", "completing"} & set(states):
        why = (res.stdout + res.stderr).strip().splitlines()[-1:] or ["no node"]
        return f"no usable SLURM node ({why[0]}): start the local test cluster with `sudo {START_SCRIPT}`"
    return None


@pytest.fixture(scope="module")
def cluster():
    if problem := _cluster_problem():
        pytest.skip(problem)


def slurm_profile(root: Path) -> str:
    """profiles/slurm as shipped, plus PROFILE_FOR_TEST_CLUSTER, written to profiles/slurm-test."""
    cfg = yaml.safe_load((root / "profiles" / "slurm" / "config.yaml").read_text())
    cfg.update(PROFILE_FOR_TEST_CLUSTER)
    (root / "profiles" / "slurm-test").mkdir()
    (root / "profiles" / "slurm-test" / "config.yaml").write_text(yaml.safe_dump(cfg))
    return "profiles/slurm-test"


def records(root: Path) -> dict[str, dict]:
    return {str(p.relative_to(root)): json.loads(p.read_text())
            for p in (root / "results").rglob("*.prov.json")}


def job_id(record: dict) -> str | None:
    return record["environment"]["slurm_job_id"]


def scontrol_job(jid: str) -> str:
    res = subprocess.run(["scontrol", "show", "job", jid], capture_output=True, text=True, timeout=20)
    assert res.returncode == 0, res.stderr
    return res.stdout


def rule_of(jid: str) -> str:
    return re.search(r"Comment=rule_(\w+?)(?:_wildcards|\s|$)", scontrol_job(jid)).group(1)


@pytest.fixture(scope="module")
def runs(cluster, tmp_path_factory):
    """(project run through SLURM, its output, the same project run locally up to sampling, what
    was done when slurmd restarted). The local run goes on while the SLURM run waits for its jobs.
    The node's slurmd is stopped and started again while training jobs run (own cluster only).
    """
    root = make_project(tmp_path_factory.mktemp("slurm"))
    local = make_project(tmp_path_factory.mktemp("local"))
    done, restart = threading.Event(), {}
    with ThreadPoolExecutor(2) as pool:
        local_done = pool.submit(snakemake, local, "--until", "sample", timeout=420)
        if _own_cluster():
            restarted = pool.submit(_restart_slurmd_when_training_runs, root, done, restart)
        try:
            out = snakemake(root, "--profile", slurm_profile(root), timeout=420)
        finally:
            done.set()
        local_done.result()
        if _own_cluster():
            restarted.result()
    return root, out, local, restart


def _restart_slurmd_when_training_runs(root: Path, done: threading.Event, restart: dict):
    while not done.wait(0.5):
        running = subprocess.run(["squeue", "-h", "-t", "RUNNING", "-o", "%k"], capture_output=True,
                                 text=True, timeout=20).stdout
        if "rule_train_scale" in running:
            restart["done"] = _fingerprints(root)
            _restart_slurmd()
            return


def _fingerprints(root: Path) -> dict[str, tuple[str | None, str]]:
    """Provenance record path -> (SLURM job id, the record's content). A job that ran again would
    have a new id (a new sbatch) or, requeued under the same id, a new record (its start and end
    times). Not the files' mtimes: Snakemake touches a job's outputs when it registers the job as
    finished, which for a job whose record was just written can come after the restart."""
    return {p: (job_id(r), json.dumps(r, sort_keys=True)) for p, r in records(root).items()}


@pytest.fixture(scope="module")
def slurm_run(runs):
    return runs[:2]


def remote_jobs(out: str) -> dict[str, int]:
    """Rule name -> number of ungrouped jobs Snakemake ran through the executor (local rules print
    `localrule X:`; members of a group job are indented under its `Group job` line)."""
    counts: dict[str, int] = {}
    for rule in re.findall(r"^rule (\w+):", out, flags=re.M):
        counts[rule] = counts.get(rule, 0) + 1
    return counts


GROUP_JOB = re.compile(r"^\[[^\]]*\] Group job (\S+) \(jobs in lexicogr\. order\):\n((?:\n|    .*\n)+)", re.M)


def group_jobs(out: str) -> list[tuple[str, list[str]]]:
    """(group id, sorted rule names of its members) of every group job the run submitted, in order
    (merged components share an id, so ids may repeat)."""
    return [(gid, sorted(re.findall(r"^    (?:local)?rule (\w+):", body, flags=re.M)))
            for gid, body in GROUP_JOB.findall(out)]


STAGE_OUTPUTS = ("data", "decomposed", "reference", "models", "samples", "metrics", "report")
GPU_RULES, CPU_RULES = {"train_scale", "sample", "reference", "evaluate"}, {"make_dataset", "decompose", "report"}
# profiles/slurm groups the scoring jobs: every evaluation of one experiment is one job, the
# real-data references another (group_slot runs the members of a group one at a time)
GROUPS = {"references": ["reference", "reference"], "score_sgm": ["evaluate", "evaluate"],
          "score_wsgm": ["evaluate", "evaluate"]}


def _minutes(limit: str) -> int:
    """SLURM TimeLimit ([D-]HH:MM:SS) in minutes."""
    days, _, hms = limit.rpartition("-")
    h, m, s = (int(v) for v in hms.split(":"))
    return (int(days or 0) * 24 + h) * 60 + m + (s > 0)


@pytest.mark.workflow
def test_every_job_went_through_sbatch_and_training_asked_for_a_gpu(slurm_run):
    root, out = slurm_run
    submitted = dict(SUBMITTED.findall(out))
    recs = {p: job_id(r) for p, r in records(root).items() if p.split("/")[1] in STAGE_OUTPUTS}
    assert (root / "results/report/summary.json").exists()
    # every stage output was made inside a SLURM job that this run submitted, and every job the
    # run submitted made some
    assert None not in recs.values(), [p for p, j in recs.items() if j is None]
    assert set(recs.values()) == set(submitted), (sorted(recs.values()), sorted(submitted))
    # the tiny config has 1 dataset, 2 decompositions (J=0, 2), 2 real-data references, 4 models,
    # 4 samplings, 4 evaluations and the report: one sbatch per ungrouped job, one per group job
    jobs = remote_jobs(out)
    assert jobs == {"make_dataset": 1, "decompose": 2, "train_scale": 4, "sample": 4, "report": 1}, jobs
    assert dict(group_jobs(out)) == GROUPS and len(group_jobs(out)) == len(GROUPS)
    assert len(submitted) == sum(jobs.values()) + len(GROUPS) == 15  # 18 without groups
    made_by: dict[str, set[str]] = {}  # SLURM job -> the stages whose outputs it made
    for path, jid in recs.items():
        made_by.setdefault(jid, set()).add(path.split("/")[1])
    stage_rule = {"data": "make_dataset", "decomposed": "decompose", "reference": "reference",
                  "models": "train_scale", "samples": "sample", "metrics": "evaluate", "report": "report"}
    for jid in submitted:
        info = scontrol_job(jid)
        assert "JobState=COMPLETED" in info, info
        (stage,) = made_by[jid]  # no job mixes stages: groups hold one rule each
        rule = stage_rule[stage]
        gpus = re.search(r"TresPerJob=\S*gpu:(\d+)", info)
        assert (gpus is not None) == (rule in GPU_RULES), (rule, info)
        if rule in ("reference", "evaluate"):  # a group asks for its largest member, not the sum:
            assert gpus.group(1) == "1", info  # one GPU, the memory of one member, the runtimes summed
            assert "MinMemoryNode=4000M" in info, info
            per_member = 60 if rule == "reference" else 30  # profiles/default runtimes
            limit = _minutes(re.search(r"TimeLimit=(\S+)", info).group(1))
            assert limit == 2 * per_member, (limit, info)


@pytest.mark.workflow
def test_outputs_equal_a_local_run(runs):
    root, _, local_run, _ = runs
    samples = sorted((root / "results" / "samples").glob("*/steps*.zarr"))
    assert len(samples) == 4
    for path in samples:
        rel = path.relative_to(root)
        a = zarr.open_group(str(path), mode="r")["x0"][:]
        b = zarr.open_group(str(local_run / rel), mode="r")["x0"][:]
        assert a.dtype == b.dtype and np.array_equal(a, b), rel
        assert job_id(records(root)[f"{rel}.prov.json"])
        assert job_id(json.loads((local_run / f"{rel}.prov.json").read_text())) is None


@pytest.mark.workflow
def test_a_slurmd_restart_mid_run_loses_no_completed_work(runs):
    root, out, _, restart = runs
    if not _own_cluster():
        pytest.skip("slurmd is restarted only on the cluster of tests/slurm/start-cluster.sh, as root")
    assert restart, "no training job was seen running"
    done = restart["done"]
    assert "results/data/tiny/data.zarr.prov.json" in done and len(done) >= 3, sorted(done)
    now = _fingerprints(root)
    assert {p: now[p] for p in done} == done  # nothing that was done ran again
    # none submitted twice: one sbatch per ungrouped job and per group job
    assert len(SUBMITTED.findall(out)) == sum(remote_jobs(out).values()) + len(group_jobs(out))


@pytest.mark.workflow
def test_a_second_invocation_submits_nothing(slurm_run):
    root, _ = slurm_run
    before = records(root)
    out = snakemake(root, "--profile", "profiles/slurm-test", timeout=120)
    assert "Nothing to be done" in out
    assert not SUBMITTED.search(out)
    assert records(root) == before


@pytest.mark.workflow
def test_sharded_sampling_under_slurm_equals_a_local_single_job(runs, tmp_path):
    """sampling.shards: 3 under the SLURM profile: 3 `sample_shard` jobs and 1 `gather_samples`,
    each its own sbatch, and the gathered store is bit for bit the local run's single `sample` job."""
    local_run = runs[2]
    root = make_project(tmp_path / "shards")
    cfg = yaml.safe_load((root / "config" / "config.yaml").read_text())
    cfg["experiments"] = {"wsgm": cfg["experiments"]["wsgm"]}  # the same models, data and seed
    cfg["experiments"]["wsgm"]["sampling"].update(shards=3, batch_size=5)
    (root / "config" / "config.yaml").write_text(yaml.safe_dump(cfg))
    target = "results/samples/wsgm/steps2.zarr"
    out = snakemake(root, "--profile", slurm_profile(root), target, timeout=420)
    jobs = remote_jobs(out)
    assert jobs.get("sample_shard") == 3 and jobs.get("gather_samples") == 1 and "sample" not in jobs, jobs
    by_rule: dict[str, int] = {}
    for jid in dict(SUBMITTED.findall(out)):
        by_rule[rule_of(jid)] = by_rule.get(rule_of(jid), 0) + 1
    assert by_rule["sample_shard"] == 3 and by_rule["gather_samples"] == 1, by_rule
    a, b = (zarr.open_group(str(r / target), mode="r") for r in (root, local_run))
    assert sorted(a.array_keys()) == sorted(b.array_keys()) == ["x0", "x1", "x2"]
    for k in a.array_keys():
        assert np.array_equal(a[k][:], b[k][:]), k
    rec = json.loads((root / f"{target}.prov.json").read_text())
    shard_jobs = {job_id(s["record"]) for s in rec["extra"]["shards"]}
    assert len(shard_jobs) == 3 and None not in shard_jobs and job_id(rec) not in shard_jobs


# --- faults -----------------------------------------------------------------------------------

def _own_cluster() -> bool:
    conf = Path(os.environ.get("SLURM_CONF", "/etc/slurm/slurm.conf"))
    return os.geteuid() == 0 and conf.is_file() and "start-cluster.sh (wsgm)" in conf.read_text()


def _wait(predicate, what: str, proc: subprocess.Popen, timeout: float = 240):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if (value := predicate()):
            return value
        if proc.poll() is not None:
            raise AssertionError(f"snakemake ended before {what}:\n{proc.stdout.read()[-4000:]}")
        time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGINT)
    raise AssertionError(f"timed out waiting for {what}:\n{proc.communicate(timeout=60)[0][-4000:]}")


def _training_job(run_out: Path, not_ids=(), state: str = "") -> str | None:
    """The id of a training job the run submitted (and now in `state`, if given), else None."""
    for jid, _ in SUBMITTED.findall(run_out.read_text()):
        if jid not in not_ids and f"JobState={state}" in (info := scontrol_job(jid)) \
                and "Comment=rule_train_scale" in info:
            return jid
    return None


def _restart_slurmd():
    """Stop slurmd (the node's daemon) for a few seconds and start it again, as a node reboot of
    the daemon would; running job steps (slurmstepd) survive as on a real node."""
    conf = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True).stdout
    pidfile = Path(re.search(r"SlurmdPidFile\s*=\s*(\S+)", conf).group(1))
    pid = int(pidfile.read_text())
    os.kill(pid, signal.SIGTERM)
    for _ in range(100):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    time.sleep(5)
    subprocess.run(["/usr/sbin/slurmd"], check=True, timeout=30)


def _training_project(root: Path, gpus: int, steps: int) -> Path:
    """A project training only sgm's one model (train.gpus = gpus, checkpoints every 20 steps), its
    data and decomposition made here by a local run (seconds)."""
    make_project(root)
    cfg = yaml.safe_load((REPO / "config" / "test.yaml").read_text())
    cfg["experiments"] = {"sgm": cfg["experiments"]["sgm"]}
    cfg["experiments"]["sgm"]["train"].update(steps=steps, checkpoint_every=20, log_every=50, gpus=gpus)
    (root / "config" / "config.yaml").write_text(yaml.safe_dump(cfg))
    snakemake(root, "results/decomposed/tiny/haar_J0.zarr", timeout=300)
    return root


TRAINED = "results/models/sgm/scale0.pt"
CHECKPOINT = "results/checkpoints/sgm/scale0.ckpt"


def _train_through_slurm(root: Path, log: Path, while_running) -> subprocess.Popen:
    """Run `snakemake --profile slurm` for the one model; ``while_running(log, proc)`` acts on
    the running job; returns the finished Snakemake process."""
    env = {**os.environ, "PYTHONPATH": str(root), "PATH": f"{BIN}:{os.environ['PATH']}"}
    with log.open("w") as fh:
        proc = subprocess.Popen([str(BIN / "snakemake"), "--profile", slurm_profile(root), TRAINED], cwd=root,
                                env=env, stdout=fh, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    proc.stdout = log.open()  # for _wait's messages
    try:
        while_running(log, proc)
        proc.wait(timeout=420)
    except BaseException:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)  # SIGTERM does not stop a hung Snakemake, SIGINT does
            proc.wait(timeout=60)
        raise
    return proc


def _local_weights(root: Path, out: Path, gpus: int = 1) -> Path:
    """The same model trained here by `wsgm train` as `gpus` processes, uninterrupted."""
    env = {**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1"}
    res = subprocess.run([str(BIN / "python"), "-m", "wsgm", "train", "--config", "config/config.yaml",
                          "--experiment", "sgm", "--scale", "0", "--out", str(out), "--checkpoint",
                          str(out.with_suffix(".ckpt")), "--gpus", str(gpus)], cwd=root, env=env,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    return out


@pytest.mark.workflow
@pytest.mark.parametrize("gpus", [1, 2])
def test_a_cancelled_training_job_resumes_on_retry_and_its_logs_are_named(cluster, tmp_path, gpus):
    """scancel of one attempt (1 GPU, or a 2-GPU DDP job): the retry resumes from the checkpoint."""
    root = _training_project(tmp_path / "faults", gpus, 400)
    ckpt = root / CHECKPOINT
    log = tmp_path / "snakemake.out"
    cancelled = {}

    def cancel(log, proc):
        cancelled["first"] = _wait(lambda: ckpt.exists() and _training_job(log, state="RUNNING"),
                                   "a training checkpoint", proc)
        subprocess.run(["scancel", cancelled["first"]], check=True, timeout=20)

    proc = _train_through_slurm(root, log, cancel)
    first = cancelled["first"]
    out = log.read_text()
    assert proc.returncode == 0, out[-5000:]
    submitted = dict(SUBMITTED.findall(out))
    assert len(submitted) == 2, submitted  # the training job and its retry; inputs were done
    # the cancelled job failed visibly, naming its logs
    assert f"SLURM-job '{first}' failed" in out and "CANCELLED" in out, out[-5000:]
    assert "results/logs/train/sgm_scale0.log" in out
    assert f"{submitted[first]} (check log file(s) for error details)" in out
    assert "CANCELLED AT" in Path(submitted[first]).read_text()
    # the retry resumed from the checkpoint and finished with no manual clean-up
    assert "resuming from" in (root / "results/logs/train/sgm_scale0.log").read_text()
    (second,) = set(submitted) - {first}
    assert job_id(records(root)["results/models/sgm/scale0.pt.prov.json"]) == second
    ranks = records(root)["results/models/sgm/scale0.pt.prov.json"]["extra"]["ranks"]
    assert [r["rank"] for r in ranks] == list(range(gpus)) and {r["slurm_job_id"] for r in ranks} == {second}


@pytest.mark.workflow
def test_a_requeued_ddp_job_resumes_under_its_id_and_equals_one_process(cluster, tmp_path):
    """A train.gpus: 2 job on the stand-in GPUs is one sbatch asking for 2 GPUs and one DDP process
    group (gloo on CPU); `scontrol requeue` (what preemption with PreemptMode=REQUEUE does) while it
    runs stops it after a checkpoint; SLURM runs it again under the same id, Snakemake counts no
    failure, the rerun resumes, and the weights are those of an uninterrupted one-process run."""
    # 140 steps: long enough to catch it running after a checkpoint, short enough that rounding
    # (another summation order in the all-reduce) has not grown chaotically (seen from ~160 steps)
    root = _training_project(tmp_path / "requeue", 2, 140)
    ckpt = root / CHECKPOINT
    log = tmp_path / "snakemake.out"
    seen = {}

    def requeue(log, proc):
        jid = seen["id"] = _wait(lambda: ckpt.exists() and _training_job(log, state="RUNNING"),
                                 "a training checkpoint", proc)
        seen["info"] = scontrol_job(jid)
        subprocess.run(["scontrol", "requeue", jid], check=True, timeout=20)
        # a requeued job waits 2 minutes (BeginTime) before it may start again: let it start now
        _wait(lambda: "JobState=PENDING" in scontrol_job(jid), "the requeued job pending", proc)
        subprocess.run(["scontrol", "update", f"JobId={jid}", "StartTime=now"], check=True, timeout=20)

    proc = _train_through_slurm(root, log, requeue)
    out = log.read_text()
    assert proc.returncode == 0, out[-5000:]
    jid = seen["id"]
    assert list(dict(SUBMITTED.findall(out))) == [jid], out[-5000:]  # one sbatch: no retry, no failure
    assert "failed" not in out.lower() and "Error in rule" not in out, out[-5000:]
    assert re.search(r"TresPerJob=\S*gpu:2", seen["info"]), seen["info"]
    info = scontrol_job(jid)
    assert "JobState=COMPLETED" in info and "Restarts=1" in info, info
    train_log = (root / "results/logs/train/sgm_scale0.log").read_text()
    assert "resuming from" in train_log, train_log[-3000:]
    rec = records(root)[f"{TRAINED}.prov.json"]
    assert job_id(rec) == jid
    ranks = rec["extra"]["ranks"]
    assert [r["rank"] for r in ranks] == [0, 1] and {r["world_size"] for r in ranks} == {2}
    assert {r["slurm_job_id"] for r in ranks} == {jid} and all(r["slurm_step_id"] is not None for r in ranks)
    assert len({r["pid"] for r in ranks}) == 2
    assert rec["extra"]["resumed_from"] > 0
    assert_same_weights(root / TRAINED, _local_weights(root, tmp_path / "local.pt"))


# --- scale-out of the decomposition -----------------------------------------------------------

def _jobs_named(name: str) -> set[str]:
    res = subprocess.run(["squeue", "--states=all", "-h", "-n", name, "-o", "%i"],
                         capture_output=True, text=True, timeout=20)
    return set(res.stdout.split())


def test_decompose_on_two_dask_workers_that_are_slurm_jobs(cluster, tmp_path, tiny_store, monkeypatch):
    from wsgm.decompose import decompose, read_stats

    data, store = tiny_store
    monkeypatch.setenv("PYTHONPATH", str(REPO))  # the worker jobs inherit it and import this wsgm
    monkeypatch.chdir(tmp_path)
    before = _jobs_named("dask-worker")
    out = tmp_path / "slurm.zarr"
    decompose({"wavelet": "haar", "J": 2}, data, out, scheduler="slurm:2")
    ref, new = zarr.open_group(str(store), mode="r"), zarr.open_group(str(out), mode="r")
    for name in ("low1", "low2", "detail1", "detail2"):
        assert np.array_equal(ref[name][:], new[name][:]), name
    for band, stats in read_stats(store).items():  # merged in another order: equal to rounding
        assert np.allclose(read_stats(out)[band]["std"], stats["std"], rtol=1e-12), band
    workers = _jobs_named("dask-worker") - before
    assert len(workers) == 2, workers
    started = [j for j in workers if "StartTime=Unknown" not in scontrol_job(j)]
    assert started, [scontrol_job(j) for j in workers]
    assert len(list((tmp_path / "results/logs/dask-workers").glob("*.err"))) == 2

