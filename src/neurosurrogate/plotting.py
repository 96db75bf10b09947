"""All plots (the only module that imports matplotlib; imported lazily by the CLI)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_traces(
    path: str | Path,
    traces: Sequence,
    events: Sequence | None = None,
    kinds: Sequence[str] | None = None,
    title: str = "",
    labels: Sequence[str] | None = None,
    max_ms: float | None = None,
) -> Path:
    """Voltage (and, if given, input raster) of several trials stacked vertically; PNG."""
    plt = _plt()
    n = len(traces)
    fig, axes = plt.subplots(n, 1, figsize=(11, 1.9 * n + 0.6), sharex=True, squeeze=False)
    for k, tr in enumerate(traces):
        ax = axes[k, 0]
        t = tr.t_ms
        m = slice(None) if max_ms is None else t < max_ms
        ax.plot(t[m], tr.v_mV[m], lw=0.7, color="k")
        if events is not None and kinds is not None:
            ev = events[k]
            sel = ev.t_ms < (max_ms if max_ms is not None else np.inf)
            for kind, color, y in (("exc", "tab:red", -95.0), ("inh", "tab:blue", -100.0)):
                idx = np.asarray([i for i, kk in enumerate(kinds) if kk == kind])
                if idx.size:
                    mm = sel & np.isin(ev.synapse, idx)
                    ax.plot(ev.t_ms[mm], np.full(mm.sum(), y), "|", color=color, ms=4, alpha=0.5)
        ax.set_ylabel("V (mV)")
        lab = labels[k] if labels else f"trial {k}: {len(tr.spike_times_ms)} spikes"
        ax.set_title(lab, fontsize=8, loc="left")
    axes[-1, 0].set_xlabel("time (ms)")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
