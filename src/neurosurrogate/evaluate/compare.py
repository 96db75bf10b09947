"""Architecture comparison (the paper's Fig. 1): same data, same budget, every architecture.

For each architecture: parameters; FLOPs per cell-step (streaming, from layer
shapes); one-step error (RMS voltage error in mV with the true past voltage
fed to feedback models, i.e. teacher forcing; for models without feedback
this equals the free-running error); free-running metrics on passive
(spike-free) and active held-out trials; wall time per simulated second of
streaming steps for 1 and 1000 cells on this CPU (``step`` called once per
ms, as a network simulation does).
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import torch

from neurosurrogate.data.dataset import load_dataset
from neurosurrogate.data.io import atomic_path, write_json
from neurosurrogate.evaluate.rollout import evaluate_dataset


@torch.no_grad()
def step_wall_time(net, n_cells: int, n_steps: int = 200) -> float:
    """Seconds of wall time per simulated second (1000 steps) for ``n_cells`` cells, streaming."""
    net = net.cpu().eval()
    state = net.init_state(n_cells)
    x = torch.zeros(n_cells, net.n_in)
    for _ in range(5):
        _, state = net.step(x, state)
    t = time.perf_counter()
    for _ in range(n_steps):
        _, state = net.step(x, state)
    return (time.perf_counter() - t) / n_steps * 1000.0


@torch.no_grad()
def one_step_rmse_mV(model, d) -> float:
    from neurosurrogate.train.loop import to_tensors

    tens = to_tensors([d], model.encoding)
    y, _ = model.net(tens.x, v_teacher=tens.z[..., 0] if model.net.feedback else None)
    return float(torch.sqrt(torch.mean((y[..., 0] - tens.z[..., 0]) ** 2)) * model.encoding.v_scale_mV)


def parse_arch_spec(spec: str) -> tuple[str, dict]:
    """'gru:hidden=32:layers=1' -> ('gru', {'hidden': 32, 'layers': 1}); sizes are integers."""
    name, *kv = spec.split(":")
    params = {}
    for item in kv:
        k, sep, v = item.partition("=")
        if not sep:
            raise ValueError(f"architecture spec {spec!r}: expected NAME:KEY=VALUE:...")
        try:
            params[k] = int(v)
        except ValueError:
            params[k] = float(v)
    return name, params


def compare_architectures(config_path, test_data, out_dir, archs=None, passive_data=None, max_minutes=None,
                          max_steps=None, progress=True) -> list[dict]:
    from neurosurrogate.surrogate.base import REGISTRY
    from neurosurrogate.surrogate import architectures  # noqa: F401
    from neurosurrogate.train.config import TrainConfig
    from neurosurrogate.train.loop import train

    base = TrainConfig.from_toml(config_path, max_minutes=max_minutes, max_steps=max_steps)
    names = archs or sorted(REGISTRY)
    specs = [parse_arch_spec(a) for a in names]
    unknown = [a for a, _ in specs if a not in REGISTRY]
    if unknown:
        raise ValueError(f"unknown architecture(s) {unknown}; registered: {sorted(REGISTRY)}")
    out = Path(out_dir)
    test = load_dataset(test_data)
    # "passive": subthreshold responses = the trials of --passive-data (default: of the test data)
    # that have input but no spike
    src = load_dataset(passive_data) if passive_data else test
    quiet = [i for i, s in enumerate(src.spike_times_ms) if len(s) == 0 and len(src.events[i]) > 0]
    passive = src.subset(quiet) if quiet else None
    rows = []
    for name, (arch, params) in zip(names, specs):
        cfg = dataclasses.replace(base, arch=arch, arch_params=params, out_dir=str(out / name.replace(":", "_")))
        t = time.perf_counter()
        model = train(cfg, progress=progress, log=lambda *a: None)
        train_s = time.perf_counter() - t
        act = evaluate_dataset(model, test, "active").metrics
        pas = evaluate_dataset(model, passive, "passive").metrics if passive is not None and passive.n_trials else {}
        row = {
            "arch": name,
            "parameters": int(sum(p.numel() for p in model.net.parameters())),
            "flops_per_step": int(model.net.flops_per_step()),
            "train_steps": model.card["training"]["steps"],
            "train_wall_s": train_s,
            "one_step_rmse_mV": one_step_rmse_mV(model, test),
            "variance_explained_passive": pas.get("variance_explained", float("nan")),
            "pearson_r_passive": pas.get("pearson_r", float("nan")),
            "variance_explained_active": act["variance_explained"],
            "pearson_r_active": act["pearson_r"],
            "precision_10ms": act["precision_10ms"], "recall_10ms": act["recall_10ms"],
            "precision_2ms": act["precision_2ms"], "recall_2ms": act["recall_2ms"],
            "median_abs_shift_ms": act["median_abs_shift_ms"],
            "wall_s_per_sim_s_1cell": step_wall_time(model.net, 1),
            "wall_s_per_sim_s_1000cells": step_wall_time(model.net, 1000, n_steps=50),
        }
        rows.append(row)
        print(json.dumps(row, default=float))
    write_table(out, rows)
    return rows


COLUMNS = [
    ("arch", "architecture", "{}"), ("parameters", "params", "{:d}"), ("flops_per_step", "FLOPs/step", "{:,}"),
    ("one_step_rmse_mV", "1-step RMSE mV", "{:.2f}"), ("variance_explained_passive", "VE passive", "{:.3f}"),
    ("variance_explained_active", "VE active", "{:.3f}"), ("pearson_r_active", "r active", "{:.3f}"),
    ("precision_10ms", "P±10", "{:.3f}"), ("recall_10ms", "R±10", "{:.3f}"), ("precision_2ms", "P±2", "{:.3f}"),
    ("recall_2ms", "R±2", "{:.3f}"), ("median_abs_shift_ms", "median abs shift ms", "{:.2f}"),
    ("wall_s_per_sim_s_1cell", "s/sim-s 1 cell", "{:.3f}"), ("wall_s_per_sim_s_1000cells", "s/sim-s 1000 cells", "{:.3f}"),
    ("train_steps", "train steps", "{}"),
]


def write_table(out: Path, rows: list[dict]) -> Path:
    from neurosurrogate.plotting import plot_compare

    out.mkdir(parents=True, exist_ok=True)
    lines = ["| " + " | ".join(c[1] for c in COLUMNS) + " |", "|---" * len(COLUMNS) + "|"]
    for r in rows:
        cells = []
        for key, _, fmt in COLUMNS:
            v = r.get(key)
            try:
                cells.append("n/a" if v is None or (isinstance(v, float) and np.isnan(v)) else fmt.format(v))
            except (ValueError, TypeError):
                cells.append(str(v))
        lines.append("| " + " | ".join(cells) + " |")
    note = ("\nThe windowed CNN-LSTM re-reads its whole 64 ms window at every step: its FLOPs per step are those "
            "of the whole window, not of one new sample, unlike the streaming CNN-LSTM which keeps its state.\n")
    with atomic_path(out / "compare.md") as tmp:
        tmp.write_text("\n".join(lines) + "\n" + note)
    write_json(out / "compare.json", rows)
    plot_compare(out / "compare.png", rows)
    print("\n".join(lines))
    return out / "compare.md"
