"""The run card: ``run.json`` (the facts, machine-readable) and ``card.md`` (the same for
people), written beside ``metrics.json`` whenever a ``train.py`` run writes it: completed,
diverged, failed or interrupted.

What it records: the command and Hydra's overrides, the code (git commit, dirty, a hash
of the diff), the library versions (and a hash of every installed distribution), the
machine, the data (file or folder, split sizes, a hash of the split), the seed, the
status, the times, the throughput, the final metrics and a curves figure (``card.png``).

The card never makes a run fail: each part is gathered on its own, and a part that
raised is left null, named in ``run.json``'s ``error`` and in a line of ``card.md``.
Only rank 0 writes. Torch-free at import; see docs/runs.md, "The run card".
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

VERSIONS = (
    "torch",
    "lightning",
    "hydra-core",
    "torchmetrics",
    "torchvision",
    "numpy",
    "descentlab",
)
GIT_TIMEOUT_S = 10
FIGURE = "card.png"
# run dir -> {"fit": (started, seconds), "test": (...)}: filled by :func:`timed`
_PHASES: dict[str, dict[str, tuple[float, float]]] = {}


@contextmanager
def timed(parts) -> Iterator[None]:
    """Note how long the block (``Trainer.fit`` or ``test``) took, for the card's times."""
    started = time.time()
    try:
        yield
    finally:
        fn = getattr(getattr(parts.trainer, "state", None), "fn", None)
        phase = str(getattr(fn, "value", fn) or "fit")
        _PHASES.setdefault(str(parts.output_dir), {})[phase] = (started, time.time() - started)


def card_of(source: Any) -> str | None:
    """The ``run.json`` of the run a model came from: RUN/run.json for a run dir, beside a
    ``model.pt``, or in the parent of a checkpoint's ``checkpoints/``; None if there is none."""
    if source is None or "://" in str(source):
        return None
    path = Path(str(source))
    candidates = [path] if path.is_dir() else [path.parent, path.parent.parent]
    found = next((c / "run.json" for c in candidates if (c / "run.json").is_file()), None)
    return str(found.resolve()) if found is not None else None


def write(cfg, metrics: dict[str, Any], parts=None) -> None:
    """Write ``run.json`` and ``card.md`` (and ``card.png``) into the run dir; never raises."""
    try:
        from descentlab.run import job

        if not job.is_rank_zero():
            return
        output_dir = Path(cfg.paths.output_dir)
        # plain JSON values: a value of another type is written as its text, not an error
        facts = json.loads(json.dumps(gather(cfg, metrics, parts, output_dir), default=str))
        from descentlab.storage.atomic import write_atomically, write_json

        write_json(output_dir / "run.json", facts)
        text = markdown(facts)
        write_atomically(output_dir / "card.md", lambda tmp: tmp.write_text(text))
    except Exception as err:  # noqa: BLE001 - the card never makes a run fail
        print(f"descentlab: the run card was not written ({one_line(err)})", file=sys.stderr)


def one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return f"{type(err).__name__}: {text[:300]}" if text else type(err).__name__


def gather(cfg, metrics: dict[str, Any], parts, output_dir: Path) -> dict[str, Any]:
    """Every part of the card; a part that raises is null and named in ``error``."""
    from descentlab.run.outputs import scalar

    final = {k: scalar(v) for k, v in (metrics or {}).items()}
    errors: list[str] = []

    def part(name: str, fn, *args):
        try:
            return fn(*args)
        except Exception as err:  # noqa: BLE001
            errors.append(f"{name}: {one_line(err)}")
            return None

    ended = time.time()
    phases = _PHASES.get(str(output_dir), {})
    started = part("started_at", start_time, output_dir, phases)
    facts: dict[str, Any] = {
        "command": part("command", lambda: [sys.executable, *sys.argv]),
        "process_id": os.getpid(),  # the job's process (a parallel launcher's worker)
        "overrides": part("overrides", overrides, output_dir),
        "code": part("code", code, output_dir),
        "versions": part("versions", versions),
        "machine": part("machine", machine, parts),
        "data": part("data", data, cfg, parts),
        "seed": part("seed", lambda: cfg.get("seed")),
        "status": final.get("status"),
        "started_at": iso(started) if started else None,
        "ended_at": iso(ended),
        "wall_seconds": round(ended - started, 3) if started else None,
        "fit_seconds": round(phases["fit"][1], 3) if "fit" in phases else None,
        "test_seconds": round(phases["test"][1], 3) if "test" in phases else None,
        "epochs": final.get("epochs"),
        "global_step": final.get("global_step"),
        "metrics": final,
    }
    if "reason" in final:
        facts["reason"] = final["reason"]
    facts.update(dict.fromkeys(("samples_per_second", "samples_seen", "samples_counted_as")))
    facts.update(part("samples_per_second", throughput, facts, parts) or {})
    facts["figure"] = figure(output_dir)  # null when matplotlib (or the drawing) failed
    if errors:
        facts["error"] = "; ".join(errors)
    return facts


