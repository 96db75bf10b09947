"""Free-running evaluation of a surrogate against NEURON ground truth.

The surrogate starts from its own resting state and runs on the held-out
event tables of a dataset; predictions are compared with the NEURON traces
of the same trials (:mod:`neurosurrogate.evaluate.metrics`). Standard
held-out regimes (:data:`REGIMES`; :data:`HAY_REGIMES` for ``hay-l5pc``)
span quiet to strong drive, fixed and variable weights, and 2:1 and 1:2
excitation:inhibition, besides the paper's protocol and the mixed protocol.

Multi-compartment models (extra outputs ``v_dend{k}_mV`` / ``ica``) are also
scored on those signals, and on the soma voltage away from spikes
(:func:`~neurosurrogate.evaluate.metrics.multicompartment_fidelity`). With
``skip_ms`` the first milliseconds of every trial are left out of the scores
(the surrogate still runs from t = 0).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from neurosurrogate.biophys.hay import is_hay
from neurosurrogate.data.dataset import Dataset
from neurosurrogate.data.trace import Trace
from neurosurrogate.evaluate.metrics import (
    crop_trial,
    explained_variance_over_time,
    multicompartment_fidelity,
    pooled_fidelity,
    spike_confidence_table,
)

# name -> (protocol, options); rates are totals per kind, Hz
REGIMES: dict[str, tuple[str, dict]] = {
    "paper": ("paper", {}),
    "mixed": ("mixed", {}),
    "quiet": ("poisson", {"exc_rate_Hz": 120.0, "inh_rate_Hz": 45.0}),
    "strong": ("poisson", {"exc_rate_Hz": 1500.0, "inh_rate_Hz": 560.0}),
    "variable-weights": ("poisson", {"exc_rate_Hz": 500.0, "inh_rate_Hz": 190.0, "weight_cv": 0.6}),
    "EI-2:1": ("poisson", {"exc_rate_Hz": 600.0, "inh_rate_Hz": 300.0}),
    "EI-1:2": ("poisson", {"exc_rate_Hz": 700.0, "inh_rate_Hz": 1400.0}),
}

# hay-l5pc: the point cell's rates leave this cell silent (``quiet``, ``paper``) or near it; these span
# silence to ~25 Hz of output (measured with NEURON, 2 trials each: 700 Hz -> 4 Hz, 1,500 -> 12 Hz,
# 3,000 -> 17 Hz; inhibition on the 200-site table moves the rate little: 3,000 Hz at 1:2 -> 16 Hz).
# Stationary Poisson input at fixed rates (the training data vary the rate within and across trials),
# continuous times; ``volleys`` adds synchronous volleys on random excitatory sites. The order sets the seeds
# (9000 + position): ``mixed`` and ``strong`` sit where they are in REGIMES, so their trials are the point
# cell's set's trials (rows scored before this set existed stay reproducible).
HAY_REGIMES: dict[str, tuple[str, dict]] = {
    "volleys": ("mixed", {"exc_rate_range_Hz": (500.0, 1500.0), "p_quiet": 0.0, "p_volleys": 1.0}),
    "mixed": ("mixed", {}),
    "quiet": ("poisson", {"exc_rate_Hz": 550.0, "inh_rate_Hz": 205.0}),
    "strong": ("poisson", {"exc_rate_Hz": 1500.0, "inh_rate_Hz": 560.0}),
    "variable-weights": ("poisson", {"exc_rate_Hz": 1000.0, "inh_rate_Hz": 375.0, "weight_cv": 0.6}),
    "EI-2:1": ("poisson", {"exc_rate_Hz": 1400.0, "inh_rate_Hz": 700.0}),
    "EI-1:2": ("poisson", {"exc_rate_Hz": 1200.0, "inh_rate_Hz": 2400.0}),
    "moderate": ("poisson", {"exc_rate_Hz": 900.0, "inh_rate_Hz": 340.0}),
    "very-strong": ("poisson", {"exc_rate_Hz": 5000.0, "inh_rate_Hz": 1875.0}),
}


def regimes_for(cell) -> tuple[str, dict[str, tuple[str, dict]]]:
    """(file-name prefix, regimes) of the held-out regime set for ``cell``: :data:`HAY_REGIMES` for
    ``hay-l5pc``, :data:`REGIMES` otherwise."""
    if is_hay(cell):
        return "hay-l5pc_", HAY_REGIMES
    return "", REGIMES


@dataclass
class Evaluation:
    """Predictions and pooled metrics on one dataset."""

    name: str
    metrics: dict[str, float]
    truth: list[Trace]
    pred: list[Trace]
    wall_s_surrogate: float
    extra: dict = field(default_factory=dict)


def dataset_traces(d: Dataset) -> list[Trace]:
    """The trials of ``d`` as traces (``HayTrace`` with ``v_dend_mV`` and ``ica`` where the data hold them)."""
    T = d.v_mV.shape[1]
    t = np.arange(T, dtype=float)
    if d.v_dend_mV is None and d.ica is None:
        return [Trace(t, d.v_mV[i].astype(float), d.spike_times_ms[i], d.ina[i], d.ik[i]) for i in range(d.n_trials)]
    from neurosurrogate.biophys.hay import HayTrace

    return [HayTrace(t, d.v_mV[i].astype(float), d.spike_times_ms[i], d.ina[i], d.ik[i],
                     meta={"sites": d.sites, "ica_site": d.ica_site},
                     v_dend_mV=None if d.v_dend_mV is None else d.v_dend_mV[i].astype(float),
                     ica=None if d.ica is None else d.ica[i].astype(float)) for i in range(d.n_trials)]


def _site_signals(traces: list[Trace], names: list[str]) -> dict[str, list[np.ndarray]]:
    """``{name: [per-trial array]}`` of extra signals ``v_dend{k}_mV`` / ``ica`` / ``ina`` / ``ik``."""
    from neurosurrogate.surrogate.model import dend_row

    out = {}
    for name in names:
        k = dend_row(name)
        out[name] = [tr.v_dend_mV[k] if k is not None else getattr(tr, name) for tr in traces]
    return out


def evaluate_dataset(model, d: Dataset, name: str = "", device: str | None = None,
                     skip_ms: float = 0.0) -> Evaluation:
    """Free-running prediction of every trial of ``d`` and pooled fidelity metrics.

    Args:
        model: a :class:`~neurosurrogate.surrogate.model.SurrogateModel`.
        d: held-out dataset of the model's cell.
        name: row name in reports (default: the file path).
        device: torch device.
        skip_ms: leave the first ``skip_ms`` (whole ms) of every trial out of the scores.

    Returns:
        :class:`Evaluation`. Metrics: those of :func:`pooled_fidelity`; for a model with
        ``v_dend{k}_mV`` or ``ica`` outputs (and data holding them) also those of
        :func:`multicompartment_fidelity` (``pearson_r_away5ms``, ``v_dend{k}_mV_pearson_r``,
        ...); ``ina``/``ik_variance_explained`` for models predicting soma currents. Outputs
        the data did not record are listed in ``extra['not_scored']``.
    """
    from neurosurrogate.surrogate.model import dend_row

    T = float(d.v_mV.shape[1])
    t0 = time.perf_counter()
    preds = model.predict(d.events, T, device=device)
    wall = time.perf_counter() - t0
    truth = dataset_traces(d)
    names = list(model.encoding.extra_names)
    sites = [n for n in names if dend_row(n) is not None or n == "ica"]
    # outputs the data did not record (the reference bombardment has no ica) are not scored
    lacking = [n for n in sites if (d.ica is None if n == "ica" else d.v_dend_mV is None)]
    sites = [n for n in sites if n not in lacking]
    scored = {"ina", "ik"} & set(names) | set(sites)
    ts, ps = _site_signals(truth, sorted(scored)), _site_signals(preds, sorted(scored))
    vt, vp = [tr.v_mV for tr in truth], [p.v_mV for p in preds]
    st, sp = [tr.spike_times_ms for tr in truth], [p.spike_times_ms for p in preds]
    if skip_ms:
        for i in range(len(truth)):
            vt[i], st[i] = crop_trial(vt[i], st[i], skip_ms)
            vp[i], sp[i] = crop_trial(vp[i], sp[i], skip_ms)
            for sig in (ts, ps):
                for key in sig:
                    sig[key][i], _ = crop_trial(sig[key][i], [], skip_ms)
    durations = [T - skip_ms] * len(truth)
    if sites:
        m = multicompartment_fidelity(vt, vp, st, sp, durations, {k: ts[k] for k in sites}, {k: ps[k] for k in sites})
    else:
        m = pooled_fidelity(vt, vp, st, sp, durations)
    for key in ("ina", "ik"):
        if key in scored:
            a, b = np.concatenate(ts[key]), np.concatenate(ps[key])
            ve = float(1 - np.mean((a - b) ** 2) / np.var(a)) if np.var(a) > 0 else float("nan")
            m[f"{key}_variance_explained"] = ve
    extra = {"skip_ms": float(skip_ms)} if skip_ms else {}
    if lacking:
        extra["not_scored"] = lacking
    # each scored spike's confidence, as predict gave it (cropping keeps the spikes at t >= skip_ms)
    conf = [p.meta["spike_confidence"][p.spike_times_ms >= skip_ms] for p in preds]
    extra["spike_confidence"] = spike_confidence_table(st, sp, conf)
    return Evaluation(name or str(d.path), m, truth, preds, wall, extra)


def long_run(model, cell, duration_ms: float = 25_000.0, seed: int = 2025, segment_ms: float = 1000.0,
             protocol: str = "paper", options: dict | None = None) -> dict:
    """Stability over a long input: explained variance per segment (the paper's Fig. 1J).

    One long event table drawn from ``protocol`` (activity scale fixed at 0.5
    for 'paper' so the whole run is active) is simulated with NEURON and the
    surrogate; returns times, explained variance per segment, and both traces.
    """
    from neurosurrogate.biophys.simulate import simulate_events
    from neurosurrogate.inputs import protocol_events

    opts = dict(options or {})
    if protocol == "paper":
        opts.setdefault("activity_scale", 0.5)
        opts.setdefault("p_quiet", 0.0)
    syn = cell.synapses
    ev = protocol_events(protocol, [s.kind for s in syn], [s.weight_nS for s in syn], duration_ms,
                         np.random.default_rng(seed), **opts)
    t = time.perf_counter()
    truth = simulate_events(cell, ev, duration_ms)
    t_neuron = time.perf_counter() - t
    t = time.perf_counter()
    pred = model.predict(ev, duration_ms, device="cpu")
    t_sur = time.perf_counter() - t
    t_mid, ev_seg = explained_variance_over_time(truth.v_mV, pred.v_mV, segment_ms=segment_ms)
    return {"t_mid_ms": t_mid, "ev": ev_seg, "truth": truth, "pred": pred, "wall_s_neuron": t_neuron,
            "wall_s_surrogate": t_sur, "duration_ms": duration_ms}


def generate_regimes(out_dir: Path, cell, n_trials: int = 40, duration_ms: float = 2000.0, seed: int = 9000,
                     names: list[str] | None = None, progress: bool = False) -> dict[str, Path]:
    """Simulate (or reuse) one held-out dataset per regime of the cell's set (:func:`regimes_for`),
    all of them or ``names``; seeds (``seed`` + the regime's position in the set) differ from any
    training seed."""
    from neurosurrogate.biophys.generate import generate_dataset

    prefix, regimes = regimes_for(cell)
    for name in names or []:
        if name not in regimes:
            raise ValueError(f"unknown regime {name!r} for {getattr(cell, 'name', 'this cell')}; "
                             f"expected one of {list(regimes)}")
    out = {}
    for k, name in enumerate(regimes):
        if names and name not in names:
            continue
        proto, opts = regimes[name]
        path = Path(out_dir) / f"heldout_{prefix}{name.replace(':', '_')}.h5"
        out[name] = generate_dataset(path, cell, n_trials, duration_ms, seed + k, protocol=proto,
                                     protocol_options=opts, progress=progress)
    return out
