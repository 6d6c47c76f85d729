import json
import shutil

import pytest

from wsgm import code_version, provenance
from wsgm.cli import main


def _audit(path):
    lines = []
    ok = provenance.audit(path, out=lines.append)
    return ok, "\n".join(lines)


def test_records_chain_and_audit(tiny_store):
    data, store = tiny_store
    rec = json.loads(provenance.record_path(store).read_text())
    assert rec["stage"] == "decompose" and rec["inputs"]["data"]["stage"] == "dataset"
    assert rec["output"]["hash"] == provenance.content_hash(store)
    for key in ("spec", "spec_hash", "code", "environment", "start", "end", "device"):
        assert key in rec
    assert {"commit", "dirty", "package", "stage_code_hash"} <= set(rec["code"])
    assert {"python", "torch", "host", "slurm_job_id"} <= set(rec["environment"])
    ok, text = _audit(store)
    assert ok, text
    assert "[decompose]" in text and "[dataset]" in text


def test_audit_detects_a_file_replaced_by_hand(tiny_store):
    data, store = tiny_store
    chunk = next(p for p in (data / "x").rglob("*") if p.is_file() and p.name != "zarr.json")
    chunk.write_bytes(chunk.read_bytes()[::-1])
    ok, text = _audit(store)
    assert not ok and "CHANGED" in text and "[dataset]" in text
    assert main(["audit", str(store)]) == 1


def test_audit_detects_a_rebuilt_input_and_missing_records(tiny_store, tmp_path):
    data, store = tiny_store
    rec_path = provenance.record_path(data)
    rec = json.loads(rec_path.read_text())
    rec["end"] = "2099-01-01T00:00:00+00:00"  # as if the dataset was rebuilt after the store
    rec_path.write_text(json.dumps(rec))
    ok, text = _audit(store)
    assert not ok and "STALE" in text
    rec_path.unlink()
    ok, text = _audit(store)
    assert not ok and "MISSING" in text


def test_stage_refuses_input_without_record(tmp_path):
    (tmp_path / "x.pt").write_bytes(b"not from wsgm")
    with pytest.raises(FileNotFoundError, match="no provenance record"):
        provenance.Stage("train", {}, {"store": tmp_path / "x.pt"})


@pytest.fixture
def pkg(tmp_path, monkeypatch):
    """A copy of the package that code versions are computed from (edit it freely)."""
    pkg = tmp_path / "wsgm"
    shutil.copytree(provenance.PACKAGE_ROOT, pkg, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(code_version, "PACKAGE_ROOT", pkg)
    code_version.clear_cache()
    yield pkg
    code_version.clear_cache()


def test_code_hash_follows_imports(pkg):

    def hashes():
        code_version.clear_cache()
        return {m: code_version.code_hash(m) for m in ("wsgm.train", "wsgm.report", "wsgm.cascade")}

    before = hashes()
    with (pkg / "nets" / "unet.py").open("a") as fh:
        fh.write("\nEDITED = 1\n")
    after = hashes()
    assert after["wsgm.train"] != before["wsgm.train"]  # train imports the network
    assert after["wsgm.cascade"] != before["wsgm.cascade"]  # sampling loads it too
    assert after["wsgm.report"] == before["wsgm.report"]  # the report does not
    with (pkg / "train.py").open("a") as fh:  # the training loop: sampling does not run it
        fh.write("\nEDITED = 2\n")
    again = hashes()
    code_version.clear_cache()
    assert again["wsgm.train"] != after["wsgm.train"]
    assert again["wsgm.cascade"] == after["wsgm.cascade"]


def test_code_hash_ignores_comments_and_docstrings(pkg):
    """Comments, docstrings, blank lines and line breaks rerun nothing; a changed constant does."""

    def sde_hash():
        code_version.clear_cache()
        return code_version.code_hash("wsgm.sde")

    before = sde_hash()
    path = pkg / "sde.py"
    text = path.read_text()
    edited = text.replace('"""Forward processes', '"""Edited docstring.\n\nForward processes', 1)
    edited = edited.replace("import math\n", "import math  # a comment\n\n", 1)
    assert edited != text
    path.write_text(edited)
    assert sde_hash() == before
    path.write_text(text.replace("return -0.5 * self.beta(t)", "return -0.25 * self.beta(t)", 1))
    changed = sde_hash()
    code_version.clear_cache()
    assert changed != before


def test_each_stage_hashes_the_code_it_runs_and_no_other(pkg):
    """A stage's code version covers its module, its CLI command and the shared runtime
    (provenance, atomic writes): a real edit of any of them reruns exactly the stages that run it."""
    from wsgm import specs

    stages = ["dataset:gaussian", "decompose", "train", "sample", "reference", "evaluate", "report",
              "inverse_evaluate"]

    def versions():
        code_version.clear_cache()
        return {s: specs._code(s) for s in stages}

    def changed_by(path: str, old: str, new: str) -> set[str]:
        before = versions()
        f = pkg / path
        text = f.read_text()
        assert old in text, old
        f.write_text(text.replace(old, new, 1))
        after = versions()
        f.write_text(text)
        return {s for s in stages if after[s] != before[s]}

    assert changed_by("provenance.py", 'SUFFIX = ".prov.json"', 'SUFFIX = ".prov2.json"') == set(stages)
    assert changed_by("atomic.py", "import os", "import os\nimport sys") == set(stages)
    assert changed_by("cli.py", "def cmd_train(args):\n", "def cmd_train(args):\n    pass\n") == {"train"}
    assert changed_by("cli.py", "def cmd_sample(args):\n", "def cmd_sample(args):\n    pass\n") == {"sample"}
    assert changed_by("cli.py", "def main(argv", "def _x():\n    pass\n\n\ndef main(argv") == set(stages)
    assert changed_by("samplers.py", "import torch\n", "import torch\nimport sys\n") == \
        {"sample", "inverse_evaluate"}  # inverse scoring rebuilds the task, which names the samplers
    assert changed_by("solvers/edm.py", "import torch\n", "import torch\nimport sys\n") == \
        {"sample", "inverse_evaluate"}  # a solver of the registry (a subpackage) is part of sampling
    assert changed_by("cli.py", "def cmd_evaluate_inverse(args, spec, cfg):\n",
                      "def cmd_evaluate_inverse(args, spec, cfg):\n    pass\n") == {"inverse_evaluate"}
    assert changed_by("train.py", "import copy", "import copy\nimport sys") == {"train"}
    code_version.clear_cache()


def test_device_cuda_without_gpu_is_a_clear_error(tiny_store, tiny_config, tmp_path, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is visible here")
    from wsgm import specs

    spec = specs.train(tiny_config, "wsgm", 2)
    spec["device"] = "cuda"
    _, store = tiny_store
    code = main(["train", "--spec", specs.as_json(spec), "--store", str(store),
                 "--out", str(tmp_path / "w.pt"), "--checkpoint", str(tmp_path / "c.pt")])
    assert code == 2
    err = capsys.readouterr().err
    assert "no CUDA GPU is visible" in err and "Fix:" in err
    assert not (tmp_path / "w.pt").exists() and not (tmp_path / "w.pt.prov.json").exists()