# ----------------------------------------------------------------------------- times
def iso(seconds: float) -> str:
    return datetime.datetime.fromtimestamp(seconds).astimezone().isoformat(timespec="seconds")


def start_time(output_dir: Path, phases: dict) -> float | None:
    """When Hydra wrote the run's ``.hydra/config.yaml`` (just before the run began), else
    when fit began (a run without Hydra's files, e.g. through ``descentlab.api``)."""
    config = output_dir / ".hydra" / "config.yaml"
    if config.is_file():
        return config.stat().st_mtime
    return phases["fit"][0] if "fit" in phases else None


def throughput(facts: dict, parts) -> dict[str, Any]:
    """Training samples per second of fit time (validation included), and how they were
    counted: the train split's size × epochs for a run that ran whole epochs, else
    global_step × batch size (× accumulated batches × processes): an upper bound, the last
    batch of an epoch may be smaller. None for a resumed run (fit timed only since the resume)."""
    none = {"samples_per_second": None, "samples_seen": None, "samples_counted_as": None}
    if parts is None or not facts.get("fit_seconds"):
        return none
    if parts.ckpt_path:
        return {**none, "samples_counted_as": "not counted: a resumed run (fit timed since)"}
    trainer, datamodule = parts.trainer, parts.datamodule
    sizes = (facts.get("data") or {}).get("split_sizes") or {}
    batch = getattr(datamodule, "batch_size", None)
    if facts.get("status") in ("completed", "early_stopped") and sizes.get("train"):
        seen, how = sizes["train"] * int(facts["epochs"] or 0), "train split size × epochs"
    elif isinstance(batch, int):
        factor = int(getattr(trainer, "accumulate_grad_batches", 1) or 1) * int(
            getattr(trainer, "world_size", 1) or 1
        )
        seen = int(facts["global_step"] or 0) * batch * factor
        how = "global_step × batch size × accumulate_grad_batches × processes (an upper bound)"
    else:
        return none
    return {
        "samples_per_second": round(seen / facts["fit_seconds"], 1),
        "samples_seen": seen,
        "samples_counted_as": how,
    }


# ---------------------------------------------------------------------------- command
def overrides(output_dir: Path) -> list[str]:
    """Hydra's task overrides (what differs from the defaults), else ``.hydra/overrides.yaml``."""
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized():
        return [str(o) for o in HydraConfig.get().overrides.task]
    path = output_dir / ".hydra" / "overrides.yaml"
    if path.is_file():
        from omegaconf import OmegaConf

        return [str(o) for o in OmegaConf.load(path)]
    return []


