"""The run card: every train.py run writes run.json and card.md beside its metrics.json,
completed, diverged or interrupted; eval.py and export name the card of the run they used.
Through the real CLI, except the parts a run cannot be made to break."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from descentlab.run import card
from helpers.cli import ROOT, read_metrics, run_cli

QUICK = ["logger=none", "callbacks.progress_bar=null"]
SHA256 = 64


def read_card(run_dir: Path) -> dict:
    return json.loads((run_dir / "run.json").read_text())


@pytest.fixture(scope="module")
def default_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("default")
    run_cli(["trainer.max_epochs=2", *QUICK, f"hydra.run.dir={run_dir}"])
    return run_dir


def test_a_run_writes_every_fact_of_its_card(default_run):
    facts = read_card(default_run)
    assert "error" not in facts, facts["error"]
    assert facts["command"][0] == sys.executable and facts["command"][1].endswith("train.py")
    assert facts["overrides"] == ["trainer.max_epochs=2", *QUICK]
    code = facts["code"]
    assert len(code["commit"]) == 40 and isinstance(code["dirty"], bool)
    assert Path(code["repo"]) == ROOT
    versions = facts["versions"]
    for name in (*card.VERSIONS, "python"):
        assert isinstance(versions[name], str) and versions[name][0].isdigit(), name
    assert len(versions["pip_freeze_sha256"]) == SHA256
    machine = facts["machine"]
    assert machine["hostname"] and machine["platform"] and machine["cpu"]
    assert machine["logical_cores"] >= 1 and machine["ram_bytes"] > 2**20
    assert "gpus" in machine and "gpu_driver" in machine and "cuda" in machine
    data = facts["data"]
    assert data["target"] == "descentlab.data.DigitsDataModule" and data["task"] == "classification"
    assert data["split_sizes"] == {"train": 1168, "val": 270, "test": 359}
    assert len(data["split_sha256"]) == SHA256
    assert facts["seed"] == 12345 and facts["status"] == "completed" and "reason" not in facts
    started, ended = (
        time.mktime(time.strptime(facts[k][:19], "%Y-%m-%dT%H:%M:%S"))
        for k in ("started_at", "ended_at")
    )
    assert 0 < facts["wall_seconds"] < 600 and abs((ended - started) - facts["wall_seconds"]) <= 1
    assert 0 < facts["fit_seconds"] < facts["wall_seconds"]
    assert facts["epochs"] == 2 and facts["global_step"] == 38  # 19 batches of 64 per epoch
    assert facts["samples_seen"] == 2 * 1168 and facts["samples_counted_as"].startswith("train")
    assert facts["samples_per_second"] == pytest.approx(2 * 1168 / facts["fit_seconds"], rel=0.01)
    assert facts["metrics"] == read_metrics(default_run)
    assert facts["figure"] == "card.png"
    assert (default_run / "card.png").read_bytes()[:4] == b"\x89PNG"


def test_card_md_says_the_commit_the_status_and_the_metrics(default_run):
    facts, text = read_card(default_run), (default_run / "card.md").read_text()
    assert facts["code"]["commit"] in text and "completed" in text
    assert f"{facts['metrics']['test/acc']:.4f}" in text and "| val/loss |" in text
    assert facts["data"]["split_sha256"] in text and "![curves](card.png)" in text
    assert "incomplete" not in text


def test_the_jobs_of_a_sweep_that_diverged_or_failed_write_cards_saying_so(tmp_path):
    x = np.random.default_rng(0).normal(size=(200, 4)).astype(np.float32)
    np.savez(tmp_path / "d.npz", x=x, y=np.arange(200) % 3)
    args = ["data=arrays", f"data.path={tmp_path / 'd.npz'}", "optimizer=sgd", "optimizer.lr=1e12"]
    # job 0 diverges in its first step; job 1's net is refused before it trains
    sweep = ["model.net.hidden_dims=[8],[0]", f"hydra.sweep.dir={tmp_path / 'sweep'}"]
    proc = run_cli(["-m", *args, *QUICK, *sweep], check=False)
    assert "0 of 2 jobs completed" in proc.stderr, proc.stderr[-2000:]
    diverged, failed = (tmp_path / "sweep" / "0", tmp_path / "sweep" / "1")
    facts = read_card(diverged)
    assert facts["status"] == "diverged" == read_metrics(diverged)["status"]
    assert facts["reason"] == facts["metrics"]["reason"] and facts["reason"]
    # the job's own overrides, as Hydra's sweeper writes them (optimizer.lr=1000000000000.0)
    assert {"data=arrays", "model.net.hidden_dims=[8]", *QUICK} <= set(facts["overrides"])
    path = facts["data"]["path"]
    assert path["bytes"] == (tmp_path / "d.npz").stat().st_size
    assert path["sha256"] == hashlib.sha256((tmp_path / "d.npz").read_bytes()).hexdigest()
    assert facts["data"]["split_sizes"]["train"] > 0  # the data was read
    assert "diverged" in (diverged / "card.md").read_text()
    facts = read_card(failed)
    assert facts["status"] == "failed" and "hidden_dims" in facts["reason"] and "error" not in facts
    assert facts["code"]["commit"] and facts["data"]["split_sizes"] is None  # never read
    assert facts["figure"] is None and not (failed / "card.png").exists()  # no epoch to draw


def test_an_interrupted_run_writes_its_card_and_another_seed_another_split(tmp_path, default_run):
    run_dir = tmp_path / "run"
    args = ["trainer.max_epochs=1000", "callbacks.early_stopping=null", "seed=7", *QUICK]
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "train.py"), *args, f"hydra.run.dir={run_dir}"],
        cwd=ROOT,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.time() + 120
        while not (run_dir / "checkpoints" / "last.ckpt").exists():  # an epoch is done
            assert proc.poll() is None and time.time() < deadline, proc.stderr.read()[-2000:]
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 143, stderr[-2000:]
    facts = read_card(run_dir)
    assert facts["status"] == "interrupted" and "SIGTERM" in facts["reason"]
    assert "interrupted" in (run_dir / "card.md").read_text()
    assert facts["seed"] == 7
    assert facts["data"]["split_sha256"] != read_card(default_run)["data"]["split_sha256"]


def git(repo: Path, *args: str) -> str:
    identity = ["-c", "user.email=card@test", "-c", "user.name=card", "-c", "commit.gpgsign=false"]
    return subprocess.run(
        ["git", *identity, *args], cwd=repo, check=True, capture_output=True, text=True
    ).stdout


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_dirty_says_whether_the_code_differs_from_its_commit(tmp_path, default_run):
    repo = tmp_path / "repo"
    shutil.copytree(ROOT / "configs", repo / "configs")
    shutil.copy(ROOT / "train.py", repo / "train.py")
    git(repo, "init", "-q")
    git(repo, "add", "configs", "train.py")
    git(repo, "commit", "-q", "-m", "experiment")
    head = git(repo, "rev-parse", "HEAD").strip()
    args = ["trainer.max_epochs=1", *QUICK]

    def run(name: str) -> dict:  # the run dir inside the repo, untracked: not a change
        run_cli([*args, f"hydra.run.dir={repo / 'out' / name}"], cwd=repo, script=repo / "train.py")
        return read_card(repo / "out" / name)["code"]

    clean = run("clean")
    assert clean["commit"] == head and Path(clean["repo"]) == repo
    assert clean["dirty"] is False and clean["diff_sha256"] is None
    with open(repo / "configs" / "train.yaml", "a") as f:
        f.write("# an edit\n")
    dirty = run("dirty")
    assert dirty["commit"] == head and dirty["dirty"] is True
    diff = subprocess.run(["git", "diff", "HEAD", "--binary"], cwd=repo, capture_output=True)
    assert dirty["diff_sha256"] == hashlib.sha256(diff.stdout).hexdigest()
    # the same seed, the same split, whichever checkout ran it
    same = read_card(repo / "out" / "dirty")["data"]["split_sha256"]
    assert same == read_card(default_run)["data"]["split_sha256"]


def test_eval_and_export_name_the_card_of_the_run_they_used(tmp_path, default_run):
    run_card = str((default_run / "run.json").resolve())
    best = default_run / "checkpoints" / "best.ckpt"
    run_cli(
        [f"ckpt_path={best}", "logger=none", f"hydra.run.dir={tmp_path / 'eval'}"],
        script_name="eval.py",
    )
    assert read_metrics(tmp_path / "eval")["run_card"] == run_card
    assert not (tmp_path / "eval" / "run.json").exists()  # eval writes no card of its own
    from descentlab.export import export

    ((_, record),) = export(default_run / "model.pt", "torchscript", out=tmp_path / "m.pt")
    assert record["run_card"] == run_card
    assert card.card_of(default_run) == run_card and card.card_of(tmp_path) is None


# --------------------------------------------------------------- the card never fails a run
class Broken:
    """A run's parts whose datamodule and trainer raise when the card reads them."""

    output_dir = None
    ckpt_path = None

    @property
    def datamodule(self):
        raise RuntimeError("no datamodule today")

    @property
    def trainer(self):
        raise RuntimeError("no trainer today")


