"""The notebooks' figures, one command each: every figure of notebooks 01-03 is

    python notebooks/demos.py COMMAND [options] --out fig.png

and the notebook cell that draws it runs the same command line (``demo("COMMAND ...")``),
so the command next to a figure reproduces exactly that figure. Each command prints the
numbers its figure shows.

    python notebooks/demos.py worked-example --w 0.5 --b -0.3 --x 1.7 --y 1 --lam 0.1
    python notebooks/demos.py surface --surface ravine --optimizer momentum:lr=0.15,mu=0.5 --steps 40 --out fig.png
    python notebooks/demos.py sigmoid-deep --depth 10 --width 256 --out fig.png
    python notebooks/demos.py --help                     # every command

Notebook 01 (backprop): worked-example, engine-graph, jacobian, softmax-pitfall.
Notebook 02 (optimizers): surface, sweep, bias-correction, adam-stall, minibatch, train-curves.
Notebook 03 (initialization): init-variance, init-schemes, xavier-backward, deep-linear-grads,
deep-linear-train, sigmoid-deep.
"""

from __future__ import annotations

import argparse
import math
import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import torch
from torch import nn

HERE = Path(__file__).resolve().parent

# =============================================================================== shared


def train_quietly(overrides: list[str], run_dir: str | Path) -> tuple[dict, Path]:
    """``python train.py OVERRIDES hydra.run.dir=RUN_DIR`` without its progress bar and
    model table (a notebook shows the figure, not the run's console output)."""
    from descentlab.api import train

    quiet = ["callbacks.progress_bar=null", "trainer.enable_model_summary=false"]
    return train([*overrides, *quiet], run_dir, quiet=True)


def digits_split(split: str = "train", dtype=torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """The template's digits split (the same rows as a run's), images flattened to 64 features."""
    from descentlab.data import DigitsDataModule

    dm = DigitsDataModule()
    dm.setup()
    x, y = dm.splits[split]
    return x.reshape(len(x), -1).to(dtype), y


def _fmt(v: float) -> str:
    return f"{v:.4g}"


# ======================================================================= notebook 01

# The lecture's graph of ℒ(w, b) = ½(y − σ(wx + b))² + λw²: each named node, the named
# nodes it feeds, and the local derivative on that arrow (its formula).
LECTURE_EDGES = [
    ("w", "z", "∂z/∂w = x"),
    ("b", "z", "∂z/∂b = 1"),
    ("z", "u", "∂u/∂z = σ'(z)"),
    ("u", "l", "∂l/∂u = u − y"),
    ("l", "L", "∂ℒ/∂l = 1"),
    ("w", "r", "∂r/∂w = 2w"),
    ("r", "L", "∂ℒ/∂r = λ"),
]
LECTURE_POS = {
    "w": (0.0, 0.6),
    "b": (0.0, -0.6),
    "r": (2.0, 0.6),
    "z": (1.3, -0.6),
    "u": (2.6, -0.6),
    "l": (3.9, -0.6),
    "L": (5.0, 0.0),
}
SHOWN = {"L": "ℒ"}  # how a node's name is drawn


def worked_example_numbers(w: float, b: float, x: float, y: float, lam: float) -> dict:
    """The engine's forward values and ∂ℒ/∂node of every named node, and the local
    derivative ∂consumer/∂node on every arrow of the lecture's graph (each from a
    backward pass started at the consumer)."""
    from descentlab.autograd.engine import worked_example

    nodes = worked_example(w, b, x, y, lam)
    nodes["L"].backward()
    local = {}
    for a, c, _ in LECTURE_EDGES:
        fresh = worked_example(w, b, x, y, lam)
        fresh[c].backward()  # ∂c/∂(every node c depends on)
        local[(a, c)] = fresh[a].grad
    return {
        "nodes": nodes,
        "value": {k: v.data for k, v in nodes.items()},
        "grad": {k: v.grad for k, v in nodes.items()},
        "local": local,
    }


def lecture_graph():
    """The lecture's graph of ℒ as a networkx DiGraph: an arrow from each node to its consumers."""
    import networkx as nx

    graph = nx.DiGraph()
    graph.add_nodes_from(LECTURE_POS)
    for a, c, formula in LECTURE_EDGES:
        graph.add_edge(a, c, formula=formula)
    return graph


def draw_lecture_graph(ax, numbers: dict) -> None:
    """Boxes (value, ∂ℒ/∂node) at the lecture's places, arrows labelled with their local derivative."""
    graph = lecture_graph()
    value, grad = numbers["value"], numbers["grad"]
    colors = {"w": "#fde2c4", "b": "#fde2c4", "L": "#d5e8d4"}
    boxes = {}
    for n in graph.nodes:
        name = SHOWN.get(n, n)
        boxes[n] = ax.text(
            *LECTURE_POS[n],
            f"{name} = {value[n]:.4f}\n∂ℒ/∂{name} = {grad[n]:.4f}",
            ha="center",
            va="center",
            fontsize=9,
            bbox={"boxstyle": "round,pad=0.4", "fc": colors.get(n, "#dae8fc"), "ec": "0.3"},
            zorder=1,  # below the arrows: drawn first, so each arrow is clipped to where it is
        )
    ax.set_xlim(-0.6, 5.6)
    ax.set_ylim(-1.0, 1.0)
    for a, c, data in graph.edges(data=True):
        (xa, ya), (xc, yc) = LECTURE_POS[a], LECTURE_POS[c]
        ax.annotate(
            "",
            xy=(xc, yc),
            xytext=(xa, ya),
            arrowprops={
                "arrowstyle": "-|>",
                "color": "0.35",
                "patchA": boxes[a].get_bbox_patch(),
                "patchB": boxes[c].get_bbox_patch(),
                "shrinkA": 2,
                "shrinkB": 2,
            },
            zorder=3,
        )
        ax.text(
            (xa + xc) / 2,
            (ya + yc) / 2 + (0.16 if ya == yc else 0.0),
            f"{data['formula']} = {numbers['local'][(a, c)]:.4f}",
            ha="center",
            va="center",
            fontsize=8.5,
            color="0.15",
            bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.9},
            zorder=4,
        )
    ax.axis("off")


def cmd_worked_example(args) -> dict:
    """The worked example on the scalar engine: each node's value and ∂ℒ/∂node."""
    numbers = worked_example_numbers(args.w, args.b, args.x, args.y, args.lam)
    print(f"w = {args.w}, b = {args.b}, x = {args.x}, y = {args.y}, λ = {args.lam}")
    print(f"{'node':5s} {'value':>12s} {'∂ℒ/∂node':>12s}")
    for name in ("L", "r", "l", "u", "z", "w", "b"):
        print(
            f"{SHOWN.get(name, name):5s} {numbers['value'][name]:12.6f} {numbers['grad'][name]:12.6f}"
        )
    if args.out or args.show:
        fig, ax = plt.subplots(figsize=(11, 4.6))
        draw_lecture_graph(ax, numbers)
        ax.set_title(
            f"ℒ(w, b) = ½(y − σ(wx + b))² + λw² at w = {args.w}, b = {args.b}, x = {args.x}, "
            f"y = {args.y}, λ = {args.lam}: each box is value and ∂ℒ/∂node, each arrow "
            "its local derivative",
            fontsize=9,
        )
        numbers["fig"] = fig
    return numbers


def engine_graph(root):
    """Every ``Value`` the engine recorded for ``root``, as a networkx DiGraph (input → consumer)."""
    import networkx as nx

    graph = nx.DiGraph()
    for node in root.topological_order():
        graph.add_node(id(node), value=node)
        for child in node._prev:
            graph.add_edge(id(child), id(node))
    return graph


