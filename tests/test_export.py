"""``python -m descentlab.export``: a trained model as one file that runs without descentlab.

For each net (the MLP, the op-table MLP, a regression and a binary MLP, a ResNet-18
backbone) the real CLI exports every format; a fresh interpreter in which descentlab cannot
be imported loads each file with its format's own loader and runs it on saved inputs of two
batch sizes, and its outputs must equal ``api.predict`` (Lightning's ``predict_step``) in this
process within the tolerance the export states. Plus the one-line refusals.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from descentlab import api
from descentlab.export import ATOL, FORMATS, RTOL, ExportError, export
from helpers.cli import one_error_line, run_cli

QUICK = ["trainer.max_epochs=1", "debug=limit", "logger=none", "callbacks.progress_bar=null"]
NETS = {
    "mlp": [],
    "optable": ["model.net.ops=optable"],
    "regression": ["task=regression", "data=teacher"],
    "binary": ["task=binary", "data=teacher", "data.kind=binary"],
    "resnet18": ["model=backbone", "model.net.name=resnet18"],
}
# what each net's run exports to; ops=optable's autograd.Functions cannot be saved by TorchScript
WORKS = {net: list(FORMATS) for net in NETS} | {"optable": ["onnx", "export"]}
BATCHES = (4, 33)  # neither the traced batch (2) nor the CLI's own check (1, 17)

# One interpreter trains every run (``api.train``, as train.py would): one import of
# Lightning instead of five.
TRAIN = """
import sys, json
from descentlab.api import train
quick, runs = json.loads(sys.argv[1]), json.loads(sys.argv[2])
for run_dir, overrides in runs.items():
    train([*quick, *overrides], run_dir, quiet=True)
"""

# Runs with ``python -I`` (no PYTHONPATH, no user site, no working directory on sys.path)
# and the modules of argv[1] blocked in sys.modules (any import of them fails): descentlab
# always, torch too for ONNX. Only the file and its format's loader are there.
LOAD_ALONE = """
import json
import sys

blocked, files, inputs = json.loads(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3:]
for name in blocked:
    sys.modules[name] = None
    try:
        __import__(name)
    except ImportError:
        pass
    else:
        raise SystemExit(f"{name} could be imported")
import numpy as np

for fmt, path in files.items():
    if fmt == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
        run = lambda x: session.run(None, {"input": x})[0]
    else:
        import torch

        model = torch.jit.load(path) if fmt == "torchscript" else torch.export.load(path).module()
        run = lambda x: model(torch.from_numpy(x)).detach().numpy()
    for i, name in enumerate(inputs):
        np.save(f"{path}.out{i}.npy", run(np.load(name)))
