"""How reliable are the detailed cell's own spikes? The real hay-l5pc cell (our NEURON model) on the
reference bombardment, with small perturbations of its input, scored against the reference recordings
exactly as the surrogate is scored (``evaluate --skip-ms 300``).

A surrogate is never exact: its subthreshold soma voltage differs from NEURON's by a fraction of a mV to
a few mV. This experiment asks what spike fidelity follows from a given subthreshold accuracy in the
cell itself: it perturbs the input of NEURON slightly and measures both the subthreshold r and the spike
precision/recall of the perturbed cell against the unperturbed reference, giving a curve of spike F1 vs
subthreshold r that no surrogate with that voltage error can be expected to beat by much. Conditions:

* ``none``: our NEURON cell on the reference events (the validation of deliverable 2);
* ``steady_start``: the same events, but the cell starts from its steady state without input (as every
  training trial and every surrogate prediction does) instead of at -80 mV without a pre-run: what the
  reference's start costs a perfect model that starts from rest;
* ``event_weight:S``: every event's conductance scaled by (1 + S N(0, 1)), independently (clipped >= 0);
* ``synapse_weight:S``: every synapse's conductance scaled by one factor (1 + S N(0, 1)) for the whole
  trial (a surrogate that mis-learned each synapse's efficacy by S);
* ``jitter_ms:S``: every event moved by S N(0, 1) ms (clipped to >= 0);
* ``slow_current:S`` / ``fast_current:S``: the input unchanged, plus a somatic noise current, an
  Ornstein-Uhlenbeck process of SD S nA and correlation time 50 ms / 3 ms (``NOISE_TAU_MS``), one draw
  per trial: an error of the membrane's slow wandering vs one of its fast fluctuations, to ask which
  kind of voltage error costs spikes (the surrogate's is mostly slow, ``l5pc_voltage_error.py``).
* ``extra_spike:A`` / ``drop_spike:A``: the input unchanged, and one somatic current pulse per trial that makes
  one spike error at one moment, as a surrogate's single false or missed spike: +A nA for ``EXTRA_PULSE_MS``
  at a time with no spike of the truth within ``QUIET_MS`` (an extra spike), or -A nA over
  ``DROP_PULSE_MS`` around an isolated spike of the truth (that spike suppressed). The pulse lies in the
  ``PULSE_SPAN_MS`` after the scoring start; the windows after it (``--windows-ms``) say whether the
  cell's later spikes forget the error or keep it. Only the trials with a moment for the pulse are run and
  scored (``trials_scored``); each such row records the pulse times, ``pulse_effective`` (the fraction of
  them where the pulse made the error it was meant to) and ``pulse_spike_change`` (the mean change in the
  number of spikes next to the pulse: +1 for exactly one extra spike, more for a burst); ``effective`` and
  ``ineffective`` hold the scores of the trials where the pulse did / did not make its error (a pulse that
  spikes in some trials and not in others tells the spike's cost from the charge's).
* ``dt_ms:S``: the input unchanged, and NEURON's fixed integration step set to S ms (the truth's is the cell's
  0.025 ms; S must divide 1 ms): the simulator's own discretisation error, i.e. what the spike targets ask of
  NEURON against NEURON (0.0125 ms: a more accurate cell; 0.05 ms: a common coarser choice).
* ``hyperpolarise:A``: the control of ``drop_spike``: the same -A nA pulse at a moment without spikes
  (placed as ``extra_spike``'s, ``DROP_PULSE_MS`` long): what the hyperpolarisation costs without a
  spike to suppress.

Besides the evaluate command's scores, every row says how its error of the clipped soma voltage (t >= skip,
spikes clipped in both) is made (:func:`error_makeup`): RMS split at 51 ms into ``rms_slow_mV`` (the error's
51 ms moving mean) and ``rms_fast_mV`` (the rest), the split of ``l5pc_voltage_error.py``; RMS where the cell
is within 5 mV of the clip (``rms_near_threshold_mV``, where spikes are decided); and the ``slope`` of the
prediction on the cell (1: an error independent of the cell's voltage; < 1: excursions shrunk). ``by_order``
scores the spikes by their order after the scoring start (:func:`order_scores`): in trials from the steady
state scored from 0 ms, the first spikes follow from the input alone, the later ones also from the spikes
before them, so a model's precision on first spikes is free of its own earlier errors. ``by_gap`` scores them
by the time since the same train's previous spike (:func:`gap_scores`).

The perturbed cell's soma voltage is clipped at ``--v-clip-mV`` (-55, as the shipped surrogate's) before
scoring, so a spike the reference does not have costs in r what it costs a surrogate. With ``--model``
the surrogate's row is added (same trials, same scoring).

``--truth steady_start`` asks the same on the reference *events* without the reference's start: the truth is
then our cell on those events from its steady state (the start of every training trial and prediction), every
perturbed cell starts there too, and ``none``/``steady_start`` are that truth itself (F1 1); the surrogate's
row then measures its own error on the reference's input protocol, free of the start that no model from rest
can know. Its outputs go to ``docs/experiments/l5pc_spike_reliability_steady_start`` by default.

    .venv/bin/python benchmarks/l5pc_spike_reliability.py --morphology ../shared/hay2011/cell1.asc \
        [--reference ../shared/hay2011/reference/synaptic_bombardment.npz] [--trials 0,2,4,...] \
        [--conditions none,event_weight:0.03,synapse_weight:0.05,jitter_ms:0.3] [--seed 0] [--workers 2] \
        [--model hay-l5pc] [--truth reference|steady_start] [--out docs/experiments/l5pc_spike_reliability]

Writes ``reliability.json``, ``reliability.md`` (table) and ``reliability.png`` (spike F1 at +-10 ms
against subthreshold r, one point per condition). Rows already in ``reliability.json`` with the same
trials, seed, scoring window and clip are reused (a run can be extended by further conditions).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from neurosurrogate.biophys.generate import hay_traces, map_chunks
from neurosurrogate.biophys.hay import dataset_cell as data_cell
from neurosurrogate.biophys.hay import load_steady_hay_dataset as load_data
from neurosurrogate.inputs import ou_noise

REPO = Path(__file__).resolve().parent.parent
KINDS = ("none", "steady_start", "event_weight", "synapse_weight", "jitter_ms", "slow_current", "fast_current",
         "extra_spike", "drop_spike", "hyperpolarise", "dt_ms")  # append only: condition_rng uses the index
NOISE_TAU_MS = {"slow_current": 50.0, "fast_current": 3.0}  # correlation times of the noise currents, ms
PULSE_KINDS = ("extra_spike", "drop_spike", "hyperpolarise")
PULSE_SPAN_MS = 200  # the one-spike-error pulses start within this many ms after the scoring start
QUIET_MS = 30.0  # an extra spike's pulse lies this far from every spike of the truth; a dropped spike has
                 # no other spike of the truth this close to it, ms
EXTRA_PULSE_MS = (0, 2)  # the extra spike's pulse, ms relative to its start: [0, 2)
DROP_PULSE_MS = (-10, 5)  # the suppressing pulse, ms relative to the truth's spike: [-10, +5)
SPLIT_MS = 51  # moving-mean width that splits the voltage error into slow and fast parts, ms
NEAR_MV = 5.0  # "near threshold": the cell's clipped soma voltage within this much below the clip, mV
TRUTHS = ("reference", "steady_start")


def parse_condition(text: str) -> tuple[str, float]:
    """``kind[:size]`` -> (kind, size); ValueError naming the condition if malformed."""
    kind, _, size = text.strip().partition(":")
    if kind not in KINDS:
        raise ValueError(f"--conditions: unknown perturbation {kind!r} in {text!r} (expected one of {KINDS})")
    if kind in ("none", "steady_start"):
        if size:
            raise ValueError(f"--conditions: {kind!r} takes no size, got {text!r}")
        return kind, 0.0
    try:
        s = float(size)
    except ValueError:
        raise ValueError(f"--conditions: {text!r} needs a numeric size, e.g. {kind}:0.05") from None
    if not np.isfinite(s) or s <= 0:
        raise ValueError(f"--conditions: size of {text!r} must be a finite number > 0")
    if kind == "dt_ms" and abs(round(1.0 / s) * s - 1.0) > 1e-9:
        raise ValueError(f"--conditions: the step of {text!r} must divide 1 ms exactly (e.g. dt_ms:0.05)")
    return kind, s


def parse_windows(text: str) -> list[float]:
    """``"300,800,2000"`` -> [300.0, 800.0, 2000.0] (whole ms, increasing; empty text: no windows)."""
    if not text.strip():
        return []
    try:
        edges = [float(x) for x in text.split(",")]
    except ValueError:
        raise ValueError(f"--windows-ms: expected comma-separated numbers of ms, got {text!r}") from None
    if len(edges) < 2 or any(not np.isfinite(e) or e < 0 or e != int(e) for e in edges) or np.any(np.diff(edges) <= 0):
        raise ValueError(f"--windows-ms: need >= 2 increasing whole numbers of ms >= 0, got {text!r}")
    return edges


def perturb(events, kind: str, size: float, n_synapses: int, rng: np.random.Generator):
    """A perturbed copy of an :class:`~neurosurrogate.inputs.EventTable`."""
    from neurosurrogate.inputs import EventTable

    t, s, w = events.t_ms.copy(), events.synapse.copy(), events.weight_nS.copy()
    if kind == "event_weight":
        w = np.clip(w * (1.0 + size * rng.standard_normal(w.size)), 0.0, None)
    elif kind == "synapse_weight":
        w = np.clip(w * (1.0 + size * rng.standard_normal(n_synapses))[s], 0.0, None)
    elif kind == "jitter_ms":
        t = np.clip(t + size * rng.standard_normal(t.size), 0.0, None)
        order = np.argsort(t, kind="stable")
        t, s, w = t[order], s[order], w[order]
    return EventTable(t, s, w)


def condition_rng(seed: int, kind: str, size: float) -> np.random.Generator:
    """The generator of a condition's perturbation: it depends on the seed and the condition, not on the
    condition's place in a list (so another script perturbs the same trials the same way)."""
    return np.random.default_rng([seed, KINDS.index(kind), int(round(size * 1e6))])


