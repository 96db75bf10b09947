"""The main job on the embedded default (``neurosurrogate demo``).

Simulates the same random inputs (the paper's protocol) with NEURON and with
the shipped point-hh surrogate, prints the fidelity table and the speed of
both, and writes the ground-truth dataset and PNG figures.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np


def run_demo(out_dir: Path, quick: bool = False, model_name: str = "point-hh") -> int:
    from neurosurrogate.biophys.cells import get_cell
    from neurosurrogate.biophys.generate import generate_dataset
    from neurosurrogate.data.dataset import load_dataset
    from neurosurrogate.evaluate.report import metrics_table
    from neurosurrogate.evaluate.rollout import evaluate_dataset
    from neurosurrogate.plotting import plot_overlay, plot_traces
    from neurosurrogate.surrogate.model import SurrogateModel

    cell = get_cell("point-hh")
    out_dir.mkdir(parents=True, exist_ok=True)
    n, dur = (4, 500.0) if quick else (32, 2000.0)
    path = out_dir / f"groundtruth_{n}x{int(dur)}ms.h5"
    if path.exists():
        path.unlink()  # time a fresh NEURON run every time
    t = time.perf_counter()
    generate_dataset(path, cell, n, dur, seed=20261122, protocol="paper", progress=False)
    t_neuron = time.perf_counter() - t
    d = load_dataset(path)
    print(f"NEURON: {n} trials x {dur:g} ms of {cell.name} (paper protocol) in {t_neuron:.2f} s wall "
          f"on all cores, process start-up included; written to {path}")

    model = SurrogateModel.load(model_name)
    model.predict(d.events[:1], 10.0, device="cpu")  # warm-up
    ev = evaluate_dataset(model, d, "paper protocol, unseen inputs", device="cpu")
    truth, preds, m, t_sur = ev.truth, ev.pred, ev.metrics, ev.wall_s_surrogate
    print(f"surrogate {model_name} ({model.net.arch_name} {model.net.config}): same {n} trials in {t_sur:.3f} s "
          f"wall, free-running from rest")
    print()
    print(metrics_table({ev.name: m}))
    print()
    sim_s = n * dur / 1000
    print(f"speed: NEURON {sim_s / t_neuron:.1f} simulated s per wall s, surrogate {sim_s / t_sur:.1f} "
          f"({t_neuron / t_sur:.1f}x); benchmarks/point_speed.py measures cells x speed properly")
    k = min(4, n)
    order = np.argsort([-len(tr.spike_times_ms) for tr in truth])
    pick = [int(i) for i in order[[len(order) // 4, len(order) // 2]]] if n > 1 else [0]
    png = plot_overlay(out_dir / "neuron_vs_surrogate.png", [truth[i] for i in pick], [preds[i] for i in pick],
                       title="point-hh: NEURON (black) vs surrogate (red), unseen inputs", max_ms=1000)
    gt = plot_traces(out_dir / "groundtruth.png", truth[:k], d.events[:k], [s["kind"] for s in d.synapses],
                     title="point-hh: NEURON ground truth, paper protocol")
    print(f"wrote {png} and {gt}")
    return 0