loaded = [m for m, v in sys.modules.items() if v is not None and m.split(".")[0] in blocked]
print(json.dumps(loaded))
"""


def run_alone(files: dict[str, str], inputs: list[str], blocked: list[str], cwd):
    """Run ``files`` on ``inputs`` (.npy) in ``python -I`` with ``blocked`` unimportable."""
    args = [json.dumps(blocked), json.dumps(files), *inputs]
    return subprocess.run(
        [sys.executable, "-I", "-c", LOAD_ALONE, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("export_runs")
    dirs = {net: root / net for net in NETS}
    runs = {str(dirs[net]): overrides for net, overrides in NETS.items()}
    run_cli([json.dumps(QUICK), json.dumps(runs)], python_code=TRAIN)
    return dirs


@pytest.fixture(scope="module")
def exported(runs, tmp_path_factory):
    """Per net, once: the CLI's ``--format all``, then every file run without descentlab."""
    cache: dict[str, dict] = {}

    def get(net: str) -> dict:
        if net in cache:
            return cache[net]
        run_dir = runs[net]
        proc = run_cli([str(run_dir), "--format", "all"], module="descentlab.export", check=False)
        module = api.load(run_dir)
        shape = module.net.input_shape
        rng = np.random.default_rng(0)
        where = tmp_path_factory.mktemp(f"inputs_{net}")
        inputs = [rng.standard_normal((n, *shape), dtype=np.float32) for n in BATCHES]
        names = []
        for i, x in enumerate(inputs):
            np.save(where / f"x{i}.npy", x)
            names.append(str(where / f"x{i}.npy"))
        files = {
            fmt: str(run_dir / f"model{FORMATS[fmt].suffix}")
            for fmt in WORKS[net]
            if (run_dir / f"model{FORMATS[fmt].suffix}").is_file()
        }
        # ONNX needs neither descentlab nor torch: onnxruntime and numpy only
        onnx = {f: p for f, p in files.items() if f == "onnx"}
        torch_files = {f: p for f, p in files.items() if f != "onnx"}
        isolated = [
            run_alone(onnx, names, ["descentlab", "torch"], where),
            run_alone(torch_files, names, ["descentlab"], where),
        ]
        outputs = {
            fmt: [np.load(f"{path}.out{i}.npy") for i in range(len(inputs))]
            for fmt, path in files.items()
            if all(p.returncode == 0 for p in isolated)
        }
        expected = [api.predict(module, torch.from_numpy(x)).numpy() for x in inputs]
        record_path = run_dir / "export.json"
        records = json.loads(record_path.read_text()) if record_path.is_file() else {}
        cache[net] = dict(
            proc=proc, isolated=isolated, outputs=outputs, expected=expected, records=records
        )
        return cache[net]

    return get


CASES = [
    pytest.param(net, fmt, marks=[pytest.mark.slow] if net == "resnet18" else [])
    for net in NETS
    for fmt in WORKS[net]
]


@pytest.mark.parametrize(("net", "fmt"), CASES)
def test_exported_file_runs_without_descentlab_and_equals_predict(exported, net, fmt):
    result = exported(net)
    proc, isolated = result["proc"], result["isolated"]
    for alone in isolated:
        assert alone.returncode == 0, alone.stderr[-3000:]
        assert json.loads(alone.stdout) == []  # no module of descentlab (or torch, ONNX) loaded
    assert f"model{FORMATS[fmt].suffix} ({fmt})" in proc.stdout, proc.stdout + proc.stderr
    for got, want, n in zip(result["outputs"][fmt], result["expected"], BATCHES, strict=True):
        assert got.shape == want.shape and want.shape[0] == n
        np.testing.assert_allclose(got, want, atol=ATOL, rtol=RTOL)
    if net in ("mlp", "optable", "resnet18"):  # classification: probabilities
        np.testing.assert_allclose(result["outputs"][fmt][1].sum(axis=1), 1.0, atol=1e-5)
    record = result["records"][f"model{FORMATS[fmt].suffix}"]
    assert record["format"] == fmt
    assert (record["check"]["atol"], record["check"]["rtol"]) == (ATOL, RTOL)
    assert 0 <= record["check"]["max_abs_diff"] <= ATOL
    meaning = {"regression": "predicted value", "binary": "probability of class 1"}
    assert meaning.get(net, "probabilities over the 10 classes") in record["output"]["meaning"]


def test_optable_torchscript_is_refused_in_one_line_naming_the_formats_that_work(exported):
    """TorchScript cannot save a call to a torch.autograd.Function; onnx and export trace
    through its forward. ``--format all`` writes those two and refuses the third."""
    proc = exported("optable")["proc"]
    line = one_error_line(proc)
    assert "model.net.ops=optable cannot be exported to torchscript" in line
    assert "--format onnx or --format export" in line
    assert "MatVecOp" in line


def test_one_format_with_out_and_ckpt_best(runs, tmp_path):
    out = tmp_path / "best.pt2"
    args = [str(runs["mlp"]), "--format", "export", "--ckpt", "best", "--out", str(out)]
    proc = run_cli(args, module="descentlab.export")
    assert f"wrote {out} (export)" in proc.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt2", "export.json"]
    module = api.load(runs["mlp"] / "checkpoints" / "best.ckpt")
    x = torch.randn(5, *module.net.input_shape)
    got = torch.export.load(str(out)).module()(x)
    torch.testing.assert_close(got, api.predict(module, x), atol=ATOL, rtol=RTOL)