def cmd_engine_graph(args) -> dict:
    """The graph the engine records for the worked example, every op node included."""
    import networkx as nx

    from descentlab.autograd.engine import worked_example

    nodes = worked_example(args.w, args.b, args.x, args.y, args.lam)
    nodes["L"].backward()
    graph = engine_graph(nodes["L"])
    value = nx.get_node_attributes(graph, "value")
    constants = [n for n in graph.nodes if not value[n].op and not value[n].label]
    named = [n for n in graph.nodes if value[n].label]
    ops = [n for n in graph.nodes if value[n].op and not value[n].label]
    counts = {"named": len(named), "op": len(ops), "constant": len(constants)}
    print(
        f"{graph.number_of_nodes()} Values: {counts['named']} named (the lecture's), "
        f"{counts['op']} unnamed op nodes, {counts['constant']} constants (x, y, λ, ½, −1)"
    )
    consumers = {name: graph.out_degree(id(nodes[name])) for name in ("w", "b", "z", "u")}
    print("consumers: " + ", ".join(f"{k} feeds {v}" for k, v in consumers.items()))
    result = {"graph": graph, "counts": counts, "consumers": consumers, "nodes": nodes}
    if args.out or args.show:
        # draw the constants inside the op that uses them ("×1.7" is w·x): 12 nodes, not 17
        shown = graph.subgraph(named + ops).copy()
        labels = {}
        for n in shown.nodes:
            v = value[n]
            const = [f"{value[c].data:g}" for c in graph.predecessors(n) if c in constants]
            op = {"*": "×", "+": "+"}.get(v.op, v.op)
            text = f"{op}{const[0]}" if const else op
            labels[n] = f"{SHOWN.get(v.label, v.label)}\n{text or 'leaf'}" if v.label else text
        depth = {}
        for n in nx.topological_sort(shown):
            depth[n] = max((depth[p] + 1 for p in shown.predecessors(n)), default=0)
        columns: dict[int, list] = {}
        for n in nx.topological_sort(shown):
            columns.setdefault(depth[n], []).append(n)
        pos = {n: (d, 0.5 - i) for d, ns in columns.items() for i, n in enumerate(ns)}
        fig, ax = plt.subplots(figsize=(12, 2.8))
        nx.draw_networkx_edges(shown, pos, ax=ax, node_size=1400, arrowsize=12, edge_color="0.45")
        for members, color in ((named, "#dae8fc"), (ops, "#eeeeee")):
            nx.draw_networkx_nodes(
                shown,
                pos,
                nodelist=members,
                node_color=color,
                node_size=1400,
                edgecolors="0.3",
                ax=ax,
            )
        nx.draw_networkx_labels(shown, pos, labels=labels, font_size=8, ax=ax)
        ax.set_title(
            f"what the engine records for ℒ: {graph.number_of_nodes()} Values, inputs left, ℒ right "
            "(blue: the lecture's names; grey: unnamed op nodes; ×1.7 multiplies by the constant 1.7)",
            fontsize=9,
        )
        ax.set_ylim(-1.1, 1.1)
        ax.axis("off")
        result["fig"] = fig
    return result


def cmd_jacobian(args) -> dict:
    """A layer v = σ(Wu) at once: the op table's backward against Jᵀ ∂ℒ/∂v with J built explicitly."""
    from torch.autograd.functional import jacobian

    from descentlab.autograd import ops

    gen = torch.Generator().manual_seed(args.seed)
    W = torch.randn(args.n_out, args.n_in, dtype=torch.float64, generator=gen)
    u = torch.randn(args.n_in, dtype=torch.float64, generator=gen, requires_grad=True)
    dL_dv = torch.randn(args.n_out, dtype=torch.float64, generator=gen)
    (by_op_table,) = torch.autograd.grad(ops.sigmoid(ops.matvec(u, W)), u, dL_dv)
    J = jacobian(lambda u: torch.sigmoid(W @ u), u.detach())  # [∂v_i/∂u_j], n_out × n_in
    by_jacobian = J.T @ dL_dv
    by_formula = W.T @ (torch.sigmoid(W @ u.detach()) * (1 - torch.sigmoid(W @ u.detach())) * dL_dv)
    gap = (by_op_table - by_jacobian).abs().max().item()
    print(
        f"W: {args.n_out} × {args.n_in}; max |op table − Jᵀ ∂ℒ/∂v| = {gap:.1e}; "
        f"max |J − diag(σ'(Wu)) W| = {(J - torch.diag(torch.sigmoid(W @ u.detach()) * (1 - torch.sigmoid(W @ u.detach()))) @ W).abs().max().item():.1e}"
    )
    result = {
        "J": J,
        "by_op_table": by_op_table,
        "by_jacobian": by_jacobian,
        "by_formula": by_formula,
        "gap": gap,
    }
    if args.out or args.show:
        fig, (ax1, ax2) = plt.subplots(
            1, 2, figsize=(10, 3.2), gridspec_kw={"width_ratios": [1, 1.4]}
        )
        m = J.abs().max()
        im = ax1.imshow(J, cmap="RdBu", vmin=-m, vmax=m)
        ax1.set_title("J = [∂v_i/∂u_j] (torch's jacobian)", fontsize=9)
        ax1.set_xlabel("j (input)")
        ax1.set_ylabel("i (output)")
        fig.colorbar(im, ax=ax1, shrink=0.8)
        idx = torch.arange(args.n_in)
        ax2.bar(
            idx - 0.2, by_op_table, width=0.4, label="op table's backward (Wᵀ g, J never formed)"
        )
        ax2.bar(idx + 0.2, by_jacobian, width=0.4, label="Jᵀ ∂ℒ/∂v (J formed)")
        ax2.set_xlabel("j")
        ax2.set_title("∂ℒ/∂u_j", fontsize=9)
        ax2.legend(fontsize=7)
        plt.tight_layout()
        result["fig"] = fig
    return result


def lecture_network(hidden: int = 32, softmax: bool = False, seed: int = 0) -> nn.Sequential:
    """u = σ(Wx), then W'u: the lecture's network for the 64 digit pixels (10 logits).
    ``softmax=True`` adds the pitfall: a Softmax before nn.CrossEntropyLoss."""
    torch.manual_seed(seed)
    layers = [nn.Linear(64, hidden), nn.Sigmoid(), nn.Linear(hidden, 10)]
    return nn.Sequential(*layers, *([nn.Softmax(dim=1)] if softmax else []))


def softmax_floor(num_classes: int = 10) -> float:
    """The lowest cross-entropy when the logits are probabilities p ∈ [0, 1]: a perfect
    p = one-hot gives −log(e / (e + (k − 1)))."""
    return math.log(1 + (num_classes - 1) / math.e)


def cmd_softmax_pitfall(args) -> dict:
    """The lecture's network trained with and without a Softmax before CrossEntropyLoss."""
    x, y = digits_split("train")
    xt, yt = digits_split("test")
    loss_fn = nn.CrossEntropyLoss()
    result = {"floor": softmax_floor(), "curves": {}, "test_acc": {}}
    for wrong in (False, True):
        net = lecture_network(softmax=wrong)
        at_init = loss_fn(net(x), y)
        grads = torch.autograd.grad(at_init, list(net.parameters()))
        result[("init_loss", wrong)] = at_init.item()
        result[("init_grad", wrong)] = torch.cat([g.flatten() for g in grads]).norm().item()
        opt = torch.optim.SGD(net.parameters(), lr=args.lr)
        gen = torch.Generator().manual_seed(0)
        curve = []
        for _ in range(args.epochs):
            for idx in torch.randperm(len(x), generator=gen).split(args.batch_size):
                opt.zero_grad()
                loss_fn(net(x[idx]), y[idx]).backward()
                opt.step()
            with torch.no_grad():
                curve.append(loss_fn(net(x), y).item())
        with torch.no_grad():
            result["test_acc"][wrong] = (net(xt).argmax(1) == yt).float().mean().item()
        result["curves"][wrong] = curve
    name = {False: "without Softmax", True: "Softmax before CrossEntropyLoss"}
    print(f"lowest possible loss with the extra Softmax: ln(1 + 9/e) = {result['floor']:.4f}")
    for wrong in (False, True):
        print(
            f"{name[wrong]:32s} loss at init {result[('init_loss', wrong)]:.4f}, "
            f"‖gradient‖ at init {result[('init_grad', wrong)]:.4f}, train loss after "
            f"{args.epochs} epochs {result['curves'][wrong][-1]:.4f}, test acc "
            f"{result['test_acc'][wrong]:.3f}"
        )
    if args.out or args.show:
        fig, ax = plt.subplots(figsize=(6.5, 3.6))
        epochs = range(1, args.epochs + 1)
        for wrong in (False, True):
            ax.plot(epochs, result["curves"][wrong], "-o", markersize=3, label=name[wrong])
        ax.axhline(
            result["floor"], color="k", linestyle=":", label="ln(1 + 9/e): the floor with Softmax"
        )
        ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_ylabel("training loss (cross-entropy)")
        ax.set_title(
            f"σ-network 64→32→10 on digits, SGD η = {args.lr}, |S| = {args.batch_size}", fontsize=9
        )
        ax.legend(fontsize=8)
        result["fig"] = fig
    return result


