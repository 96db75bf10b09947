"""Each synapse's postsynaptic potential, measured in NEURON: the physics prior of a surrogate's input.

A surrogate of a cell with hundreds of synapses has to learn what one event at each synapse does at the
soma and in the dendrites. Learned from bombardment data alone, those efficacies come out tens of percent
off (README, the detailed cell, item 9), and a real cell whose synapses are 5-15 % off already loses a
tenth to a fifth of its spikes (``benchmarks/l5pc_spike_reliability.py``). The cell itself can simply be
asked: :func:`measure_psp_kernels` adds one event of the default weight at each synapse, alone, to the
cell at rest (or to a background input), and records the change it makes at the soma and at the
dendritic recording sites, sampled as a dataset's traces (1 kHz).

:func:`fit_exponential_kernels` writes each kernel as a sum of decaying exponentials with fixed time
constants, ``k(lag) ~ sum_j c_j exp(-lag / tau_j)`` (lag in whole ms after the event's bin), the impulse
response of ``p_j(t) = exp(-1/tau_j) p_j(t-1) + c_j x(t)``: a streaming model computes every synapse's
linear prediction with one state per site and time constant (``gru_prior``).
"""

from __future__ import annotations

import numpy as np

from neurosurrogate.inputs import EventTable

SITES = ("soma", "dend0", "dend1")
# fits the hay-l5pc kernels at rest (200 ms) to 1.9 % RMS (integrals to 0.03 %); six time constants
# (1-120 ms) left 6.7 %: a distal synapse's PSP arrives ms late, which a sum of exponentials from lag 0
# only makes by cancellation
DEFAULT_TAUS_MS = (0.7, 1.5, 3.0, 6.0, 12.0, 25.0, 50.0, 100.0, 200.0)


def with_event(bg: EventTable | None, syn: int | None, t_ms: float, weight_nS: float) -> EventTable:
    """The background events (None: none) plus one event at synapse ``syn`` (None: no event), time-sorted."""
    t = np.zeros(0) if bg is None else np.asarray(bg.t_ms, float)
    s = np.zeros(0, np.int64) if bg is None else np.asarray(bg.synapse, np.int64)
    w = np.zeros(0) if bg is None else np.asarray(bg.weight_nS, float)
    if syn is not None:
        t, s, w = np.r_[t, t_ms], np.r_[s, syn], np.r_[w, weight_nS]
    o = np.argsort(t, kind="stable")
    return EventTable(t[o], s[o].astype(np.int64), w[o])


