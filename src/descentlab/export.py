"""A trained model as one file that runs without descentlab: ``python -m descentlab.export RUN``.

RUN is a run dir (its ``model.pt``, the weights the run kept; ``--ckpt best`` or ``last``
take ``checkpoints/best.ckpt`` or ``last.ckpt`` instead), a training checkpoint (``.ckpt``)
or a ``model.pt`` with its run's checkpoint beside it, loaded as :func:`descentlab.api.load`
does. What is exported is the whole prediction, ``predict_step``'s ``task.predict(net(x))``:
class probabilities (classification), values (regression), the probability of class 1
(binary), for a batch of any size (the batch dimension is dynamic; the rest of the input
shape is one sample's, ``net.input_shape``).

Formats (``--format``: one, several joined by commas, or ``all``), the file written (in RUN
for a run dir, named ``model``, ``best`` or ``last`` after ``--ckpt``; beside RUN, named after
it, for a file; ``--out PATH`` for one format), and what loads it:

- ``onnx`` (the default): ``model.onnx``, one self-contained file, for
  ``onnxruntime.InferenceSession`` (no torch needed); input ``input``, output named after
  the task (``probabilities``, ``values``, ``probability``). Needs
  ``pip install 'descentlab[export]'``.
- ``torchscript``: ``model.torchscript.pt``, for ``torch.jit.load`` (traced with
  ``torch.jit.trace``; torch 2.14 deprecates TorchScript, with a warning, but runs it).
- ``export``: ``model.pt2``, for ``torch.export.load(path).module()`` (``torch.export`` with
  a ``Dim`` for the batch).

Each file is written into a temporary folder beside its destination, loaded back with its
format's own loader, run on random batches of :data:`CHECK_BATCHES` rows (the export traced
:data:`TRACE_BATCH` rows) and compared with the eager model; it replaces the destination
only when every output is within ``atol + rtol·|eager|`` (:data:`ATOL`, :data:`RTOL`).
``export.json`` in the destination's folder records, per exported file, the format, the
input shape, what the output means, the tolerance, the largest difference measured and
``run_card``, the ``run.json`` of the run the model came from (when there is one).

``model.net.ops=optable`` (layers made of ``torch.autograd.Function`` objects) exports to
``onnx`` and ``export``, which trace through a Function's forward; TorchScript cannot save a
call to a Python Function, and is refused in one line.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import re
import shutil
import sys
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

from descentlab.errors import DescentlabError, one_line, user_error


class ExportError(DescentlabError):
    """The model cannot be exported as asked (format, destination, net), or its export disagrees.

    ``written``: the (file, record) pairs of the formats that were exported before it.
    """

    def __init__(self, message: str, written: list | tuple = ()):
        super().__init__(message)
        self.written = list(written)


@dataclass(frozen=True)
class Format:
    suffix: str  # of the default file name: model<suffix>
    loader: str  # how to load it, for export.json


FORMATS = {
    "onnx": Format(".onnx", "onnxruntime.InferenceSession(path).run(None, {'input': x})[0]"),
    "torchscript": Format(".torchscript.pt", "torch.jit.load(path)(x)"),
    "export": Format(".pt2", "torch.export.load(path).module()(x)"),
}
# what --format onnx imports: the exporter (torch.onnx's dynamo exporter writes with
# onnxscript and onnx) and the checker's runtime
ONNX_MODULES = ("onnx", "onnxscript", "onnxruntime")
# formats that export an ``ops=optable`` net (measured: tests/test_export.py)
OPTABLE_FORMATS = ("onnx", "export")
WEIGHTS = {"kept": "model.pt", "best": "checkpoints/best.ckpt", "last": "checkpoints/last.ckpt"}

ATOL, RTOL = 1e-5, 1e-4  # float32: the exported graph may fuse or reorder the arithmetic
TRACE_BATCH = 2  # rows of the example the export traces (not 0 or 1: those specialize)
CHECK_BATCHES = (1, 17)  # rows of the batches the written file is checked on
ONNX_SINGLE_FILE_BYTES = 1 << 30  # larger weights go to model.onnx.data (protobuf's 2 GiB cap)


def output_meaning(task, output_shape: tuple[int, ...]) -> tuple[str, str]:
    """(output name, what it means) for ``task.predict``'s output of one batch."""
    name = getattr(task, "name", type(task).__name__)
    width = output_shape[1] if len(output_shape) > 1 else 1
    if name == "classification":
        return "probabilities", f"probabilities over the {width} classes (softmax; rows sum to 1)"
    if name == "regression":
        return "values", (
            "the predicted value" if len(output_shape) == 1 else f"the {width} predicted values"
        )
    if name == "binary":
        return "probability", "the probability of class 1, σ(z)"
    return "output", f"what {type(task).__name__}.predict returns"


