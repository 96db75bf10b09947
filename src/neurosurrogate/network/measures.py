"""Readouts of a circuit run: the paper's two measures, rates, PSTH.

The paper's measures (Olah, Pedersen & Rowan 2022, Fig. 9), for a stimulus at
``stimulus_ms`` and a response window ``window_ms`` (10 ms):

* ``instability``: fraction of cells that fire at least once in the baseline
  ``[0, stimulus_ms)``, i.e. before the stimulus (a stable circuit is silent
  or nearly so under background input alone);
* ``immediate_response``: fraction of cells that fire at least once in
  ``[stimulus_ms, stimulus_ms + window_ms)``.

Both are fractions in [0, 1]. Rates are in Hz (spikes per cell per second).
"""

from __future__ import annotations

import numpy as np

from neurosurrogate.network.circuit import CircuitRun

__all__ = ["MEASURES", "cell_rates_Hz", "circuit_measures", "population_rate_Hz", "psth_Hz"]

#: names of the per-run measures, in table order
MEASURES = ("instability", "immediate_response", "baseline_rate_Hz", "response_rate_Hz", "mean_rate_Hz",
            "response_latency_ms")


def circuit_measures(run: CircuitRun, n_cells: int, stimulus_ms: float, window_ms: float = 10.0) -> dict[str, float]:
    """The paper's two measures and rates for one run (see module doc).

    ``response_latency_ms`` is the median over responding cells of the first
    spike time after the stimulus (NaN when no cell responds).
    """
    t, c = run.spike_t_ms, run.spike_cell
    base = t < stimulus_ms
    resp = (t >= stimulus_ms) & (t < stimulus_ms + window_ms)
    out = {
        "instability": np.unique(c[base]).size / n_cells,
        "immediate_response": np.unique(c[resp]).size / n_cells,
        "baseline_rate_Hz": base.sum() / n_cells / (stimulus_ms / 1000.0) if stimulus_ms > 0 else float("nan"),
        "response_rate_Hz": resp.sum() / n_cells / (window_ms / 1000.0),
        "mean_rate_Hz": t.size / n_cells / (run.duration_ms / 1000.0),
    }
    if resp.any():
        tr, cr = t[resp], c[resp]
        first = np.full(n_cells, np.inf)
        np.minimum.at(first, cr, tr)
        out["response_latency_ms"] = float(np.median(first[np.isfinite(first)]) - stimulus_ms)
    else:
        out["response_latency_ms"] = float("nan")
    return {k: float(v) for k, v in out.items()}


def population_rate_Hz(run: CircuitRun, cells: np.ndarray | int, bin_ms: float = 5.0) -> tuple[np.ndarray, np.ndarray]:
    """Population rate (Hz per cell) in bins of ``bin_ms``: (bin starts ms, rate)."""
    cells = np.arange(cells) if np.isscalar(cells) else np.asarray(cells)
    m = np.isin(run.spike_cell, cells)
    edges = np.arange(0.0, run.duration_ms + bin_ms - 1e-9, bin_ms)
    counts, _ = np.histogram(run.spike_t_ms[m], edges)
    return edges[:-1], counts / max(cells.size, 1) / (bin_ms / 1000.0)


def psth_Hz(run: CircuitRun, n_cells: int, stimulus_ms: float, before_ms: float = 20.0, after_ms: float = 50.0,
            bin_ms: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Peri-stimulus time histogram: (bin starts relative to the stimulus, ms; rate, Hz per cell)."""
    edges = np.arange(-before_ms, after_ms + bin_ms - 1e-9, bin_ms)
    counts, _ = np.histogram(run.spike_t_ms - stimulus_ms, edges)
    return edges[:-1], counts / n_cells / (bin_ms / 1000.0)


def cell_rates_Hz(run: CircuitRun, n_cells: int, start_ms: float = 0.0, stop_ms: float | None = None) -> np.ndarray:
    """(n_cells,) firing rate of each cell in ``[start_ms, stop_ms)``, Hz."""
    stop = run.duration_ms if stop_ms is None else stop_ms
    m = (run.spike_t_ms >= start_ms) & (run.spike_t_ms < stop)
    return np.bincount(run.spike_cell[m], minlength=n_cells) / ((stop - start_ms) / 1000.0)