# ======================================================================= notebook 02


@dataclass(frozen=True)
class Surface:
    f: Callable
    start: tuple[float, float]
    xlim: tuple[float, float]
    ylim: tuple[float, float]
    formula: str
    minimum: tuple[float, float]


SURFACES = {
    "ravine": Surface(
        lambda w: 0.5 * (w[0] ** 2 + 25 * w[1] ** 2),
        (-10.0, 2.0),
        (-11.0, 2.0),
        (-2.5, 2.5),
        "f = ½(w₁² + 25 w₂²)",
        (0.0, 0.0),
    ),
    "saddle": Surface(
        lambda w: w[0] ** 2 - w[1] ** 2 + w[1] ** 4 / 4,
        (1.0, 1e-3),
        (-1.2, 1.2),
        (-0.5, 2.0),
        "f = x² − y² + y⁴/4",
        (0.0, math.sqrt(2.0)),
    ),
}
OPTIMIZER_NAMES = ("sgd", "momentum", "adagrad", "adaptive", "adam", "adam-lecture")


def make_optimizer(spec: str) -> tuple[str, Callable]:
    """``name`` or ``name:lr=0.1,mu=0.9,beta=0.999`` -> (label with η/μ/β, factory)."""
    from descentlab.optim import SGD, Adam, Adaptive, Momentum

    name, _, rest = spec.partition(":")
    if name not in OPTIMIZER_NAMES:
        raise SystemExit(
            f"--optimizer {spec}: the name must be one of {', '.join(OPTIMIZER_NAMES)}"
        )
    hp = {"lr": 0.1, "mu": 0.9, "beta": 0.999}
    for item in filter(None, rest.split(",")):
        key, _, value = item.partition("=")
        if key not in hp:
            raise SystemExit(f"--optimizer {spec}: {key!r} is not one of lr, mu, beta")
        hp[key] = float(value)
    lr, mu, beta = hp["lr"], hp["mu"], hp["beta"]
    factories = {
        "sgd": (f"SGD η={lr:g}", lambda p: SGD(p, lr=lr)),
        "momentum": (f"momentum η={lr:g} μ={mu:g}", lambda p: Momentum(p, lr=lr, mu=mu)),
        "adagrad": (f"AdaGrad η={lr:g}", lambda p: Adaptive(p, lr=lr, scope="coordinate")),
        "adaptive": (f"notes' adaptive η={lr:g}", lambda p: Adaptive(p, lr=lr)),
        "adam": (f"Adam η={lr:g} μ={mu:g} β={beta:g}", lambda p: Adam(p, lr=lr, mu=mu, beta=beta)),
        "adam-lecture": (
            f"notes' Adam η={lr:g} μ={mu:g} β={beta:g}",
            lambda p: Adam(p, lr=lr, mu=mu, beta=beta, form="lecture"),
        ),
    }
    return factories[name]


def trajectory(make: Callable, f: Callable, start, steps: int) -> torch.Tensor:
    """w_0, w_1, ..., w_steps of an optimizer on f (float64), one row each."""
    w = torch.tensor(start, dtype=torch.float64, requires_grad=True)
    opt = make([w])
    path = [w.detach().clone()]
    for _ in range(steps):
        opt.zero_grad()
        f(w).backward()
        opt.step()
        path.append(w.detach().clone())
    return torch.stack(path)


def contour(ax, surface: Surface) -> None:
    xs, ys = torch.meshgrid(
        torch.linspace(*surface.xlim, 120), torch.linspace(*surface.ylim, 120), indexing="xy"
    )
    ax.contour(xs, ys, surface.f(torch.stack([xs, ys])), levels=14, cmap="Greys", linewidths=0.5)


def cmd_surface(args) -> dict:
    """Trajectories of one or more optimizers on a 2-D surface, and f(w_t) per step."""
    surface = SURFACES[args.surface]
    specs = args.optimizer or ["sgd"]
    result = {"runs": {}}
    for spec in specs:
        label, make = make_optimizer(spec)
        path = trajectory(make, surface.f, surface.start, args.steps)
        values = torch.stack([surface.f(w) for w in path])
        result["runs"][label] = {"path": path, "f": values}
        w = path[-1]
        print(
            f"{label:36s} after {args.steps} steps: w = ({w[0].item():.4g}, {w[1].item():.4g}), "
            f"f = {values[-1].item():.4g}"
        )
    if args.out or args.show:
        many = len(specs) > 3
        if many:
            rows = math.ceil(len(specs) / 3)
            fig, axes = plt.subplots(rows, 3, figsize=(12, 3.1 * rows), sharex=True, sharey=True)
            panels = list(axes.flat)
        else:
            fig, (ax, ax_f) = plt.subplots(1, 2, figsize=(12, 3.8))
            panels = [ax] * len(specs)
        for i, (panel, (label, run)) in enumerate(
            zip(panels, result["runs"].items(), strict=False)
        ):
            if many or i == 0:
                contour(panel, surface)
            path = run["path"]
            inside = (path[:, 0].abs() < 1e6) & (path[:, 1].abs() < 1e6)
            panel.plot(
                path[inside, 0], path[inside, 1], "-o", markersize=2, color=f"C{i}", label=label
            )
            panel.set_xlim(*surface.xlim)
            panel.set_ylim(*surface.ylim)
            if many:
                panel.set_title(
                    f"{label}\nf after {args.steps} steps = {run['f'][-1]:.3g}", fontsize=8
                )
        if not many:
            panels[0].legend(fontsize=8)
            panels[0].set_title(f"{surface.formula}, start {surface.start}", fontsize=9)
            for i, (label, run) in enumerate(result["runs"].items()):
                if args.surface == "saddle":  # the escape: y_t leaves the ridge y = 0
                    ax_f.plot(run["path"][:, 1], "-o", markersize=2, color=f"C{i}", label=label)
                else:
                    ax_f.plot(run["f"], color=f"C{i}", label=label)
            if args.surface == "saddle":
                ax_f.axhline(math.sqrt(2), color="k", linestyle=":", linewidth=1)
                ax_f.axhline(1, color="0.6", linestyle="--", linewidth=1)
                ax_f.set_ylim(-0.1, 2.0)
                ax_f.set_ylabel("y_t (dotted: the minimum √2; dashed: y = 1)")
            else:
                ax_f.set_yscale("log")
                ax_f.set_ylabel("f(w_t)")
            ax_f.set_xlabel("step t")
            ax_f.legend(fontsize=8)
        plt.tight_layout()
        result["fig"] = fig
    return result


def settle_step(path: torch.Tensor, minimum, radius: float = 0.1) -> float:
    """The first step from which w stays within ``radius`` of ``minimum`` (inf: never)."""
    dist = (path - torch.tensor(minimum, dtype=path.dtype)).norm(dim=1)
    far = torch.nonzero(~(dist < radius)).flatten()  # nan counts as far
    if len(far) == 0:
        return 0.0
    last = far[-1].item()
    return float("inf") if last == len(path) - 1 else float(last + 1)


def escape_step(path: torch.Tensor) -> float:
    """The first step at which y > 1 on the saddle (halfway from the ridge to the minimum)."""
    return next((float(t) for t in range(len(path)) if path[t, 1] > 1), float("inf"))