# ------------------------------------------------------------------------------- code
def git(args: list[str], cwd: Path, text: bool = True) -> Any:
    """``git ARGS`` in ``cwd``: its stdout, or None when it failed. Takes no optional lock:
    a card must not collide with a commit made in the same checkout meanwhile."""
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0", "LC_ALL": "C"}
    try:
        proc = subprocess.run(
            ["git", *args],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=text,
            timeout=GIT_TIMEOUT_S,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout if proc.returncode == 0 else None


def config_dirs() -> list[Path]:
    """Where the configs came from: Hydra's primary config dir, the working directory's
    ``configs/``; then descentlab's own source."""
    found = []
    try:
        from hydra.core.hydra_config import HydraConfig

        if HydraConfig.initialized():
            runtime = HydraConfig.get().runtime
            found += [
                Path(s.path)
                for s in runtime.config_sources
                if s.provider == "main" and s.schema == "file"
            ]
            found.append(Path(runtime.cwd) / "configs")
    except Exception:  # noqa: BLE001 - a Hydra without these fields: the other places
        pass
    found.append(Path.cwd() / "configs")
    return [p for p in dict.fromkeys(found) if p.is_dir()] + [Path(__file__).resolve().parent]


def code(output_dir: Path) -> dict[str, Any]:
    empty = {"repo": None, "commit": None, "dirty": None, "diff_sha256": None}
    if shutil.which("git") is None:
        return {**empty, "reason": "git is not installed"}
    places = config_dirs()
    top = next((t for t in (git(["rev-parse", "--show-toplevel"], p) for p in places) if t), None)
    if top is None:
        return {**empty, "reason": f"not in a git repository: {', '.join(map(str, places))}"}
    repo = Path(top.strip())
    commit = git(["rev-parse", "HEAD"], repo)
    if commit is None:
        return {**empty, "repo": str(repo), "reason": "the repository has no commit yet"}
    changes = changed(repo, output_dir)
    facts = {**empty, "repo": str(repo), "commit": commit.strip()}
    if changes is None:
        return {**facts, "reason": "git status failed"}
    facts.update(dirty=bool(changes), changes=len(changes))
    if changes:
        diff = git(["diff", "HEAD", "--binary", "--no-ext-diff", "--no-color"], repo, text=False)
        facts["diff_sha256"] = hashlib.sha256(diff).hexdigest() if diff is not None else None
    return facts


def changed(repo: Path, output_dir: Path) -> list[str] | None:
    """``git status --porcelain`` entries, less untracked files under ``logs/`` and the run
    dir (or an untracked folder that holds it)."""
    out = git(["status", "--porcelain", "-z", "--untracked-files=normal"], repo)
    if out is None:
        return None
    try:
        run_dir = output_dir.resolve().relative_to(repo.resolve()).as_posix()
    except ValueError:
        run_dir = None
    entries, fields = [], iter(out.split("\0"))
    for entry in fields:
        if not entry:
            continue
        state, path = entry[:2], entry[3:]
        if state[0] in "RC":
            next(fields, None)  # a rename's or copy's source path
        ignored = within(path, "logs") or (
            run_dir is not None and (within(path, run_dir) or within(run_dir, path))
        )
        if not (state == "??" and ignored):
            entries.append(entry)
    return entries


def within(path: str, folder: str) -> bool:
    """Whether ``path`` is ``folder`` or lies under it (paths relative to the repository)."""
    folder = folder.rstrip("/")
    return path.rstrip("/") == folder or path.startswith(folder + "/")


# --------------------------------------------------------------------------- versions
def versions() -> dict[str, Any]:
    """The main libraries' versions, and a hash of every installed distribution (name and
    version, sorted): two runs with the same hash had the same packages."""
    from importlib import metadata

    found: dict[str, Any] = {"python": platform.python_version()}
    for name in VERSIONS:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    installed = sorted(
        {f"{(d.metadata['Name'] or '').lower()}=={d.version}" for d in metadata.distributions()}
    )
    found["pip_freeze_sha256"] = hashlib.sha256("\n".join(installed).encode()).hexdigest()
    found["distributions"] = len(installed)
    return found


# ---------------------------------------------------------------------------- machine
def cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def ram_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def driver_version() -> str | None:
    try:
        found = re.search(r"Kernel Module\s+(\S+)", Path("/proc/driver/nvidia/version").read_text())
        if found:
            return found.group(1)
    except OSError:
        pass
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        proc = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT_S,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout.splitlines()[0].strip() if proc.returncode == 0 and proc.stdout else None


def machine(parts) -> dict[str, Any]:
    ram = ram_bytes()
    facts: dict[str, Any] = {
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "logical_cores": os.cpu_count(),
        "torch_threads": None,  # torch's intra-op threads in this run (num_threads)
        "ram_bytes": ram,
        "ram_gib": round(ram / 2**30, 1) if ram else None,
        "gpus": None,
        "gpu_driver": None,
        "cuda": None,
    }
    torch = sys.modules.get("torch")  # a run that failed before importing it used no GPU
    if torch is not None:
        facts["torch_threads"] = torch.get_num_threads()
    if torch is not None and torch.cuda.is_available():
        count = torch.cuda.device_count()
        facts["gpus"] = [torch.cuda.get_device_name(i) for i in range(count)]
        facts["cuda"] = torch.version.cuda
        facts["gpu_driver"] = driver_version()
    trainer = getattr(parts, "trainer", None)
    if trainer is not None:
        facts["accelerator"] = type(trainer.accelerator).__name__.removesuffix("Accelerator")
        facts["processes"] = trainer.world_size
    return facts


# ------------------------------------------------------------------------------- data
def file_facts(path: Path) -> dict[str, Any]:
    """A file's size and sha256; a folder's file count and bytes (its files not hashed)."""
    if path.is_file():
        digest = hashlib.sha256()
        with path.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
        return {
            "path": str(path.resolve()),
            "bytes": path.stat().st_size,
            "sha256": digest.hexdigest(),
        }
    if path.is_dir():
        files = total = 0
        for folder, _dirs, names in os.walk(path):
            for name in names:
                files += 1
                try:
                    total += os.stat(os.path.join(folder, name)).st_size
                except OSError:
                    pass
        return {"path": str(path.resolve()), "files": files, "bytes": total}
    return {"path": str(path), "missing": True}


def split_facts(datamodule) -> dict[str, Any]:
    """Split sizes and a sha256 of the split: of each split's targets and shapes for
    in-memory data, of each split's sorted file paths (relative to the root) for images."""
    digest = hashlib.sha256()
    splits = getattr(datamodule, "splits", None)
    samples = getattr(datamodule, "samples", None)
    if isinstance(splits, dict) and splits:
        sizes = {}
        for name in sorted(splits):
            x, y = splits[name]
            sizes[name] = len(y)
            digest.update(f"{name}:{tuple(x.shape)}:{tuple(y.shape)}:{y.dtype}\n".encode())
            digest.update(y.detach().cpu().contiguous().numpy().tobytes())
        how = "targets y and shapes of each split"
    elif isinstance(samples, dict) and samples:
        root = Path(str(getattr(datamodule, "root", "")))
        sizes = {}
        for name in sorted(samples):
            sizes[name] = len(samples[name])
            for path in sorted(str(p) for p, _label in samples[name]):
                shown = os.path.relpath(path, root) if root.parts else path
                digest.update(f"{name}\t{shown}\n".encode())
        how = "sorted file paths of each split"
    else:
        return {"split_sizes": None, "split_sha256": None, "split_hashed": None}
    return {"split_sizes": sizes, "split_sha256": digest.hexdigest(), "split_hashed": how}


def data(cfg, parts) -> dict[str, Any]:
    node = cfg.get("data") or {}
    facts: dict[str, Any] = {"target": node.get("_target_")}
    for key in ("path", "root"):
        if key in node and node.get(key) is not None:
            facts[key] = file_facts(Path(str(node.get(key))))
    datamodule = getattr(parts, "datamodule", None)
    facts.update(split_facts(datamodule))
    facts["batch_size"] = getattr(datamodule, "batch_size", node.get("batch_size"))
    names = getattr(datamodule, "class_names", None) or getattr(datamodule, "classes", None)
    facts["classes"] = [str(c) for c in names] if isinstance(names, (list, tuple)) else None
    task = getattr(getattr(parts, "model", None), "task", None)
    target = (cfg.get("task") or {}).get("_target_")
    facts["task"] = getattr(task, "name", None) or (
        str(target).rsplit(".", 1)[-1].lower() if target else None
    )
    return facts


# ----------------------------------------------------------------------------- figure
def figure(output_dir: Path) -> str | None:
    """``card.png``: the run's curves as ``python -m descentlab.report`` draws them; None
    when matplotlib is missing or the drawing failed."""
    try:
        import warnings

        from descentlab.report import draw_curves, load_runs
        from descentlab.storage.atomic import write_atomically

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            runs = load_runs([output_dir])
            if not runs[0].curves:  # stopped before its first epoch: nothing to draw
                return None
            drawn = draw_curves(runs)
            try:
                write_atomically(
                    output_dir / FIGURE, lambda tmp: drawn.savefig(tmp, dpi=80, format="png")
                )
            finally:
                import matplotlib.pyplot as plt

                plt.close(drawn)
        return FIGURE
    except Exception:  # noqa: BLE001 - no figure is no error
        return None


# ---------------------------------------------------------------------------- card.md
def markdown(facts: dict[str, Any]) -> str:
    """``card.md``: the facts of ``run.json`` for people."""
    code_ = facts.get("code") or {}
    commit = code_.get("commit")
    if commit:
        state = "dirty" if code_.get("dirty") else "clean"
        diff = f", diff sha256 {code_['diff_sha256'][:12]}" if code_.get("diff_sha256") else ""
        code_line = f"commit {commit} ({state}{diff}) in {code_.get('repo')}"
    else:
        code_line = f"commit unknown ({code_.get('reason', 'not recorded')})"
    status = facts.get("status") or "unknown"
    if facts.get("reason"):
        status += f": {facts['reason']}"
    lines = [
        f"# Run card: {status.split(':')[0]}",
        "",
        f"- **status**: {status}",
        f"- **command**: `{' '.join(facts.get('command') or [])}`",
        f"- **overrides**: {' '.join(f'`{o}`' for o in facts.get('overrides') or []) or 'none'}",
        f"- **code**: {code_line}",
        f"- **seed**: {facts.get('seed')}",
        f"- **started**: {facts.get('started_at')}, **ended**: {facts.get('ended_at')} "
        f"({facts.get('wall_seconds')} s; fit {facts.get('fit_seconds')} s)",
        f"- **epochs**: {facts.get('epochs')}, **global step**: {facts.get('global_step')}",
    ]
    if facts.get("samples_per_second") is not None:
        lines.append(
            f"- **throughput**: {facts['samples_per_second']} training samples/s of fit time "
            f"({facts['samples_seen']} samples: {facts['samples_counted_as']})"
        )
    data_ = facts.get("data") or {}
    if data_:
        lines += [
            "",
            "## Data",
            "",
            f"- **class**: `{data_.get('target')}`, task {data_.get('task')}",
        ]
        for key in ("path", "root"):
            if key in data_:
                lines.append(f"- **{key}**: {describe_file(data_[key])}")
        lines.append(
            f"- **splits**: {data_.get('split_sizes')}, sha256 {data_.get('split_sha256')} "
            f"(of the {data_.get('split_hashed')})"
        )
        if data_.get("classes"):
            lines.append(f"- **classes**: {', '.join(data_['classes'])}")
    versions_ = facts.get("versions") or {}
    if versions_:
        shown = ", ".join(f"{k} {v}" for k, v in versions_.items() if k not in ("distributions",))
        lines += ["", "## Software", "", shown]
    machine_ = facts.get("machine") or {}
    if machine_:
        gpus = "no GPU"
        if machine_.get("gpus"):
            gpus = (
                f"GPUs: {', '.join(machine_['gpus'])} (driver {machine_.get('gpu_driver')}, "
                f"CUDA {machine_.get('cuda')})"
            )
        lines += [
            "",
            "## Machine",
            "",
            f"{machine_.get('hostname')}: {machine_.get('platform')}; {machine_.get('cpu')}, "
            f"{machine_.get('logical_cores')} logical cores, {machine_.get('ram_gib')} GiB RAM; "
            f"{gpus}; trained on {machine_.get('accelerator')} × {machine_.get('processes')}",
        ]
    lines += ["", "## Metrics", "", "| metric | value |", "| --- | --- |"]
    for key, value in sorted((facts.get("metrics") or {}).items()):
        lines.append(f"| {key} | {f'{value:.4f}' if isinstance(value, float) else value} |")
    if facts.get("figure"):
        lines += ["", f"![curves]({facts['figure']})"]
    if facts.get("error"):
        lines += ["", f"**The card is incomplete**: {facts['error']}"]
    return "\n".join(lines) + "\n"


def describe_file(facts: dict[str, Any]) -> str:
    if facts.get("missing"):
        return f"{facts['path']} (missing)"
    if "sha256" in facts:
        return f"{facts['path']} ({facts['bytes']} bytes, sha256 {facts['sha256']})"
    return f"{facts['path']} ({facts.get('files')} files, {facts.get('bytes')} bytes)"
