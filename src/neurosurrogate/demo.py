"""The main job on the embedded default (``neurosurrogate demo``)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np


def run_demo(out_dir: Path, quick: bool = False) -> int:
    """Simulate a short ground-truth dataset of the point neuron and plot it."""
    from neurosurrogate.biophys.cells import get_cell
    from neurosurrogate.biophys.generate import generate_dataset
    from neurosurrogate.data.dataset import load_dataset
    from neurosurrogate.data.trace import Trace
    from neurosurrogate.plotting import plot_traces

    cell = get_cell("point-hh")
    out_dir.mkdir(parents=True, exist_ok=True)
    n, dur = (4, 500.0) if quick else (16, 2000.0)
    path = out_dir / f"groundtruth_{n}x{int(dur)}ms.h5"
    t = time.perf_counter()
    generate_dataset(path, cell, n, dur, seed=0, protocol="paper")
    el = time.perf_counter() - t
    d = load_dataset(path)
    rates = [len(s) / (dur / 1000) for s in d.spike_times_ms]
    print(f"NEURON ground truth: {n} trials x {dur:g} ms of {cell.name} in {el:.1f} s "
          f"({n * dur / 1000 / el:.1f} simulated s per wall s); firing rates {np.round(rates, 1).tolist()} Hz")
    k = min(4, n)
    trs = [Trace(np.arange(d.v_mV.shape[1], dtype=float), d.v_mV[i], d.spike_times_ms[i]) for i in range(k)]
    png = plot_traces(out_dir / "groundtruth.png", trs, d.events[:k], [s["kind"] for s in d.synapses],
                      title="point-hh: NEURON ground truth, paper protocol")
    print(f"wrote {path} and {png}")
    return 0