def cmd_sweep(args) -> dict:
    """Each optimizer over a grid of η: on the ravine f after N steps; on the saddle the step
    at which y > 1 (escape) and the step from which w stays within 0.1 of the minimum."""
    surface = SURFACES[args.surface]
    lrs = torch.linspace(args.lr_min, args.lr_max, args.points).tolist()
    curves = {"sgd": ("SGD", "sgd:lr={}")}
    for mu in args.mu:
        curves[f"momentum{mu:g}"] = (f"momentum μ={mu:g}", f"momentum:lr={{}},mu={mu}")
    result = {"lrs": lrs, "curves": {}, "best": {}, "settle": {}, "best_settle": {}}
    for key, (label, spec) in curves.items():
        ys, settles = [], []
        for lr in lrs:
            _, make = make_optimizer(spec.format(lr))
            path = trajectory(make, surface.f, surface.start, args.steps)
            if args.surface == "ravine":
                v = surface.f(path[-1]).item()
                ys.append(v if math.isfinite(v) else float("inf"))
            else:
                settle = settle_step(path, surface.minimum)
                if settle > args.steps // 2:  # it must then stay there for half the run at least
                    settle = float("inf")
                settles.append(settle)
                # an escape counts only if the run then settles at the minimum
                ys.append(escape_step(path) if math.isfinite(settle) else float("inf"))
        best = min(range(len(lrs)), key=lambda i: ys[i])
        result["curves"][key] = ys
        result["best"][key] = (lrs[best], ys[best])
        if args.surface == "ravine":
            print(
                f"{label:16s} best η = {lrs[best]:.4g}: f after {args.steps} steps = {ys[best]:.4g}"
            )
        else:
            fastest = min(range(len(lrs)), key=lambda i: settles[i])
            result["settle"][key] = settles
            result["best_settle"][key] = (lrs[fastest], settles[fastest])
            stable = [lr for lr, v in zip(lrs, settles, strict=True) if math.isfinite(v)]
            result.setdefault("largest_stable", {})[key] = max(stable)
            print(
                f"{label:16s} fastest escape (y > 1): step {ys[best]:g} at η = {lrs[best]:.3g}; "
                f"within 0.1 of the minimum from step {settles[fastest]:g} at best (η = "
                f"{lrs[fastest]:.3g}); settles for η up to {max(stable):.3g}"
            )
    if args.out or args.show:
        fig, ax = plt.subplots(figsize=(7.5, 3.8))
        for i, (key, (label, _)) in enumerate(curves.items()):
            ys = [v if math.isfinite(v) else float("nan") for v in result["curves"][key]]
            name = label if args.surface == "ravine" else f"{label}: y > 1"
            ax.plot(lrs, ys, "-o", markersize=2.5, color=f"C{i}", label=name)
            lr, v = result["best"][key]
            ax.plot([lr], [v], "*", markersize=12, color=f"C{i}")
            if args.surface == "saddle":
                settles = [v if math.isfinite(v) else float("nan") for v in result["settle"][key]]
                ax.plot(lrs, settles, "--", color=f"C{i}", linewidth=1,
                        label=f"{label}: within 0.1 of (0, √2) for good")  # fmt: skip
        if args.surface == "ravine":
            ax.set_yscale("log")
            ax.set_ylim(1e-13, 1e5)
            ax.set_ylabel(f"f after {args.steps} steps")
            # stable on the steep axis (curvature 25) for η·25 < 2, momentum for η(1−μ)·25 < 2(1+μ)
            limits = {
                "sgd": 2 / 25,
                **{f"momentum{mu:g}": 2 * (1 + mu) / ((1 - mu) * 25) for mu in args.mu},
            }
            for i, key in enumerate(curves):
                if limits[key] <= args.lr_max:
                    ax.axvline(limits[key], color=f"C{i}", linestyle=":", linewidth=1)
            result["limits"] = limits
            ax.set_title(
                f"{surface.formula} from {surface.start}; ★ best η; dotted: stability limit",
                fontsize=9,
            )
        else:
            ax.set_ylim(0, min(args.steps, 60))
            ax.set_ylabel("step")
            ax.set_title(
                f"{surface.formula} from {surface.start}; ★ fastest escape (missing: not "
                f"settled within {args.steps // 2} steps)",
                fontsize=9,
            )
        ax.set_xlabel("η")
        ax.legend(fontsize=8)
        result["fig"] = fig
    return result


def cmd_bias_correction(args) -> dict:
    """v_t (no correction), v̂_t = v_t/(1 − μ^t) and the notes' compounding v_t under a
    constant gradient g."""
    mu, g, steps = args.mu, args.g, args.steps
    v, notes, rows = 0.0, 0.0, []
    for t in range(1, steps + 1):
        v = mu * v + (1 - mu) * g
        notes = (mu * notes + (1 - mu) * g) / (1 - mu**t)
        rows.append((t, v, v / (1 - mu**t), (1 - mu**t) * g, notes))
    ts, vs, vhat, formula, notes_v = (list(c) for c in zip(*rows, strict=True))
    gap = max(abs(a - b) for a, b in zip(vs, formula, strict=True))
    hat_gap = max(abs(a - g) for a in vhat)
    peak = max(range(steps), key=lambda i: notes_v[i])
    print(
        f"μ = {mu}, g = {g}: max_t |v_t − (1 − μ^t) g| = {gap:.1e}, max_t |v̂_t − g| = {hat_gap:.1e}"
    )
    print(f"v_1 = {vs[0]:.4g} (= (1 − μ) g), v_10 = {vs[min(9, steps - 1)]:.4g}")
    print(
        f"the notes' v_t (correction inside the recursion) peaks at {notes_v[peak]:.4g} = {notes_v[peak] / g:.4g} g at t = {ts[peak]}"
    )
    result = {
        "t": ts,
        "v": vs,
        "v_hat": vhat,
        "formula": formula,
        "notes": notes_v,
        "gap": gap,
        "hat_gap": hat_gap,
        "peak": (notes_v[peak], ts[peak]),
    }
    if args.out or args.show:
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 3.6))
        ax1.plot(ts, vs, "o", markersize=3, label="v_t = μv_{t−1} + (1−μ)g (the EMA)")
        ax1.plot(ts, formula, "-", color="C0", linewidth=1, label="(1 − μᵗ) g")
        ax1.plot(ts, vhat, "s", markersize=3, label="v̂_t = v_t / (1 − μᵗ)")
        ax1.axhline(g, color="k", linestyle=":", linewidth=1)
        ax1.set_xlabel("step t")
        ax1.set_title(f"constant gradient g = {g:g}, μ = {mu:g}", fontsize=9)
        ax1.legend(fontsize=8)
        ax2.semilogy(
            ts,
            notes_v,
            "-o",
            markersize=3,
            color="C3",
            label="the notes' v_t = (μv_{t−1} + (1−μ)g)/(1−μᵗ)",
        )
        ax2.semilogy(ts, vhat, "s", markersize=3, color="C1", label="v̂_t (correction outside)")
        ax2.set_xlabel("step t")
        ax2.set_title(f"correction inside the recursion: compounds (μ = {mu:g})", fontsize=9)
        ax2.legend(fontsize=8)
        plt.tight_layout()
        result["fig"] = fig
    return result


def lecture_adam_s_bound(beta: float, t: int) -> float:
    """log10 of Π_{k=2..t} β/(1 − β^k): how much the notes' s_t has been multiplied by."""
    return sum(math.log10(beta / (1 - beta**k)) for k in range(2, t + 1))