def condition_tables(kind: str, size: float, events: list, n_synapses: int, n_ms: int,
                     rng: np.random.Generator) -> list:
    """The NEURON inputs of a condition without pulses: each trial's event table, perturbed (``event_weight``,
    ``synapse_weight``, ``jitter_ms``) or as it is (``none``, ``steady_start``, ``dt_ms``), or with a noise current
    (``slow_current``, ``fast_current``: ``(events, i_soma_nA)``)."""
    if kind in NOISE_TAU_MS:
        return [(ev, noise_current(kind, size, n_ms, rng)) for ev in events]
    if kind in PULSE_KINDS:
        raise ValueError(f"{kind}: a pulse condition needs the truth's spikes (see main)")
    return [ev if kind in ("none", "steady_start", "dt_ms") else perturb(ev, kind, size, n_synapses, rng) for ev in events]


def noise_current(kind: str, size: float, n_ms: int, rng: np.random.Generator) -> np.ndarray:
    """An Ornstein-Uhlenbeck current (nA, one sample per ms, ``n_ms`` samples) of stationary SD ``size``
    and correlation time ``NOISE_TAU_MS[kind]`` (:func:`ou_noise`)."""
    return ou_noise(n_ms, size, NOISE_TAU_MS[kind], rng)


def spike_pulse(kind: str, size: float, n_ms: int, spikes_ms: np.ndarray, start_ms: float,
                rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """A somatic current (nA, one sample per ms, ``n_ms`` samples) that makes one spike error, and the
    time it aims at (ms; NaN and a zero current if the trial has no suitable moment).

    ``extra_spike``: +``size`` nA over ``EXTRA_PULSE_MS`` from a moment drawn uniformly among the whole
    ms in [start, start + ``PULSE_SPAN_MS``) that lie ``QUIET_MS`` or more from every spike of the truth
    (``spikes_ms``). ``drop_spike``: -``size`` nA over ``DROP_PULSE_MS`` around a spike of the truth
    drawn among those in that span with no other spike within ``QUIET_MS``; returns that spike's time.
    ``hyperpolarise``: -``size`` nA as long as ``DROP_PULSE_MS``, placed as ``extra_spike``'s pulse.
    """
    spikes_ms = np.asarray(spikes_ms, float)
    i = np.zeros(n_ms)
    lo, hi = int(np.ceil(start_ms)), int(np.ceil(start_ms)) + PULSE_SPAN_MS
    if kind in ("extra_spike", "hyperpolarise"):
        a, b = EXTRA_PULSE_MS if kind == "extra_spike" else (0, DROP_PULSE_MS[1] - DROP_PULSE_MS[0])
        cand = np.arange(lo, min(hi, n_ms - b))
        if spikes_ms.size:
            gap = np.abs(spikes_ms[None, :] - cand[:, None] - (a + b) / 2).min(1)
            cand = cand[gap >= QUIET_MS + (b - a) / 2]
        if not cand.size:
            return i, float("nan")
        t = int(rng.choice(cand))
        i[t + a:t + b] = size if kind == "extra_spike" else -size
        return i, float(t)
    a, b = DROP_PULSE_MS
    isolated = [s for k, s in enumerate(spikes_ms)
                if lo <= s < hi and s + b < n_ms and s + a >= 0
                and np.all(np.abs(np.delete(spikes_ms, k) - s) >= QUIET_MS)]
    if not isolated:
        return i, float("nan")
    t = float(rng.choice(isolated))
    k = int(np.floor(t))
    i[k + a:k + b] = -size
    return i, t


def pulse_effective(kind: str, t_ms: float, truth_spikes: np.ndarray, spikes: np.ndarray) -> bool:
    """Did the pulse aimed at ``t_ms`` make its error? ``extra_spike``: the perturbed cell spikes between
    1 ms before the pulse's start (the waveform is interpolated linearly between its 1 ms samples, so the
    current rises over the ms before) and 10 ms after it (the truth has no spike there by construction);
    ``drop_spike``: it has no spike within 5 ms of the truth's spike at ``t_ms``; ``hyperpolarise``: no
    spike from the pulse's start to 10 ms after its end."""
    spikes = np.asarray(spikes, float)
    if not np.isfinite(t_ms):
        return False
    if kind == "hyperpolarise":  # meant to change no spike: no spike of the cell from the pulse to 10 ms after
        b = DROP_PULSE_MS[1] - DROP_PULSE_MS[0]
        return not bool(np.any((spikes >= t_ms - 1.0) & (spikes < t_ms + b + 10.0)))
    if kind == "extra_spike":
        return bool(np.any((spikes >= t_ms - 1.0) & (spikes < t_ms + 10.0)))
    return not bool(np.any(np.abs(spikes - t_ms) <= 5.0))


def pulse_spike_change(kind: str, t_ms: float, truth_spikes: np.ndarray, spikes: np.ndarray) -> int:
    """Spikes of the perturbed cell minus spikes of the truth next to the pulse: in [t - 1, t + 20) ms for
    ``extra_spike`` (1 for one extra spike, more for a burst), in [t - 10, t + 10) ms for ``drop_spike``
    (-1 for the one spike suppressed; 0 if it was only moved), from 1 ms before to 20 ms after the pulse
    for ``hyperpolarise``."""
    a, b = {"extra_spike": (t_ms - 1.0, t_ms + 20.0), "drop_spike": (t_ms - 10.0, t_ms + 10.0),
            "hyperpolarise": (t_ms - 1.0, t_ms + DROP_PULSE_MS[1] - DROP_PULSE_MS[0] + 20.0)}[kind]

    def count(x):
        x = np.asarray(x, float)
        return int(np.sum((x >= a) & (x < b)))

    return count(spikes) - count(truth_spikes)


def error_makeup(v_true: list, v_pred: list, start_ms: float, v_clip_mV: float) -> dict[str, float]:
    """How the clipped soma-voltage error (mV, t >= ``start_ms``, all trials) is made: its RMS split
    into the ``SPLIT_MS`` moving mean (``rms_slow_mV``) and the rest (``rms_fast_mV``); its RMS where
    the cell is within ``NEAR_MV`` below the clip (``rms_near_threshold_mV``: where spikes are decided);
    and the ``slope`` of the prediction regressed on the cell (each trial's mean removed): 1 for an
    error independent of the cell's voltage, < 1 for a prediction that shrinks the cell's excursions.
    (``l5pc_voltage_error.error_bands`` splits a surrogate's error finer, on the samples between spikes;
    its parts above and below 51 ms are these two.)"""
    from scipy.ndimage import uniform_filter1d

    k = int(start_ms)
    slow, fast, near, xs, ys = [], [], [], [], []
    for a, b in zip(v_true, v_pred):
        x = np.minimum(np.asarray(a, float), v_clip_mV)
        y = np.minimum(np.asarray(b, float), v_clip_mV)
        e = y - x
        m = uniform_filter1d(e, SPLIT_MS, mode="nearest")
        slow.append(m[k:])
        fast.append((e - m)[k:])
        near.append(e[k:][x[k:] >= v_clip_mV - NEAR_MV])
        xs.append(x[k:] - x[k:].mean())
        ys.append(y[k:] - y[k:].mean())
    slow, fast, near = np.concatenate(slow), np.concatenate(fast), np.concatenate(near)
    x, y = np.concatenate(xs), np.concatenate(ys)
    return {"rms_slow_mV": float(np.sqrt(np.mean(slow ** 2))), "rms_fast_mV": float(np.sqrt(np.mean(fast ** 2))),
            "rms_near_threshold_mV": float(np.sqrt(np.mean(near ** 2))) if near.size else float("nan"),
            "slope": float(np.dot(x, y) / np.dot(x, x)) if np.dot(x, x) > 0 else float("nan")}


def run_neuron(cell_dict: dict, tables: list, duration_ms: float, workers: int) -> list[tuple]:
    """(v_mV, v_dend_mV, spike_times_ms) of every table (an event table, or ``(events, i_soma_nA)``),
    simulated on ``workers`` spawned processes (NEURON in the children only)."""
    traces = map_chunks(hay_traces, tables, workers, cell_dict, duration_ms)
    return [(tr.v_mV, tr.v_dend_mV, tr.spike_times_ms) for tr in traces]


def score(truth, v_pred, dend_pred, spikes_pred, start_ms: float, end_ms: float | None = None) -> dict[str, float]:
    """The evaluate command's reference scores (multicompartment_fidelity after crop_trial) on the
    window [start_ms, end_ms) of every trial (end None: the trial's end)."""
    from neurosurrogate.evaluate.metrics import crop_trial, multicompartment_fidelity

    T = truth.v_mV.shape[1] if end_ms is None else int(end_ms)

    def cut(v, spikes):
        sp = np.asarray(spikes, float)
        return crop_trial(np.asarray(v, float)[..., :T], sp[sp < T], start_ms)

    vt, vp, st, sp = [], [], [], []
    sites_true = {"v_dend0_mV": [], "v_dend1_mV": []}
    sites_pred = {"v_dend0_mV": [], "v_dend1_mV": []}
    for i in range(truth.n_trials):
        a, b = cut(truth.v_mV[i], truth.spike_times_ms[i])
        c, d = cut(v_pred[i], spikes_pred[i])
        vt.append(a)
        st.append(b)
        vp.append(c)
        sp.append(d)
        for k, key in enumerate(sites_true):
            sites_true[key].append(cut(truth.v_dend_mV[i][k], [])[0])
            sites_pred[key].append(cut(dend_pred[i][k], [])[0])
    return multicompartment_fidelity(vt, vp, st, sp, [T - start_ms] * len(vt), sites_true, sites_pred)


def scores(truth, v_pred, dend_pred, spikes_pred, skip_ms: float, windows_ms: list[float],
           v_clip_mV: float = -55.0) -> dict:
    """Row entries for [skip_ms, end) plus ``windows``: the same scores on consecutive windows."""
    out = row_of(score(truth, v_pred, dend_pred, spikes_pred, skip_ms))
    out.update(error_makeup(list(truth.v_mV), v_pred, skip_ms, v_clip_mV))
    out["windows"] = [{"start_ms": a, "end_ms": b, **row_of(score(truth, v_pred, dend_pred, spikes_pred, a, b))}
                      for a, b in zip(windows_ms[:-1], windows_ms[1:])]
    out["by_order"] = order_scores(truth.spike_times_ms, spikes_pred, skip_ms)
    out["by_gap"] = gap_scores(truth.spike_times_ms, spikes_pred, skip_ms)
    return out


ORDER_GROUPS = ((1, 1), (2, 2), (3, 3), (4, 7), (8, np.inf))  # spike ordinals after the scoring start
GAP_GROUPS_MS = ((0, 20), (20, 50), (50, 150), (150, 500), (500, np.inf))  # ms since the train's previous spike


def _grouped(truth_spikes: list, pred_spikes: list, start_ms: float, feature, groups, label) -> list[dict]:
    """Recall and precision at +-10 and +-2 ms of the spikes from ``start_ms`` on (matched one-to-one per
    trial, as the evaluate command's scores), grouped by ``feature(train, scored)``: a value per scored
    spike of a train (the truth's for recall, the prediction's for precision), in the ``groups`` [lo, hi]
    named by ``label(lo, hi)``."""
    from neurosurrogate.evaluate.metrics import match_spikes

    hits = {w: ([], []) for w in (10.0, 2.0)}  # window -> (per true spike: (feature, matched), per pred spike)
    for st, sp in zip(truth_spikes, pred_spikes):
        st, sp = np.sort(np.asarray(st, float)), np.sort(np.asarray(sp, float))
        ft, fp = feature(st, st >= start_ms), feature(sp, sp >= start_ms)
        st, sp = st[st >= start_ms], sp[sp >= start_ms]
        for w, (ht, hp) in hits.items():
            it, ip = match_spikes(st, sp, w)
            mt, mp = np.zeros(st.size, bool), np.zeros(sp.size, bool)
            mt[it], mp[ip] = True, True
            ht.extend(zip(ft, mt))
            hp.extend(zip(fp, mp))
    out = []
    for lo, hi in groups:
        g = {"group": label(lo, hi)}
        for w, (ht, hp) in hits.items():
            t = [m for k, m in ht if lo <= k <= hi]
            q = [m for k, m in hp if lo <= k <= hi]
            g[f"recall_{w:g}ms"] = float(np.mean(t)) if t else float("nan")
            g[f"precision_{w:g}ms"] = float(np.mean(q)) if q else float("nan")
        g["n_true"], g["n_pred"] = len(t), len(q)
        out.append(g)
    return out


def order_scores(truth_spikes: list, pred_spikes: list, start_ms: float) -> list[dict]:
    """Recall and precision at +-10 and +-2 ms by the spike's order after ``start_ms`` in its trial
    (``ORDER_GROUPS``: the 1st, 2nd, 3rd, 4th-7th, 8th and later spike): the recall of the truth's k-th
    spikes, the precision of the prediction's k-th spikes. The first spikes of a trial that starts from rest
    follow from the input alone; the later ones also from the spikes before them, which an error changes in
    the cell itself."""
    return _grouped(truth_spikes, pred_spikes, start_ms, lambda x, scored: np.arange(1, scored.sum() + 1),
                    ORDER_GROUPS, lambda lo, hi: f"{lo}" if lo == hi else (f"{lo}-{hi}" if hi < np.inf else f">={lo}"))


def gap_scores(truth_spikes: list, pred_spikes: list, start_ms: float) -> list[dict]:
    """Recall and precision at +-10 and +-2 ms by the time since the same train's previous spike
    (``GAP_GROUPS_MS``; spikes before ``start_ms`` count as previous; a train's first spike has an infinite
    gap): the recall of true spikes by the cell's own interval, the precision of predicted spikes by the
    prediction's. Short gaps are where the after-spike currents of the last spike decide the next."""

    def gap(x, scored):
        prev = np.concatenate(([-np.inf], x[:-1]))
        return (x - prev)[scored]

    return _grouped(truth_spikes, pred_spikes, start_ms, gap, GAP_GROUPS_MS,
                    lambda lo, hi: f"{lo:g}-{hi:g} ms" if hi < np.inf else f">={lo:g} ms")


def row_of(m: dict) -> dict:
    p, r = m["precision_10ms"], m["recall_10ms"]
    return {"precision_10ms": p, "recall_10ms": r,
            "f1_10ms": 2 * p * r / (p + r) if p + r else 0.0,
            "precision_2ms": m["precision_2ms"], "recall_2ms": m["recall_2ms"],
            "median_abs_shift_ms": m.get("median_abs_shift_ms", float("nan")),
            "r_sub": m["pearson_r_sub"], "r_away5ms": m["pearson_r_away5ms"],
            "r_dend0": m["v_dend0_mV_pearson_r"], "r_dend1": m["v_dend1_mV_pearson_r"],
            "n_spikes_pred": m.get("n_spikes_pred", float("nan")), "n_spikes_true": m.get("n_spikes_true", float("nan"))}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--morphology", required=True, help="Hay L5PC morphology (.asc/.swc), e.g. ../shared/hay2011/cell1.asc")
    ap.add_argument("--reference", default=str(REPO.parent / "shared/hay2011/reference/synaptic_bombardment.npz"),
                    help="reference bombardment .npz (default: ../shared/hay2011/reference/...)")
    ap.add_argument("--trials", default="", help="comma-separated reference trial indices (default: all)")
    ap.add_argument("--conditions", default="none,event_weight:0.03,synapse_weight:0.05,jitter_ms:0.3",
                    help="comma-separated perturbations kind[:size] (see the module doc)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the perturbations")
    ap.add_argument("--skip-ms", type=float, default=300.0, help="unscored start of each trial, ms (default 300)")
    ap.add_argument("--windows-ms", default="300,800,1300,2000",
                    help="edges of consecutive windows also scored on their own, ms (default 300,800,1300,2000)")
    ap.add_argument("--v-clip-mV", type=float, default=-55.0, help="clip the perturbed soma voltage here, mV")
    ap.add_argument("--workers", type=int, default=2, help="NEURON processes (default 2)")
    ap.add_argument("--model", default="", help="also score this surrogate (name or path) on the same trials")
    ap.add_argument("--truth", choices=TRUTHS, default=None,
                    help="score against the reference recordings (default) or against our cell on the reference "
                    "events started from its steady state (then every perturbed cell starts there too)")
    ap.add_argument("--data", default="",
                    help="a hay-l5pc dataset of 'neurosurrogate simulate' (trials from the steady state) to use "
                    "instead of the reference: its recordings are the truth, its trials' events the input")
    ap.add_argument("--out", default="", help="output folder (default: docs/experiments/l5pc_spike_reliability, "
                    "with --truth steady_start ..._steady_start, with --data ..._data)")
    args = ap.parse_args(argv)
    if args.data and args.truth == "reference":
        print("error: --data: its trials are scored against their own recordings (from the steady state); "
              "--truth reference applies to the reference file only", file=sys.stderr)
        return 2
    args.truth = args.truth or ("steady_start" if args.data else "reference")
    if not args.out:
        suffix = "_data" if args.data else ("" if args.truth == "reference" else "_steady_start")
        args.out = str(REPO / "docs/experiments" / ("l5pc_spike_reliability" + suffix))
    try:
        conditions = [parse_condition(c) for c in args.conditions.split(",") if c.strip()]
        if not conditions and not args.model:
            raise ValueError("--conditions: give at least one perturbation (or a --model to score alone)")
        if args.workers < 1:
            raise ValueError(f"--workers must be >= 1, got {args.workers}")
        if not (np.isfinite(args.skip_ms) and args.skip_ms >= 0):
            raise ValueError(f"--skip-ms must be a finite number >= 0, got {args.skip_ms}")
        windows = parse_windows(args.windows_ms)
        from neurosurrogate.biophys.hay import HayCell
        from neurosurrogate.evaluate.reference import load_reference_bombardment

        ref = load_data(args.data) if args.data else load_reference_bombardment(args.reference)
        trials = np.arange(ref.n_trials)
        if args.trials.strip():
            try:
                trials = np.array([int(x) for x in args.trials.split(",")])
            except ValueError:
                raise ValueError(f"--trials: expected comma-separated whole numbers, got {args.trials!r}") from None
            if trials.min() < 0 or trials.max() >= ref.n_trials:
                raise ValueError(f"--trials: indices must lie in 0..{ref.n_trials - 1}")
        ref = ref.subset(trials)
        if windows and windows[-1] > ref.v_mV.shape[1]:
            raise ValueError(f"--windows-ms: the last edge {windows[-1]:g} lies beyond the trials' "
                             f"{ref.v_mV.shape[1]} ms")
        spec = (data_cell(ref, args.morphology) if args.data
                else HayCell(morphology=args.morphology, prerun=False, v_init_mV=-80.0))
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from tqdm import tqdm

    duration = float(ref.v_mV.shape[1])
    key = {"trials": trials.tolist(), "seed": args.seed, "skip_ms": args.skip_ms, "v_clip_mV": args.v_clip_mV,
           "windows_ms": windows}
    if args.data:  # the dataset's recordings are the truth: its trials start from the steady state
        key.update(data=str(Path(args.data).resolve()), data_hash=ref.content_hash)
    else:
        key["reference"] = str(Path(args.reference).resolve())
    truth_runs = None
    simulated_truth = args.truth == "steady_start" and not args.data  # a dataset brings its own recordings
    if simulated_truth:
        key["truth"] = "steady_start"
        spec = spec.replace(prerun=True)
    done = previous_rows(Path(args.out) / "reliability.json", key)
    names = [f"{kind}:{size:g}" if size else kind for kind, size in conditions]
    if simulated_truth and (args.model or any(n not in done for n in names)):
        t0 = time.perf_counter()  # only if something is scored against it: reused rows need no truth
        truth_runs = run_neuron(spec.to_dict(), list(ref.events), duration, args.workers)
        print(f"truth: our cell on the reference events from its steady state ({time.perf_counter() - t0:.0f} s)",
              flush=True)
        ref = steady_truth(ref, truth_runs)
    rows = []
    for (kind, size), name in zip(tqdm(conditions, desc="conditions"), names):
        if name in done:
            rows.append(done[name])
            continue
        rng = condition_rng(args.seed, kind, size)
        pulse_ms, truth = None, ref
        if kind in PULSE_KINDS:  # only the trials with a moment for the pulse are run and scored
            pulses = [spike_pulse(kind, size, int(duration), sp, args.skip_ms, rng) for sp in ref.spike_times_ms]
            placed = [k for k, (_, t) in enumerate(pulses) if np.isfinite(t)]
            if not placed:
                print(f"{name}: no trial has a moment for the pulse; skipped", file=sys.stderr)
                continue
            truth = ref.subset(placed)
            tables = [(ref.events[k], pulses[k][0]) for k in placed]
            pulse_ms = [pulses[k][1] for k in placed]
        else:
            tables = condition_tables(kind, size, list(ref.events), len(spec.synapses), int(duration), rng)
        t0 = time.perf_counter()
        cell = (spec.replace(prerun=True) if kind == "steady_start"
                else spec.replace(dt_ms=size) if kind == "dt_ms" else spec)
        if truth_runs is not None and kind in ("none", "steady_start"):
            res = truth_runs  # the same simulation as the truth
        else:
            res = run_neuron(cell.to_dict(), tables, duration, args.workers)
        wall = time.perf_counter() - t0
        v = [np.minimum(r[0], args.v_clip_mV) for r in res]
        m = scores(truth, v, [r[1] for r in res], [r[2] for r in res], args.skip_ms, windows, args.v_clip_mV)
        rows.append({"condition": name, **m, "wall_s": wall})
        if pulse_ms is not None:
            made = list(zip(pulse_ms, truth.spike_times_ms, [r[2] for r in res]))
            ok = np.array([pulse_effective(kind, *x) for x in made])
            rows[-1].update(pulse_ms=pulse_ms, trials_scored=[int(trials[k]) for k in placed],
                            pulse_effective=float(ok.mean()),
                            pulse_spike_change=float(np.mean([pulse_spike_change(kind, *x) for x in made])))
            for part, sel in (("effective", np.flatnonzero(ok)), ("ineffective", np.flatnonzero(~ok))):
                if sel.size:  # the same scores on the trials where the pulse did / did not make its error
                    rows[-1][part] = {"n_trials": int(sel.size), **scores(
                        truth.subset(sel), [v[k] for k in sel], [res[k][1] for k in sel], [res[k][2] for k in sel],
                        args.skip_ms, windows, args.v_clip_mV)}
        print(json.dumps(rows[-1]), flush=True)
        write_outputs(Path(args.out), rows, vars(args), key)  # a finished condition is kept if a later one fails
    if args.model:
        from neurosurrogate.surrogate.model import SurrogateModel

        model = SurrogateModel.load(args.model)
        preds = model.predict(ref.events, duration)
        m = scores(ref, [p.v_mV for p in preds], [p.v_dend_mV for p in preds], [p.spike_times_ms for p in preds],
                   args.skip_ms, windows, args.v_clip_mV)
        rows.append({"condition": f"surrogate {args.model}", **m, "wall_s": float("nan")})
        print(json.dumps(rows[-1]), flush=True)
    write_outputs(Path(args.out), rows, vars(args), key)
    return 0


def steady_truth(ref, runs: list[tuple]):
    """The reference dataset with its recordings replaced by our cell's ``runs`` on the same events
    (soma voltage, dendritic voltages, spike times per trial)."""
    import dataclasses

    return dataclasses.replace(ref, v_mV=np.stack([np.asarray(r[0], np.float32) for r in runs]),
                               v_dend_mV=np.stack([np.asarray(r[1], np.float32) for r in runs]),
                               spike_times_ms=[np.asarray(r[2], float) for r in runs])


def previous_rows(path: Path, key: dict) -> dict[str, dict]:
    """Condition name -> row of an earlier run with the same ``key`` (none if it differs or is unreadable;
    surrogate rows and rows without the error bands are not reused)."""
    try:
        old = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if old.get("key") != key:
        return {}
    # redone: rows from before the error bands or the grouped scores, and pulse rows from before the
    # effective/ineffective split
    return {r["condition"]: r for r in old.get("rows", [])
            if not r["condition"].startswith("surrogate") and "rms_near_threshold_mV" in r and "by_gap" in r
            and ("pulse_ms" not in r or "effective" in r or "ineffective" in r)}


def write_outputs(out: Path, rows: list[dict], args: dict, key: dict) -> None:
    from neurosurrogate.data.io import atomic_path

    def write_text(path: Path, text: str) -> None:
        with atomic_path(path) as tmp:
            tmp.write_text(text)

    write_text(out / "reliability.json", json.dumps({"args": args, "key": key, "rows": rows}, indent=1))
    head = ("| condition | P / R +-10 ms | F1 | P / R +-2 ms | median abs shift (ms) | r sub | r away 5 ms "
            "| dend r 400/700 | RMS error slow / fast / near threshold (mV) | slope |")
    truth = (f"the recordings of {args['data']} (our cell from its steady state)" if args.get("data")
             else "the reference recordings" if args.get("truth", "reference") == "reference"
             else "our cell on the reference events, started from its steady state")
    lines = [f"Scored against {truth}.", "", head, "|" + "---|" * 10]
    for r in rows:
        bands = f"{r['rms_slow_mV']:.2f} / {r['rms_fast_mV']:.2f} / {r['rms_near_threshold_mV']:.2f} | {r['slope']:.2f}"
        lines.append(f"| {r['condition']} | {r['precision_10ms']:.3f} / {r['recall_10ms']:.3f} | {r['f1_10ms']:.3f} | "
                     f"{r['precision_2ms']:.3f} / {r['recall_2ms']:.3f} | {r['median_abs_shift_ms']:.2f} | "
                     f"{r['r_sub']:.3f} | {r['r_away5ms']:.3f} | {r['r_dend0']:.3f} / {r['r_dend1']:.3f} | {bands} |")
    if rows and rows[0].get("windows"):
        wins = [(w["start_ms"], w["end_ms"]) for w in rows[0]["windows"]]
        lines += ["", "By window (F1 at +-10 ms / F1 at +-2 ms / r sub):", "",
                  "| condition | " + " | ".join(f"{a:g}-{b:g} ms" for a, b in wins) + " |", "|---" * (len(wins) + 1) + "|"]
        for r in rows:
            cells = []
            for w in r["windows"]:
                f2 = 2 * w["precision_2ms"] * w["recall_2ms"] / max(w["precision_2ms"] + w["recall_2ms"], 1e-12)
                cells.append(f"{w['f1_10ms']:.3f} / {f2:.3f} / {w['r_sub']:.3f}")
            lines.append(f"| {r['condition']} | " + " | ".join(cells) + " |")
    for key_, title, prefix in (("by_order", "By the spike's order after the scoring start", "spike "),
                                ("by_gap", "By the time since the same train's previous spike", "")):
        if not (rows and rows[-1].get(key_)):
            continue
        groups = [g["group"] for g in rows[-1][key_]]
        lines += ["", f"{title} (recall / precision at +-10 ms; at +-2 ms; spikes true / predicted):", "",
                  "| condition | " + " | ".join(f"{prefix}{g}" for g in groups) + " |", "|---" * (len(groups) + 1) + "|"]
        for r in rows:
            if r.get(key_):
                lines.append(f"| {r['condition']} | " + " | ".join(
                    f"{g['recall_10ms']:.2f} / {g['precision_10ms']:.2f}; {g['recall_2ms']:.2f} / {g['precision_2ms']:.2f}; "
                    f"{g['n_true']} / {g['n_pred']}" for g in r[key_]) + " |")
    pulsed = [r for r in rows if "pulse_effective" in r]
    if pulsed:
        lines += ["", "One-spike-error pulses (only the trials with a moment for the pulse are scored):", ""]
        for r in pulsed:
            lines.append(f"- {r['condition']}: {len(r['pulse_ms'])} trials; the pulse made its error in "
                         f"{r['pulse_effective']:.0%} of them; spikes next to the pulse changed by "
                         f"{r['pulse_spike_change']:+.2f} on average")
            for part in ("effective", "ineffective"):
                if part in r:
                    w = "; ".join(f"{x['start_ms']:g}-{x['end_ms']:g} ms {x['f1_10ms']:.3f}" for x in r[part]["windows"])
                    lines.append(f"  - {part} ({r[part]['n_trials']} trials): F1 +-10 ms {r[part]['f1_10ms']:.3f}"
                                 + (f"; by window {w}" if w else ""))
    write_text(out / "reliability.md", "\n".join(lines) + "\n")
    from neurosurrogate.plotting import plot_reliability

    vs = "reference" if args.get("truth", "reference") == "reference" else "our cell from steady state"
    plot_reliability(out / "reliability.png", rows, vs)


if __name__ == "__main__":
    from neurosurrogate.biophys.generate import run_interruptible

    run_interruptible(main, "interrupted (finished conditions are kept in --out)")  # kill PID ends the workers too