def make_wrapper(net, task):
    """``x ↦ task.predict(net(x))`` as an ``nn.Module``: what ``predict_step`` computes."""
    from torch import nn

    predict = task.predict  # written without len(): a traced batch size stays symbolic

    class Prediction(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = net

        def forward(self, x):
            return predict(self.net(x))

    return Prediction().eval()


def default_out(run: str, fmt: str, ckpt: str) -> Path:
    suffix = FORMATS[fmt].suffix
    local = Path(run)
    if local.is_dir():
        return local / (("model" if ckpt == "kept" else ckpt) + suffix)
    return local.with_name(local.stem + suffix)  # beside the file: best.ckpt -> best.onnx


def source_of(run: str, ckpt: str) -> str:
    """What to load: RUN itself, or the weights ``--ckpt`` names in the run dir RUN."""
    local = Path(run)
    if ckpt == "kept":
        return run
    if not local.is_dir():
        raise ExportError(f"--ckpt {ckpt} picks a run dir's weights; {run} is not a run dir")
    path = local / WEIGHTS[ckpt]
    if not path.is_file():
        raise ExportError(f"--ckpt {ckpt}: run dir {run} has no {WEIGHTS[ckpt]}")
    return str(path)


def check_out(out: Path) -> None:
    """Refuse a destination that cannot be written, before the model is loaded."""
    parent = out.parent
    if out.is_dir():
        raise ExportError(f"--out {out} is a directory: give a file path")
    if not parent.is_dir():
        what = "is not a directory" if parent.exists() else "does not exist"
        raise ExportError(f"cannot write --out {out}: its folder {parent} {what}")
    if not os.access(parent, os.W_OK | os.X_OK) or (out.exists() and not os.access(out, os.W_OK)):
        # os.access says no on a read-only mount as well as for permissions: say which
        read_only = bool(os.statvfs(parent).f_flag & os.ST_RDONLY)
        why = "a read-only file system" if read_only else "permission denied"
        raise ExportError(f"cannot write {out}: {why}")


def require_onnx() -> None:
    missing = []
    for module in ONNX_MODULES:
        try:
            __import__(module)
        except ImportError:
            missing.append(module)
    if missing:
        raise ExportError(
            f"--format onnx needs {', '.join(missing)}, not installed: "
            "pip install 'descentlab[export]' (or --format export|torchscript)"
        )


def _first_line(err: BaseException) -> str:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    first = lines[0].rstrip(":") if lines else type(err).__name__
    return first if len(first) <= 200 else first[:200] + "..."


def write(wrapper, example, path: Path, fmt: str, output_name: str) -> None:
    """Export ``wrapper`` traced on ``example`` to ``path``, the batch dimension dynamic."""
    import torch

    batch = torch.export.Dim("batch", min=1)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit's deprecation, the tracer's shape notes
        if fmt == "onnx":
            n_bytes = sum(p.numel() * p.element_size() for p in wrapper.parameters())
            with contextlib.redirect_stdout(io.StringIO()):  # the exporter's progress lines
                torch.onnx.export(
                    wrapper,
                    (example,),
                    str(path),
                    dynamo=True,
                    dynamic_shapes={"x": {0: batch}},
                    input_names=["input"],
                    output_names=[output_name],
                    external_data=n_bytes > ONNX_SINGLE_FILE_BYTES,
                )
        elif fmt == "torchscript":
            torch.jit.save(torch.jit.trace(wrapper, (example,)), str(path))
        else:
            program = torch.export.export(wrapper, (example,), dynamic_shapes={"x": {0: batch}})
            torch.export.save(program, str(path))


def load_exported(path: Path, fmt: str):
    """The written file, loaded by its format's own loader, as a tensor → numpy callable."""
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if fmt == "onnx":
            import onnxruntime

            session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            return lambda x: session.run(None, {"input": x.numpy()})[0]
        loaded = torch.jit.load(str(path)) if fmt == "torchscript" else torch.export.load(str(path))
    model = loaded if fmt == "torchscript" else loaded.module()

    def run(x):
        with torch.no_grad():
            return model(x).numpy()

    return run


def max_difference(run, reference, inputs) -> tuple[float, bool]:
    """The largest |file − eager| over ``inputs``, and whether all are within the tolerance."""
    import numpy as np

    worst, within = 0.0, True
    for x in inputs:
        got, want = np.asarray(run(x)), reference(x).numpy()
        if got.shape != want.shape:
            raise ExportError(
                f"the exported file returns shape {got.shape} for a batch of {len(x)}, the model "
                f"{want.shape}"
            )
        worst = max(worst, float(np.abs(got - want).max(initial=0.0)))
        within = within and bool(np.allclose(got, want, atol=ATOL, rtol=RTOL))
    return worst, within


def parse_formats(text: str) -> list[str]:
    """``--format``: one format, several joined by commas, or ``all``."""
    names = list(FORMATS) if text == "all" else [f.strip() for f in text.split(",") if f.strip()]
    unknown = [f for f in names if f not in FORMATS]
    if unknown or not names:
        raise ExportError(
            f"--format {text!r} is unknown: one of {', '.join(FORMATS)}, several joined by "
            "commas, or all"
        )
    return list(dict.fromkeys(names))


def check_source(run: str) -> None:
    """Refuse a local RUN that is not a run dir or a file, before torch is imported."""
    if "://" in run:
        return
    local = Path(run)
    exported = next((f for f, spec in FORMATS.items() if local.name.endswith(spec.suffix)), None)
    if exported is not None and local.is_file():
        raise ExportError(
            f"{run} is an exported model ({exported}), not a run: give the run dir it came from"
        )
    if local.is_dir():
        if not any((local / weights).is_file() for weights in WEIGHTS.values()):
            raise ExportError(
                f"{run} is not a run dir: it holds neither model.pt nor checkpoints/best.ckpt "
                "or last.ckpt"
            )
    elif not local.is_file():
        raise ExportError(f"{run} does not exist: give a run dir, a .ckpt or a run's model.pt")
    else:
        with local.open("rb") as f:
            head = f.read(4)
        if head != b"PK\x03\x04" and head[:1] != b"\x80":  # torch.save: a zip (or a pickle)
            raise ExportError(
                f"{run} is not a checkpoint or a model.pt (not a file torch.save wrote): give a "
                "run dir, a .ckpt or a run's model.pt"
            )


def export(
    run: str | Path, fmt: str = "onnx", out: str | Path | None = None, ckpt: str = "kept"
) -> list[tuple[Path, dict]]:
    """Export RUN's prediction in ``fmt`` (a format, several joined by commas, or ``all``),
    check each file; return each file written and its record.

    Each format is tried; when one fails, the others are still written and one
    :class:`ExportError` names every refusal at the end.
    """
    run = str(run)
    formats = parse_formats(fmt)
    if ckpt not in WEIGHTS:
        raise ExportError(f"--ckpt {ckpt!r} is unknown: one of {', '.join(WEIGHTS)}")
    if out is not None and len(formats) > 1:
        raise ExportError("--out names one file: give one --format with it")
    if out is None and "://" in run:
        raise ExportError(f"{run} is not on this machine: give --out PATH")
    check_source(run)
    source = source_of(run, ckpt)
    outs = [Path(out) if out is not None else default_out(run, f, ckpt) for f in formats]
    for path in outs:
        check_out(path)
    if "onnx" in formats:
        require_onnx()

    import torch

    from descentlab.api import load
    from descentlab.run.card import card_of

    module = load(source)
    net, task = module.net, module.task
    input_shape = tuple(getattr(net, "input_shape", ()))
    if not input_shape:
        raise ExportError(f"{type(net).__name__} has no input_shape: cannot make an example input")
    dtype = next((p.dtype for p in net.parameters() if p.is_floating_point()), torch.float32)
    generator = torch.Generator().manual_seed(0)
    example, *inputs = (
        torch.randn(n, *input_shape, generator=generator, dtype=dtype)
        for n in (TRACE_BATCH, *CHECK_BATCHES)
    )

    def reference(x):  # what predict_step returns, with task.predict itself
        with torch.no_grad():
            return task.predict(net(x))

    output_shape = tuple(reference(example).shape)
    output_name, meaning = output_meaning(task, output_shape)
    wrapper = make_wrapper(net, task)
    optable = getattr(net, "ops", None) == "optable"

    written, refused = [], []
    for one, path in zip(formats, outs, strict=True):
        try:
            difference = write_checked(wrapper, example, inputs, reference, path, one, output_name)
        except ExportError as err:
            refused.append(str(err))
            continue
        except Exception as err:
            if user_error(err) is not None:  # a full disk, a permission: one line
                raise
            refused.append(export_failure(err, one, net, optable))
            continue
        record = {
            "format": one,
            "file": path.name,
            "source": source if "://" in source else str(Path(source).resolve()),
            "task": getattr(task, "name", type(task).__name__),
            "net": type(net).__name__ + (" (model.net.ops=optable)" if optable else ""),
            "input": {
                "name": "input" if one == "onnx" else "x",
                "shape": ["batch", *input_shape],
                "dtype": str(dtype).removeprefix("torch."),
            },
            "output": {
                "name": output_name if one == "onnx" else "output",
                "shape": ["batch", *output_shape[1:]],
                "meaning": meaning,
            },
            "load": FORMATS[one].loader,
            "check": {
                "traced_batch": TRACE_BATCH,
                "batches": list(CHECK_BATCHES),
                "atol": ATOL,
                "rtol": RTOL,
                "max_abs_diff": difference,
            },
            "torch": torch.__version__,
        }
        if (run_card := card_of(source)) is not None:  # the card of the run that trained it
            record["run_card"] = run_card
        write_record(path.parent / "export.json", record)
        written.append((path, record))
    if refused:
        kept = f" (written: {', '.join(str(p) for p, _ in written)})" if written else ""
        raise ExportError("; ".join(refused) + kept, written)
    return written


def write_checked(wrapper, example, inputs, reference, out: Path, fmt: str, output_name: str):
    """Write ``out`` through a staging folder beside it, moved in place only once checked;
    return the largest difference from the eager model."""
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        staged = staging / out.name
        write(wrapper, example, staged, fmt, output_name)
        difference, within = max_difference(load_exported(staged, fmt), reference, inputs)
        if not within:
            raise ExportError(
                f"the {fmt} file's outputs differ from the model's by up to {difference:.3g}, "
                f"more than atol {ATOL:g} + rtol {RTOL:g}·|output|; {out} was not written"
            )
        for file in staging.iterdir():  # model.onnx (and model.onnx.data for large weights)
            os.replace(file, out.parent / file.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return difference


def export_failure(err: BaseException, fmt: str, net, optable: bool) -> str:
    """One line for an exporter's or loader's failure: which net, which format, what works."""
    if optable:
        others = " or --format ".join(f for f in OPTABLE_FORMATS if f != fmt)
        called = re.search(r"Python function call '(\w+)'", str(err))
        why = (
            f"TorchScript cannot save a call to a torch.autograd.Function ({called.group(1)})"
            if called
            else _first_line(err)
        )
        return (
            f"model.net.ops=optable cannot be exported to {fmt}: {why}; --format {others} "
            "exports it"
        )
    others = " or --format ".join(f for f in FORMATS if f != fmt)
    why = _first_line(err)
    return f"{type(net).__name__} could not be exported to {fmt} ({why}); try --format {others}"


def write_record(path: Path, record: dict) -> None:
    """Add ``record`` to ``export.json`` (one entry per exported file name)."""
    try:
        records = json.loads(path.read_text())
        if not isinstance(records, dict):
            records = {}
    except (OSError, ValueError):
        records = {}
    records[record["file"]] = record
    staged = path.with_name(f".{path.name}.tmp")
    staged.write_text(json.dumps(records, indent=2, ensure_ascii=False) + "\n")
    os.replace(staged, path)


def summary(out: Path, record: dict) -> str:
    shape = lambda dims: str(tuple(dims)).replace("'", "")  # noqa: E731
    check = record["check"]
    return (
        f"wrote {out} ({record['format']}): input {shape(record['input']['shape'])} "
        f"{record['input']['dtype']} -> {shape(record['output']['shape'])}, "
        f"{record['output']['meaning']}\n"
        f"checked on batches of {' and '.join(map(str, check['batches']))} (traced with "
        f"{check['traced_batch']}): max |file - model| = {check['max_abs_diff']:.3g} "
        f"(tolerance atol {check['atol']:g} + rtol {check['rtol']:g}·|model|)\n"
        f"recorded in {out.parent / 'export.json'}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m descentlab.export", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("run", help="a run dir, a training checkpoint (.ckpt) or a run's model.pt")
    parser.add_argument(
        "--format",
        default="onnx",
        help=f"{', '.join(FORMATS)}; several joined by commas, or all (default: onnx)",
        dest="fmt",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="the file to write (default: RUN/model.onnx, model.torchscript.pt, model.pt2)",
    )
    parser.add_argument(
        "--ckpt",
        default="kept",
        help="a run dir's weights: kept (model.pt, default), best or last (checkpoints/*.ckpt)",
    )
    args = parser.parse_args(argv)
    try:
        written = export(args.run, args.fmt, args.out, args.ckpt)
    except Exception as err:
        error = user_error(err)
        if error is None or os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        for out, record in getattr(error, "written", []):
            print(summary(out, record))
        print(f"descentlab: error: {one_line(str(error))}", file=sys.stderr)
        return 1
    for out, record in written:
        print(summary(out, record))
    return 0


if __name__ == "__main__":
    sys.exit(main())