def cmd_adam_stall(args) -> dict:
    """Standard vs the notes' Adam on ½‖Aw − b‖² in float32: loss, step size, s_t."""
    from descentlab.optim import Adam

    gen = torch.Generator().manual_seed(0)
    A, bvec = torch.randn(20, 10, generator=gen), torch.randn(20, generator=gen)
    result = {}
    for form in ("standard", "lecture"):
        w = torch.zeros(10, requires_grad=True)
        opt = Adam([w], lr=args.lr, mu=args.mu, beta=args.beta, form=form)
        losses, moves, s = [], [], []
        for _ in range(args.steps):
            opt.zero_grad()
            loss = 0.5 * (A @ w - bvec).pow(2).sum()
            loss.backward()
            before = w.detach().clone()
            opt.step()
            losses.append(loss.item())
            moves.append((w.detach() - before).norm().item())
            if form == "lecture":
                s.append(float(opt.global_state["s"]))
        result[form] = {"loss": losses, "moves": moves, "s": s}
    s = result["lecture"]["s"]
    moves = result["lecture"]["moves"]
    inf_from = next((t + 1 for t, v in enumerate(s) if v == float("inf")), None)
    zero_from = next((t + 1 for t in range(len(moves)) if all(m == 0 for m in moves[t:])), None)
    result.update(inf_from=inf_from, zero_from=zero_from)
    result["log10_product"] = {t: lecture_adam_s_bound(args.beta, t) for t in (5, 10, 20)}
    result["growth_until"] = math.log(1 - args.beta) / math.log(args.beta)
    f32 = math.log10(torch.finfo(torch.float32).max)
    result["f32_step"] = next(
        t for t in range(2, 10_000) if lecture_adam_s_bound(args.beta, t) > f32
    )
    print(f"η = {args.lr}, μ = {args.mu}, β = {args.beta}, float32")
    print(
        "log10 Π β/(1−β^k): "
        + ", ".join(f"{v:.1f} at t = {t}" for t, v in result["log10_product"].items())
        + f"; float32's largest is 10^{f32:.1f}, passed at t = {result['f32_step']}"
    )
    print(f"β/(1−β^t) > 1 for t < ln(1−β)/ln β = {result['growth_until']:.0f}")
    print(
        f"the notes' Adam: s_t = inf from step {inf_from}, every update exactly 0 from step "
        f"{zero_from}, loss stuck at {result['lecture']['loss'][-1]:.4f} "
        f"(standard Adam: {result['standard']['loss'][-1]:.4f})"
    )
    if args.out or args.show:
        fig, axes = plt.subplots(1, 3, figsize=(13, 3.4))
        for form in ("standard", "lecture"):
            label = f"{'Adam' if form == 'standard' else 'notes’ Adam'} η={args.lr:g} μ={args.mu:g} β={args.beta:g}"
            axes[0].plot(result[form]["loss"], label=label)
            axes[1].plot(
                [m if m > 0 else float("nan") for m in result[form]["moves"]],
                "-o",
                markersize=2,
                label=label,
            )
        axes[2].semilogy(
            [v if v < float("inf") else float("nan") for v in s], "-o", markersize=2, color="C1"
        )
        if inf_from:
            for ax in axes[1:]:
                ax.axvline(inf_from - 1, color="k", linestyle=":")
            axes[2].set_xlim(-1, inf_from + 5)
            axes[2].text(inf_from - 1, 1e10, f" s = inf\n from step\n {inf_from}", fontsize=8)
        axes[0].set_title("loss ½‖Aw − b‖²", fontsize=9)
        axes[1].set_yscale("log")
        axes[1].set_title("‖Δw‖ per step (not drawn where exactly 0)", fontsize=9)
        axes[2].set_title(f"the notes' s_t (float32, β={args.beta:g})", fontsize=9)
        axes[0].legend(fontsize=7)
        axes[1].legend(fontsize=7)
        for ax in axes:
            ax.set_xlabel("step")
        plt.tight_layout()
        result["fig"] = fig
    return result