def test_a_file_that_disagrees_with_the_model_is_not_written(runs, tmp_path, monkeypatch):
    """The CLI's own check compares the loaded file with the eager model and can fail."""
    import descentlab.export as export_module

    real = export_module.load_exported

    def off_by_a_little(path, fmt):
        run = real(path, fmt)
        return lambda x: run(x) + 1e-3

    monkeypatch.setattr(export_module, "load_exported", off_by_a_little)
    out = tmp_path / "m.pt2"
    with pytest.raises(ExportError, match=r"differ from the model's by up to 0\.001.*not written"):
        export(runs["mlp"], "export", out)
    assert list(tmp_path.iterdir()) == []  # no file, no staging folder, no export.json


REFUSALS = {
    "an exported file": (["{files}/model.pt2"], "is an exported model (export), not a run"),
    "unknown format": (["{mlp}", "--format", "tflite"], "--format 'tflite' is unknown"),
    "not a run dir": (["{empty}"], "is not a run dir"),
    "missing": (["{empty}/nothing"], "does not exist"),
    "not a checkpoint": (["{mlp}/metrics.json"], "is not a checkpoint or a model.pt"),
    "out folder missing": (["{mlp}", "--out", "{empty}/no/m.onnx"], "does not exist"),
    "out folder a file": (["{mlp}", "--out", "{mlp}/metrics.json/m.onnx"], "is not a directory"),
    "out a folder": (["{mlp}", "--format", "export", "--out", "{empty}"], "is a directory"),
    "ckpt of a file": (["{mlp}/model.pt", "--ckpt", "best"], "is not a run dir"),
    "out for two formats": (["{mlp}", "--format", "onnx,export", "--out", "{empty}/m"], "one file"),
}


@pytest.mark.parametrize("case", REFUSALS)
def test_refusals_are_one_line(runs, tmp_path, case):
    args, expected = REFUSALS[case]
    names = {"mlp": runs["mlp"], "empty": tmp_path / "empty", "files": tmp_path / "files"}
    names["empty"].mkdir()
    names["files"].mkdir()
    (names["files"] / "model.pt2").write_bytes(b"PK\x03\x04")
    before = sorted(p.name for p in runs["mlp"].iterdir())
    proc = run_cli([a.format(**names) for a in args], module="descentlab.export", check=False)
    assert expected in one_error_line(proc)
    assert list(names["empty"].iterdir()) == []
    assert sorted(p.name for p in runs["mlp"].iterdir()) == before


def test_onnx_without_its_extra_names_the_extra(runs):
    code = (
        "import sys; sys.modules['onnxruntime'] = None\n"
        "from descentlab.export import main\n"
        "sys.exit(main(sys.argv[1:]))"
    )
    proc = run_cli([str(runs["mlp"]), "--format", "onnx"], python_code=code, check=False)
    line = one_error_line(proc)
    assert "onnxruntime" in line and "pip install 'descentlab[export]'" in line


@pytest.mark.skipif(os.geteuid() != 0, reason="mounts a read-only file system (needs root)")
def test_a_run_on_a_read_only_file_system_is_one_line_saying_so(runs, tmp_path):
    # found by a hostile pass: "cannot write --out ...: permission denied" with no --out given
    mount = tmp_path / "ro"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mount)], check=True)
    try:
        shutil.copytree(runs["mlp"], mount / "run")
        subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True)
        proc = run_cli(
            [str(mount / "run"), "--format", "onnx"], module="descentlab.export", check=False
        )
        line = one_error_line(proc)
        assert f"cannot write {mount / 'run' / 'model.onnx'}: a read-only file system" in line, line
        assert "--out" not in line
    finally:
        subprocess.run(["umount", str(mount)], check=False)