def measure_psp_kernels(cell, window_ms: int = 200, t0_ms: float = 100.0, workers: int = 2,
                        background: EventTable | None = None, synapses=None) -> dict:
    """Per synapse, the change one event of its default weight makes at each recording site.

    Args:
        cell: a ``hay-l5pc`` cell specification (:func:`neurosurrogate.biophys.cells.get_cell`).
        window_ms: length of the recorded response after the event's bin, ms (whole, >= 2).
        t0_ms: time of the event, ms (>= 1; a whole number puts it at the start of its bin).
        workers: NEURON processes.
        background: events the extra event is added to (cut at the window's end); None: the cell at rest.
        synapses: indices to measure (default: all).

    Returns:
        dict with ``kernels_mV`` (n, 3, window_ms) float32: site (soma, dend0, dend1) x lag, the change
        in mV from the event's bin on; ``synapses`` (n,), ``kind`` (n,) "exc"/"inh", ``dist_um`` (n,),
        ``weight_nS`` (n,), ``spike_changed`` (n,) bool (the event changed the number of soma spikes in
        the window: that kernel holds a spike), ``t0_ms``, ``window_ms``.

    Raises:
        ValueError: bad window, time, workers or synapse index; a cell without dendritic sites.
    """
    from neurosurrogate.biophys.generate import hay_traces, map_chunks
    from neurosurrogate.biophys.hay import is_hay, synapse_table

    if not is_hay(cell):
        raise ValueError(f"PSP kernels need the hay-l5pc cell (placed synapses, dendritic sites), not {cell.name!r}")
    if isinstance(window_ms, bool) or int(window_ms) != window_ms or window_ms < 2:
        raise ValueError(f"window_ms must be a whole number >= 2, got {window_ms!r}")
    if not (np.isfinite(t0_ms) and t0_ms >= 1):
        raise ValueError(f"t0_ms must be a time >= 1 ms, got {t0_ms!r}")
    if int(workers) < 1:
        raise ValueError(f"workers must be >= 1, got {workers!r}")
    table = synapse_table(cell)
    n_all = len(table)
    syns = np.arange(n_all) if synapses is None else np.asarray(synapses, dtype=int).reshape(-1)
    if syns.size == 0 or syns.min() < 0 or syns.max() >= n_all:
        raise ValueError(f"synapses must be indices in 0..{n_all - 1}")
    window_ms = int(window_ms)
    k0 = int(np.floor(t0_ms))
    T = k0 + window_ms + 1
    bg = None if background is None else background.window(0.0, float(T))
    w = np.array([float(table[i]["weight_nS"]) for i in syns])
    items = [with_event(bg, None, t0_ms, 0.0)] + [with_event(bg, int(i), t0_ms, wi) for i, wi in zip(syns, w)]
    traces = map_chunks(hay_traces, items, int(workers), cell.to_dict(), float(T))
    sl = slice(k0, k0 + window_ms)

    def sites(tr) -> np.ndarray:
        return np.vstack([np.asarray(tr.v_mV)[None, sl], np.asarray(tr.v_dend_mV)[:, sl]])

    def n_spikes(tr) -> int:
        st = np.asarray(tr.spike_times_ms)
        return int(np.sum((st >= k0) & (st < k0 + window_ms)))

    base = sites(traces[0])
    kern = np.stack([sites(tr) - base for tr in traces[1:]]).astype(np.float32)
    return {
        "kernels_mV": kern,
        "synapses": syns,
        "kind": np.array([table[i]["kind"] for i in syns]),
        "dist_um": np.array([float(table[i].get("dist_um", np.nan)) for i in syns]),
        "weight_nS": w,
        "spike_changed": np.array([n_spikes(tr) != n_spikes(traces[0]) for tr in traces[1:]]),
        "baseline_mV": base.astype(np.float32),
        "t0_ms": float(t0_ms),
        "window_ms": window_ms,
    }


def fit_exponential_kernels(kernels: np.ndarray, taus_ms=DEFAULT_TAUS_MS,
                            ridge: float = 1e-6) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares fit of kernels (..., L) at whole-ms lags 0..L-1 by ``sum_j c_j exp(-lag / tau_j)``.

    Returns ``(coefficients (..., J), fitted kernels (..., L))``. ``ridge`` (relative to the basis'
    largest eigenvalue) keeps nearly collinear time constants from cancelling with huge coefficients.

    Raises:
        ValueError: a time constant is not > 0, or kernels hold fewer than 2 lags or non-finite values.
    """
    k = np.asarray(kernels, dtype=np.float64)
    taus = np.asarray(taus_ms, dtype=np.float64).reshape(-1)
    if taus.size == 0 or not np.all(np.isfinite(taus) & (taus > 0)):
        raise ValueError(f"time constants must be > 0 ms, got {list(taus_ms)}")
    if k.ndim < 1 or k.shape[-1] < 2 or not np.all(np.isfinite(k)):
        raise ValueError("kernels must be finite with at least 2 lags on the last axis")
    lag = np.arange(k.shape[-1], dtype=np.float64)
    B = np.exp(-lag[:, None] / taus[None, :])  # (L, J)
    G = B.T @ B
    G += ridge * np.linalg.eigvalsh(G).max() * np.eye(len(taus))
    flat = k.reshape(-1, k.shape[-1])
    c = np.linalg.solve(G, B.T @ flat.T).T  # (M, J)
    return c.reshape(*k.shape[:-1], len(taus)), (c @ B.T).reshape(k.shape)