def epoch_time(batch_size: int, x, y, repeats: int = 3) -> float:
    """Seconds for one epoch of a plain loop (forward, loss, backward, SGD step) over
    (x, y) in batches of ``batch_size``; the fastest of ``repeats`` epochs. One thread: with
    two, small batches spend their time waiting for each other's thread, not computing."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _epoch_time(batch_size, x, y, repeats)
    finally:
        torch.set_num_threads(threads)


def _epoch_time(batch_size: int, x, y, repeats: int) -> float:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 32), nn.Tanh(), nn.Linear(32, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for i in range(0, len(x), batch_size):
            opt.zero_grad()
            nn.functional.cross_entropy(
                model(x[i : i + batch_size]), y[i : i + batch_size]
            ).backward()
            opt.step()
        best = min(best, time.perf_counter() - start)
    return best


def cmd_minibatch(args) -> dict:
    """The minibatch gradient: its variance around the full gradient, and the time of an
    epoch, against the batch size |S|."""
    from descentlab.models.mlp import MLP
    from descentlab.optim.minibatch import minibatch_gradient_variance, per_sample_gradients

    torch.manual_seed(0)
    x, y = digits_split("train", torch.float64)
    n = len(x)
    model = MLP((64,), 10, [32], activation="tanh").double()
    per_sample = per_sample_gradients(model, nn.functional.cross_entropy, x, y)  # n × d
    full = per_sample.mean(0)
    sizes = [s for s in args.sizes if s <= n]
    # ‖mean of D's rows in S‖² = 1_Sᵀ G 1_S / |S|² with D = ∇ℓ_i − ∇L and G = D Dᵀ (n × n):
    # every draw of a batch S is one row of a 0/1 matrix, all draws in one product
    deviations = per_sample - full
    gram = deviations @ deviations.T
    gen = torch.Generator().manual_seed(0)
    measured, predicted, seconds = [], [], []
    for size in sizes:
        chosen = torch.rand(args.draws, n, generator=gen, dtype=torch.float64).argsort(dim=1)[
            :, :size
        ]
        member = torch.zeros(args.draws, n, dtype=torch.float64).scatter_(1, chosen, 1.0)
        d = ((member @ gram) * member).sum(1) / size**2
        measured.append((d.mean().item(), 2 * d.std().item() / args.draws**0.5))
        predicted.append(minibatch_gradient_variance(per_sample, size))
    xf, yf = x.float(), y
    epoch_time(64, xf, yf, repeats=1)  # warm up
    for size in sizes:
        seconds.append(epoch_time(size, xf, yf, args.repeats))
    sigma2 = deviations.pow(2).sum(1).mean().item()  # V = (1/n) Σ_i ‖∇ℓ_i − ∇L‖²
    print(f"n = {n} samples, d = {per_sample.shape[1]} parameters, V = {sigma2:.4g}")
    print(
        f"{'|S|':>5s} {'measured E‖∇L̃−∇L‖²':>22s} {'V/|S|·(n−|S|)/(n−1)':>22s} {'s/epoch':>9s} {'steps':>6s}"
    )
    for size, (m, e), p, s in zip(sizes, measured, predicted, seconds, strict=True):
        print(f"{size:5d} {m:14.4g} ± {e:<7.2g} {p:22.4g} {s:9.4f} {math.ceil(n / size):6d}")
    result = {
        "n": n,
        "sizes": sizes,
        "measured": measured,
        "predicted": predicted,
        "seconds": seconds,
        "sigma2": sigma2,
    }
    if args.out or args.show:
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 3.8))
        ax1.errorbar(
            sizes,
            [m for m, _ in measured],
            yerr=[e for _, e in measured],
            fmt="o",
            label=f"measured ({args.draws} batches each, ±2 SE)",
        )
        ax1.plot(sizes, predicted, "-", label="V/|S| · (n−|S|)/(n−1)")
        ax1.plot(sizes, [sigma2 / s for s in sizes], "--", label="V/|S|")
        ax1.set_xscale("log")
        ax1.set_yscale("log")
        ax1.set_xlabel("batch size |S|")
        ax1.set_ylabel("E‖∇L̃_S − ∇L‖²")
        ax1.set_title(f"minibatch gradient variance, digits (n = {n})", fontsize=9)
        ax1.legend(fontsize=8)
        ax2.plot(sizes, seconds, "-o", markersize=4, label="measured")
        ax2.plot(
            sizes,
            [seconds[0] / s for s in sizes],
            ":",
            color="0.5",
            label="∝ 1/|S| (fixed cost per step)",
        )
        ax2.set_xscale("log")
        ax2.set_yscale("log")
        ax2.set_xlabel("batch size |S|")
        ax2.set_ylabel("seconds per epoch")
        ax2.set_title(
            "one epoch of a plain loop (forward, backward, SGD step η=0.01), 64→32→10 MLP, 1 thread",
            fontsize=9,
        )
        ax2.legend(fontsize=8)
        plt.tight_layout()
        result["fig"] = fig
    return result


TRAIN_CURVES = {  # label: (run folder, overrides), every hyperparameter named in its label
    "SGD η=0.1": ("sgd", ["optimizer=sgd", "optimizer.lr=0.1"]),
    "momentum η=0.3 μ=0.9": (
        "momentum",
        ["optimizer=momentum", "optimizer.lr=0.3", "optimizer.mu=0.9"],
    ),
    "notes' adaptive η=0.5": ("adaptive", ["optimizer=adaptive", "optimizer.lr=0.5"]),
    "Adam η=0.001 μ=0.9 β=0.999": (
        "adam",
        ["optimizer=adam", "optimizer.lr=0.001", "optimizer.mu=0.9", "optimizer.beta=0.999"],
    ),
    "notes' Adam η=0.001 μ=0.9 β=0.999": (
        "adam_lecture",
        [
            "optimizer=adam",
            "optimizer.form=lecture",
            "optimizer.lr=0.001",
            "optimizer.mu=0.9",
            "optimizer.beta=0.999",
        ],
    ),
}


def cmd_train_curves(args) -> dict:
    """The lecture's optimizers on digits through train.py's configs (no early stopping)."""
    from descentlab.report import read_curves

    result = {}
    for label, (folder, overrides) in TRAIN_CURVES.items():
        metrics, run_dir = train_quietly(
            [*overrides, f"trainer.max_epochs={args.epochs}", "callbacks.early_stopping=null"],
            Path(args.runs) / folder,
        )
        result[label] = {"metrics": metrics, "curves": read_curves(run_dir), "run_dir": run_dir}
        print(
            f"{label:36s} train/loss {metrics['train/loss']:.4f}  val/acc {metrics['val/acc']:.3f}  "
            f"test/acc {metrics['test/acc']:.3f}"
        )
    if args.out or args.show:
        fig, axes = plt.subplots(1, 2, figsize=(12, 3.8))
        for label, run in result.items():
            for ax, key in zip(axes, ("train/loss", "val/acc"), strict=True):
                ax.plot(*zip(*run["curves"][key], strict=True), label=label)
                ax.set_title(f"{key}, MLP on digits", fontsize=9)
                ax.set_xlabel("epoch")
        axes[0].set_yscale("log")
        axes[1].legend(fontsize=7)
        plt.tight_layout()
        result["fig"] = fig
    return result


# ======================================================================= notebook 03


def layer_variances(
    width: int, depth: int, std: float, n_samples: int, seed: int = 0
) -> list[float]:
    """var(z^(l)) for l = 0 (the input) .. depth of z^(l) = W^(l) z^(l−1), W^(l)_ij ~ N(0, s²)."""
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(n_samples, width, dtype=torch.float64, generator=gen)
    out = [z.var().item()]
    for _ in range(depth):
        w = torch.randn(width, width, dtype=torch.float64, generator=gen) * std
        z = z @ w.T
        out.append(z.var().item())
    return out


def per_layer_factor(variances: list[float]) -> float:
    """The geometric mean of var(z^(l)) / var(z^(l−1)) over the layers."""
    depth = len(variances) - 1
    return (variances[-1] / variances[0]) ** (1 / depth)


def cmd_init_variance(args) -> dict:
    """Measured var(z^(l)) of a deep linear net against the prediction (n_in s²)^l var(z^(0))."""
    result = {}
    print(
        f"width n_in = {args.width}, depth {args.depth}, {args.samples} inputs with var(z^(0)) ≈ 1"
    )
    print(
        f"{'s':>8s} {'n_in·s² (predicted factor)':>27s} {'measured factor':>16s} {'var(z^(L))':>11s}"
    )
    for std in args.std:
        var = layer_variances(args.width, args.depth, std, args.samples)
        predicted = args.width * std**2
        result[std] = {"var": var, "factor": per_layer_factor(var), "predicted": predicted}
        print(f"{std:8.4g} {predicted:27.4g} {result[std]['factor']:16.4g} {var[-1]:11.3g}")
    if args.out or args.show:
        fig, ax = plt.subplots(figsize=(7, 4))
        layers = range(args.depth + 1)
        for i, std in enumerate(args.std):
            r = result[std]
            ax.semilogy(
                layers,
                r["var"],
                "o",
                markersize=4,
                color=f"C{i}",
                label=f"s = {std:g}: measured (factor {r['factor']:.4g})",
            )
            ax.semilogy(
                layers,
                [r["var"][0] * r["predicted"] ** k for k in layers],
                "-",
                color=f"C{i}",
                linewidth=1,
                label=f"s = {std:g}: predicted (n_in s²)^l = {r['predicted']:.4g}^l",
            )
        ax.set_xlabel("layer l")
        ax.set_ylabel("var(z^(l))")
        ax.set_title(
            f"linear layers z^(l) = W^(l) z^(l−1), width {args.width}, w ~ N(0, s²)", fontsize=9
        )
        ax.legend(fontsize=7)
        result["fig"] = fig
    return result


INIT_SCHEMES = {  # label: Initializer arguments
    "normal s=1": {"name": "normal", "std": 1.0},
    "normal s=0.01": {"name": "normal", "std": 0.01},
    "xavier_normal": {"name": "xavier_normal"},
    "kaiming_normal (gain 1)": {"name": "kaiming_normal", "nonlinearity": "linear"},
    "orthogonal": {"name": "orthogonal"},
    "default (PyTorch)": {"name": "default"},
}


def cmd_init_schemes(args) -> dict:
    """The named initializers on a deep net of equal widths: var of each hidden layer's output."""
    from descentlab.callbacks.diagnostics import activation_variances
    from descentlab.init import Initializer
    from descentlab.models.mlp import MLP

    torch.manual_seed(0)
    x = torch.randn(1024, args.width)
    result = {}
    for activation in ("identity", "tanh"):
        for label, kwargs in INIT_SCHEMES.items():
            torch.manual_seed(0)
            net = Initializer(**kwargs)(
                MLP((args.width,), 10, hidden_dims=[args.width] * args.depth, activation=activation)
            )
            result[(activation, label)] = activation_variances(net, x)
    print(f"var(z^(l)) of a {args.depth}-layer net of width {args.width} (input var ≈ 1)")
    print(
        f"{'init':26s} {'identity, layer 1':>17s} {'layer ' + str(args.depth):>10s} {'tanh, layer 1':>14s} {'layer ' + str(args.depth):>10s}"
    )
    for label in INIT_SCHEMES:
        a, t = result[("identity", label)], result[("tanh", label)]
        print(f"{label:26s} {a[0]:17.3g} {a[-1]:10.3g} {t[0]:14.3g} {t[-1]:10.3g}")
    if args.out or args.show:
        fig, axes = plt.subplots(1, 2, figsize=(12, 4))
        for ax, activation in zip(axes, ("identity", "tanh"), strict=True):
            for label in INIT_SCHEMES:
                ax.plot(
                    range(1, args.depth + 1),
                    result[(activation, label)],
                    "-o",
                    markersize=3,
                    label=label,
                )
            ax.set_yscale("log")
            ax.set_xlabel("layer l")
            ax.set_ylabel("var of layer l's output")
            ax.set_title(f"{activation} activations, width {args.width}", fontsize=9)
        axes[1].legend(fontsize=7)
        plt.tight_layout()
        result["fig"] = fig
    return result


def forward_backward_variances(widths: list[int], var_w: Callable, n_samples: int, seed: int = 0):
    """A linear net z^(l) = W^(l) z^(l−1) with widths[0] → widths[1] → ...: var(z^(l))
    forward and var(∂ℒ/∂z^(l)) backward, for ℒ = c · z^(L), c ~ N(0, 1)."""
    gen = torch.Generator().manual_seed(seed)
    ws = [
        torch.randn(n_out, n_in, dtype=torch.float64, generator=gen) * math.sqrt(var_w(n_in, n_out))
        for n_in, n_out in zip(widths[:-1], widths[1:], strict=True)
    ]
    z = torch.randn(n_samples, widths[0], dtype=torch.float64, generator=gen, requires_grad=True)
    zs = [z]
    for w in ws:
        zs.append(zs[-1] @ w.T)
    for t in zs[1:]:
        t.retain_grad()
    c = torch.randn(n_samples, widths[-1], dtype=torch.float64, generator=gen)
    (zs[-1] * c).sum().backward()
    return [t.var().item() for t in zs], [t.grad.var().item() for t in zs]


XAVIER_CHOICES = {
    "var(w) = 1/n_in (forward)": lambda n_in, n_out: 1 / n_in,
    "var(w) = 1/n_out (backward)": lambda n_in, n_out: 1 / n_out,
    "var(w) = 2/(n_in + n_out) (Xavier)": lambda n_in, n_out: 2 / (n_in + n_out),
}