def test_a_part_that_fails_is_named_and_the_card_still_written(tmp_path):
    cfg = OmegaConf.create({"paths": {"output_dir": str(tmp_path)}, "seed": 3, "data": {}})
    card.write(cfg, {"status": "failed", "reason": "it broke"}, Broken())
    facts = read_card(tmp_path)
    assert facts["status"] == "failed" and facts["reason"] == "it broke" and facts["seed"] == 3
    assert facts["data"] is None and facts["machine"] is None
    assert "data: RuntimeError: no datamodule today" in facts["error"]
    assert facts["versions"]["torch"] and facts["code"]["commit"]  # the other parts are there
    assert "incomplete" in (tmp_path / "card.md").read_text()


def test_no_git_or_no_repository_is_a_reason_not_an_error(tmp_path, monkeypatch):
    monkeypatch.setattr(card, "config_dirs", lambda: [tmp_path])
    outside = card.code(tmp_path)
    assert outside["commit"] is None and "not in a git repository" in outside["reason"]
    monkeypatch.setenv("PATH", str(tmp_path))  # no git on it
    assert card.code(tmp_path)["reason"] == "git is not installed"


def test_image_folders_are_counted_and_their_split_hashed_by_file_paths(tmp_path):
    for i, name in enumerate(["a/1.png", "a/2.png", "b/3.png"]):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(b"x" * (i + 1))
    assert card.file_facts(tmp_path) == {"path": str(tmp_path.resolve()), "files": 3, "bytes": 6}

    class Folder:
        root = str(tmp_path)
        samples = {"train": [(str(tmp_path / "b/3.png"), 1), (str(tmp_path / "a/1.png"), 0)]}

    facts = card.split_facts(Folder())
    assert facts["split_sizes"] == {"train": 2} and facts["split_hashed"].startswith("sorted")
    Folder.samples = {"train": list(reversed(Folder.samples["train"]))}
    assert card.split_facts(Folder())["split_sha256"] == facts["split_sha256"]  # sorted
    Folder.samples = {"train": Folder.samples["train"][:1]}
    assert card.split_facts(Folder())["split_sha256"] != facts["split_sha256"]


def test_without_matplotlib_the_figure_is_null_and_no_error(default_run, tmp_path, monkeypatch):
    run_dir = tmp_path / "copy"
    shutil.copytree(default_run, run_dir, ignore=shutil.ignore_patterns("card.*", "run.json"))
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib fails
    cfg = OmegaConf.create({"paths": {"output_dir": str(run_dir)}, "seed": 1, "data": {}})
    card.write(cfg, read_metrics(run_dir))
    facts = read_card(run_dir)
    assert facts["figure"] is None and "error" not in facts
    assert (
        not (run_dir / "card.png").exists() and "![curves]" not in (run_dir / "card.md").read_text()
    )