def cmd_xavier_backward(args) -> dict:
    """Forward and backward variances of a linear net whose layers widen: n_in keeps the
    forward pass level, n_out the backward pass, Xavier's 2/(n_in + n_out) splits the difference."""
    widths = args.widths
    result = {}
    print(f"widths {' → '.join(map(str, widths))}; per-layer factors measured (predicted)")
    for label, var_w in XAVIER_CHOICES.items():
        fwd, bwd = forward_backward_variances(widths, var_w, args.samples)
        pairs = list(zip(widths[:-1], widths[1:], strict=True))
        f_meas = [fwd[i + 1] / fwd[i] for i in range(len(pairs))]
        b_meas = [bwd[i] / bwd[i + 1] for i in range(len(pairs))]
        f_pred = [n_in * var_w(n_in, n_out) for n_in, n_out in pairs]
        b_pred = [n_out * var_w(n_in, n_out) for n_in, n_out in pairs]
        result[label] = {
            "forward": fwd,
            "backward": bwd,
            "f_meas": f_meas,
            "b_meas": b_meas,
            "f_pred": f_pred,
            "b_pred": b_pred,
        }
        print(f"{label}")
        print(
            "  forward  var(z^(l))/var(z^(l−1)):      "
            + "  ".join(f"{m:.3f} ({p:.3f})" for m, p in zip(f_meas, f_pred, strict=True))
        )
        print(
            "  backward var(∂ℒ/∂z^(l−1))/var(∂ℒ/∂z^(l)): "
            + "  ".join(f"{m:.3f} ({p:.3f})" for m, p in zip(b_meas, b_pred, strict=True))
        )
    if args.out or args.show:
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 3.8))
        layers = range(len(widths))
        for i, (label, r) in enumerate(result.items()):
            ax1.semilogy(
                layers,
                [v / r["forward"][0] for v in r["forward"]],
                "-o",
                markersize=3,
                color=f"C{i}",
                label=label,
            )
            ax2.semilogy(
                layers,
                [v / r["backward"][-1] for v in r["backward"]],
                "-o",
                markersize=3,
                color=f"C{i}",
                label=label,
            )
        ax1.set_title("forward: var(z^(l)) / var(z^(0))", fontsize=9)
        ax2.set_title("backward: var(∂ℒ/∂z^(l)) / var(∂ℒ/∂z^(L)) (read right to left)", fontsize=9)
        for ax in (ax1, ax2):
            ax.set_xlabel("layer l (widths " + "→".join(map(str, widths)) + ")")
            ax.axhline(1, color="k", linewidth=0.6, linestyle=":")
        ax1.legend(fontsize=7)
        plt.tight_layout()
        result["fig"] = fig
    return result


def deep_linear(*overrides, seed: int = 0, runs: str | Path = "logs/demos/compose") -> nn.Module:
    """``+experiment=deep_linear``'s network (float64), built from its config as a run builds it."""
    from hydra.utils import instantiate

    from descentlab.api import compose

    torch.manual_seed(seed)
    cfg = compose(["+experiment=deep_linear", *overrides], Path(runs) / "compose")
    return instantiate(cfg.model).net.double()


DEEP_LINEAR_INITS = {
    "normal s=0.05": ["init=normal", "init.std=0.05"],
    "default (PyTorch)": ["init=default"],
    "xavier_normal": ["init=xavier_normal"],
    "orthogonal": ["init=orthogonal"],
    "kaiming_normal (√2 gain)": ["init=kaiming_normal"],
    "normal s=0.5": ["init=normal", "init.std=0.5"],
}


def cmd_deep_linear_grads(args) -> dict:
    """‖∂ℒ/∂W_l‖ of +experiment=deep_linear (12 linear layers of width 64) at initialization."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = torch.tensor(digits.images[: args.samples], dtype=torch.float64).unsqueeze(1) / 16
    y = torch.tensor(digits.target[: args.samples])
    result = {}
    print(f"{'init':26s} {'‖∂ℒ/∂W_1‖':>11s} {'‖∂ℒ/∂W_12‖':>11s} {'first/last':>10s}")
    for label, overrides in DEEP_LINEAR_INITS.items():
        net = deep_linear(*overrides, runs=args.runs)
        ws = [m.weight for m in net.modules() if isinstance(m, nn.Linear)]
        grads = torch.autograd.grad(nn.functional.cross_entropy(net(x), y), ws)
        norms = [g.norm().item() for g in grads]
        result[label] = norms
        print(f"{label:26s} {norms[0]:11.3g} {norms[-1]:11.3g} {norms[0] / norms[-1]:10.2f}")
    if args.out or args.show:
        fig, ax = plt.subplots(figsize=(7, 4))
        for label, norms in result.items():
            ax.semilogy(range(1, len(norms) + 1), norms, "-o", markersize=3, label=label)
        ax.set_xlabel("layer l")
        ax.set_ylabel("‖∂ℒ/∂W_l‖ at initialization")
        ax.set_title(
            f"12-layer linear network (width 64, no biases), {args.samples} digits", fontsize=9
        )
        ax.legend(fontsize=7)
        result["fig"] = fig
    return result


DEEP_LINEAR_TRAIN = {
    "xavier_normal": ["init=xavier_normal"],
    "orthogonal": ["init=orthogonal"],
    "default (PyTorch)": ["init=default"],
    "normal s=0.05": ["init=normal", "init.std=0.05"],
    "normal s=0.5": ["init=normal", "init.std=0.5"],
}


def diag_columns(run_dir: Path) -> tuple[list[int], list[float], list[float]]:
    """diag/grad_norm of W_1 (layer_0) and W_12 (layer_11) from a run's metrics.csv."""
    import csv

    steps, first, last = [], [], []
    with open(Path(run_dir) / "csv" / "metrics.csv") as f:
        for row in csv.DictReader(f):
            if row.get("diag/grad_norm/layer_0"):
                steps.append(int(row["step"]))
                first.append(float(row["diag/grad_norm/layer_0"]))
                last.append(float(row["diag/grad_norm/layer_11"]))
    return steps, first, last


def cmd_deep_linear_train(args) -> dict:
    """python train.py +experiment=deep_linear init=... for five inits: loss and gradient norms."""
    from descentlab.report import read_curves

    result = {}
    print(f"{'init':20s} {'W_1 grad':>9s} {'W_12 grad':>9s} (step 0)   result")
    for i, (label, overrides) in enumerate(DEEP_LINEAR_TRAIN.items()):
        run_dir = Path(args.runs) / f"deep_linear_{i}"
        entry = {"run_dir": run_dir}
        try:
            metrics, _ = train_quietly(
                ["+experiment=deep_linear", *overrides, f"trainer.max_epochs={args.epochs}"],
                run_dir,
            )
            entry.update(metrics=metrics, curve=read_curves(run_dir)["train/loss"])
            text = f"test acc {metrics['test/acc']:.3f}, train loss {metrics['train/loss']:.4f}"
        except Exception as err:  # the divergence guard stops the run with one line
            entry["error"] = f"{type(err).__name__}: {str(err).split(';')[0]}"
            text = entry["error"]
        entry["diag"] = diag_columns(run_dir)
        result[label] = entry
        steps, first, last = entry["diag"]
        print(f"{label:20s} {first[0]:9.2g} {last[0]:9.2g}            {text}")
    if args.out or args.show:
        fig, axes = plt.subplots(1, 2, figsize=(12, 3.8))
        for i, (label, entry) in enumerate(result.items()):
            if "curve" in entry:
                axes[0].plot(*zip(*entry["curve"], strict=True), color=f"C{i}", label=label)
            steps, first, last = entry["diag"]
            marker = "o" if len(steps) == 1 else None  # a run stopped at its first step: one point
            axes[1].semilogy(steps, first, "-", marker=marker, color=f"C{i}", label=f"{label}: W_1")
            axes[1].semilogy(steps, last, "--", marker=marker, color=f"C{i}")
        axes[0].axhline(math.log(10), color="k", linestyle=":", linewidth=0.8)
        axes[0].set_xlabel("epoch")
        axes[0].set_ylabel("train/loss")
        axes[0].set_title(
            "+experiment=deep_linear, SGD η = 0.02 (dotted: ln 10, chance)", fontsize=9
        )
        axes[0].legend(fontsize=8)
        axes[1].set_xlabel("step")
        axes[1].set_title("diag/grad_norm: W_1 (solid), W_12 (dashed)", fontsize=9)
        axes[1].legend(fontsize=7)
        plt.tight_layout()
        result["fig"] = fig
    return result


def layer_grad_norms(activation: str, depth: int, width: int, n_samples: int = 512, seed: int = 0):
    """‖∂ℒ/∂W_l‖ of every layer of an MLP (Xavier init) on Gaussian inputs, random labels."""
    from descentlab.init import Initializer
    from descentlab.models.mlp import MLP

    torch.manual_seed(seed)
    net = Initializer("xavier_normal")(
        MLP((width,), 10, hidden_dims=[width] * depth, activation=activation)
    )
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n_samples, width, generator=gen)
    y = torch.randint(0, 10, (n_samples,), generator=gen)
    ws = [m.weight for m in net.modules() if isinstance(m, nn.Linear)]
    grads = torch.autograd.grad(nn.functional.cross_entropy(net(x), y), ws)
    return [g.norm().item() for g in grads]


def cmd_sigmoid_deep(args) -> dict:
    """Gradient norm per layer of a deep sigmoid net next to the same net without activations."""
    result = {}
    print(f"{args.depth} hidden layers of width {args.width}, xavier_normal, at initialization")
    for activation in ("identity", "sigmoid"):
        norms = layer_grad_norms(activation, args.depth, args.width)
        per_layer = (norms[-2] / norms[0]) ** (1 / (len(norms) - 2))
        result[activation] = {"norms": norms, "ratio": norms[0] / norms[-1], "per_layer": per_layer}
        print(
            f"{activation:9s} ‖∂ℒ/∂W_1‖ = {norms[0]:.3g}, ‖∂ℒ/∂W_{len(norms)}‖ = {norms[-1]:.3g}, "
            f"first/last = {norms[0] / norms[-1]:.3g}, factor per hidden layer = {per_layer:.3g}"
        )
    if args.out or args.show:
        fig, ax = plt.subplots(figsize=(7, 4))
        for activation, r in result.items():
            ax.semilogy(
                range(1, len(r["norms"]) + 1),
                r["norms"],
                "-o",
                markersize=4,
                label=f"{activation}: first/last = {r['ratio']:.2g}",
            )
        ax.set_xlabel("layer l (the last one outputs the 10 logits)")
        ax.set_ylabel("‖∂ℒ/∂W_l‖ at initialization")
        ax.set_title(f"{args.depth} hidden layers of width {args.width}, xavier_normal", fontsize=9)
        ax.legend(fontsize=8)
        result["fig"] = fig
    return result


# ======================================================================== the commands


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python notebooks/demos.py",
        description="Reproduce a figure of notebooks 01-03 (each figure's cell names its command).",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name, func, help_):
        s = sub.add_parser(name, help=help_, description=func.__doc__)
        s.set_defaults(func=func)
        s.add_argument("--out", help="write the figure to this file (PNG)")
        s.add_argument("--show", action="store_true", help=argparse.SUPPRESS)  # notebooks
        return s

    for name, func, help_ in (
        (
            "worked-example",
            cmd_worked_example,
            "01: the worked example's values and gradients (scalar engine)",
        ),
        (
            "engine-graph",
            cmd_engine_graph,
            "01: every node the engine records for the worked example",
        ),
    ):
        s = add(name, func, help_)
        s.add_argument("--w", type=float, default=0.5)
        s.add_argument("--b", type=float, default=-0.3)
        s.add_argument("--x", type=float, default=1.7)
        s.add_argument("--y", type=float, default=1.0)
        s.add_argument("--lam", type=float, default=0.1, help="λ")
    s = add("jacobian", cmd_jacobian, "01: a whole layer's backward, Jᵀ ∂ℒ/∂v")
    s.add_argument("--n-in", type=int, default=8)
    s.add_argument("--n-out", type=int, default=6)
    s.add_argument("--seed", type=int, default=1)
    s = add("softmax-pitfall", cmd_softmax_pitfall, "01: a Softmax before CrossEntropyLoss")
    s.add_argument("--epochs", type=int, default=30)
    s.add_argument("--lr", type=float, default=0.5, help="η")
    s.add_argument("--batch-size", type=int, default=32)

    s = add("surface", cmd_surface, "02: optimizer trajectories on a 2-D surface")
    s.add_argument("--surface", choices=sorted(SURFACES), default="ravine")
    s.add_argument(
        "--optimizer",
        nargs="+",
        action="extend",
        help="NAME or NAME:lr=..,mu=..,beta=.. (NAME: " + ", ".join(OPTIMIZER_NAMES) + ")",
    )
    s.add_argument("--steps", type=int, default=40)
    s = add("sweep", cmd_sweep, "02: SGD vs momentum over a grid of η")
    s.add_argument("--surface", choices=sorted(SURFACES), default="ravine")
    s.add_argument(
        "--mu", type=float, nargs="+", default=[0.5], help="momentum's μ (one curve each)"
    )
    s.add_argument("--lr-min", type=float, default=0.005)
    s.add_argument("--lr-max", type=float, default=0.3)
    s.add_argument("--points", type=int, default=60)
    s.add_argument("--steps", type=int, default=40)
    s = add("bias-correction", cmd_bias_correction, "02: v_t vs v̂_t under a constant gradient")
    s.add_argument("--mu", type=float, default=0.9)
    s.add_argument("--g", type=float, default=1.0)
    s.add_argument("--steps", type=int, default=40)
    s = add("adam-stall", cmd_adam_stall, "02: the notes' Adam stops learning")
    s.add_argument("--lr", type=float, default=1e-3)
    s.add_argument("--mu", type=float, default=0.9)
    s.add_argument("--beta", type=float, default=0.999)
    s.add_argument("--steps", type=int, default=60)
    s = add("minibatch", cmd_minibatch, "02: gradient variance and time per epoch vs |S|")
    s.add_argument(
        "--sizes", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024]
    )
    s.add_argument("--draws", type=int, default=2000)
    s.add_argument("--repeats", type=int, default=3)
    s = add("train-curves", cmd_train_curves, "02: the optimizers' training curves on digits")
    s.add_argument("--epochs", type=int, default=40)
    s.add_argument("--runs", default="logs/demos/train_curves", help="where the runs are written")

    s = add("init-variance", cmd_init_variance, "03: var(z^(l)) measured vs (n_in s²)^l")
    s.add_argument("--depth", type=int, default=20)
    s.add_argument("--width", type=int, default=256)
    s.add_argument(
        "--std", type=float, nargs="+", default=[1.0, 0.0625, 0.05], help="s, the weights' std"
    )
    s.add_argument("--samples", type=int, default=1024)
    s = add("init-schemes", cmd_init_schemes, "03: the named initializers through depth")
    s.add_argument("--depth", type=int, default=20)
    s.add_argument("--width", type=int, default=256)
    s = add(
        "xavier-backward", cmd_xavier_backward, "03: forward vs backward variance, n_in vs n_out"
    )
    s.add_argument("--widths", type=int, nargs="+", default=[32, 64, 128, 256, 512, 1024])
    s.add_argument("--samples", type=int, default=2048)
    s = add(
        "deep-linear-grads", cmd_deep_linear_grads, "03: the deep linear net's gradients by init"
    )
    s.add_argument("--samples", type=int, default=256)
    s.add_argument("--runs", default="logs/demos/deep_linear")
    s = add(
        "deep-linear-train", cmd_deep_linear_train, "03: +experiment=deep_linear trained by init"
    )
    s.add_argument("--epochs", type=int, default=30)
    s.add_argument("--runs", default="logs/demos/deep_linear")
    s = add("sigmoid-deep", cmd_sigmoid_deep, "03: vanishing gradients through sigmoids")
    s.add_argument("--depth", type=int, default=10)
    s.add_argument("--width", type=int, default=256)
    return p


def demo(command: str) -> dict:
    """Run ``python notebooks/demos.py COMMAND`` in this process (a notebook cell): print
    its numbers, draw its figure (shown by the cell's ``plt.show()``), return its numbers."""
    args = parser().parse_args([*shlex.split(command), "--show"])
    return args.func(args)


def main(argv: list[str] | None = None) -> int:
    plt.switch_backend("Agg")
    args = parser().parse_args(argv)
    result = args.func(args)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        result["fig"].savefig(args.out, dpi=80, bbox_inches="tight")
        print(f"figure written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
