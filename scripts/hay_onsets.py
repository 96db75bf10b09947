"""Which episode onsets does a hay-l5pc surrogate miss, and what was the cell doing before them?

Every surrogate so far finds the first spike of an episode (no spike of the cell in the ``--gap-ms`` before)
at recall ~0.73, whatever its architecture or loss (README, hay item 13). This script describes each such
onset by what preceded it, in the cell, in the model and in the input, and reports recall (found at
+-``--window-ms``) by quartile of each description, and how well each separates found from missed (AUC):

* ``v_cell_{k}``, ``v_model_{k}``: soma voltage k ms before the spike's bin, mV; ``err_{k}`` = model - cell,
  both clipped at ``--clip-mV`` (the model's soma output learns the clipped voltage).
* ``err_slow``: mean of model - cell over [t-20, t-5) ms; ``rise_cell`` / ``rise_model``: voltage at t-1
  minus t-5 ms (how fast the final approach was), mV.
* ``exc_5``, ``exc_basal_5``, ``exc_apical_5``, ``inh_10``: summed event weights (nS) in the 5 (10) ms
  before, by kind and region; ``exc_peak_1ms``: the largest excitatory weight within one 1 ms bin of those 5;
  ``exc_20``: summed excitatory weight in the 20 ms before.
* ``dend700_max``: the largest voltage of the 700 um trunk site in the 15 ms before, mV.
* ``gap``: time since the cell's previous spike, ms (500 when there is none or it is longer).
* ``p_max``: the model's largest spike probability within +-3 ms.

The voltage error of every sample away from spikes (5 ms from any spike of either) is also tabulated by band
of the cell's voltage and by band of the model's: its mean says whether the model's soma voltage is biased
where the cell is near threshold, and whether it is calibrated (the cell's mean where the model says v).

False onsets (a predicted spike with no cell spike within the window, and no predicted spike in the gap
before) are described the same way, with the cell's peak voltage within +-5 ms added (``v_cell_peak``).

The same analysis applies to the real cell made imperfect (``--cell-condition KIND:SIZE``, the perturbations
of ``benchmarks/l5pc_spike_reliability.py``: e.g. ``fast_current:0.05``, a somatic noise current that makes the
cell err as much as a surrogate, or ``jitter_ms:1``), simulated in NEURON from the steady state on the same
events (needs ``--morphology``); its spike probability is 1 in the bin of each of its spikes.

Run from the repository root with ``.venv/bin/python``; several ``--model`` folders and cell conditions are
scored on the same data. Writes ``--out`` (JSON: per model, every onset's and false onset's features as
``{"columns": [...], "rows": [[...], ...]}``, and the calibration table), ``--plot`` (PNG) and prints a
Markdown summary.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

K_BEFORE = (1, 2, 5, 10, 20)
#: perturbations of the reliability benchmark that apply to a dataset's trials (--cell-condition)
CELL_KINDS = ("none", "event_weight", "synapse_weight", "jitter_ms", "slow_current", "fast_current")
#: voltage bands of the calibration table, mV
BANDS_MV = (-np.inf, -70.0, -65.0, -62.0, -60.0, -58.0, -57.0, -56.0, -55.0)


def auc(score_pos: np.ndarray, score_neg: np.ndarray) -> float:
    """P(a positive's score > a negative's), ties counted half (Mann-Whitney); NaN if a class is empty."""
    a, b = np.asarray(score_pos, float), np.asarray(score_neg, float)
    if a.size == 0 or b.size == 0:
        return float("nan")
    from scipy.stats import rankdata

    ranks = rankdata(np.concatenate([a, b]))  # ties get their average rank
    return float((ranks[: a.size].sum() - a.size * (a.size + 1) / 2) / (a.size * b.size))


def episode_onsets(spikes_ms: np.ndarray, gap_ms: float) -> np.ndarray:
    """Indices of the spikes with no other spike of the same train in the ``gap_ms`` before."""
    s = np.asarray(spikes_ms, float)
    if s.size == 0:
        return np.zeros(0, dtype=int)
    prev = np.concatenate([[-np.inf], s[:-1]])
    return np.flatnonzero(s - prev >= gap_ms)


def describe(t_ms: float, v_cell: np.ndarray, v_model: np.ndarray, vc: np.ndarray, vm: np.ndarray,
             prob: np.ndarray, dend700: np.ndarray, ev_t: np.ndarray, ev_w: np.ndarray, ev_exc: np.ndarray,
             ev_apical: np.ndarray, prev_spike_ms: float, long_gap_ms: float) -> dict[str, float] | None:
    """Features of the moment ``t_ms`` (see the module docstring; ``vc``, ``vm``: the trial's clipped
    voltages); None if it is within 20 ms of the start."""
    i = int(t_ms)
    if i < 20 or i >= v_cell.size:
        return None
    f: dict[str, float] = {}
    for k in K_BEFORE:
        f[f"v_cell_{k}"], f[f"v_model_{k}"] = float(v_cell[i - k]), float(v_model[i - k])
        f[f"err_{k}"] = float(vm[i - k] - vc[i - k])
    f["err_slow"] = float(np.mean(vm[i - 20 : i - 5] - vc[i - 20 : i - 5]))
    f["rise_cell"], f["rise_model"] = float(vc[i - 1] - vc[i - 5]), float(vm[i - 1] - vm[i - 5])
    w5 = (ev_t >= i - 5) & (ev_t < t_ms)
    f["exc_5"] = float(ev_w[w5 & ev_exc].sum())
    f["exc_basal_5"] = float(ev_w[w5 & ev_exc & ~ev_apical].sum())
    f["exc_apical_5"] = float(ev_w[w5 & ev_exc & ev_apical].sum())
    f["exc_20"] = float(ev_w[(ev_t >= i - 20) & (ev_t < t_ms) & ev_exc].sum())
    f["inh_10"] = float(ev_w[(ev_t >= i - 10) & (ev_t < t_ms) & ~ev_exc].sum())
    bins = np.bincount(np.floor(ev_t[w5 & ev_exc] - (i - 5)).astype(int).clip(0, 5), ev_w[w5 & ev_exc], 6)
    f["exc_peak_1ms"] = float(bins.max())
    f["dend700_max"] = float(dend700[i - 15 : i].max())
    f["gap"] = float(min(t_ms - prev_spike_ms, long_gap_ms))
    f["p_max"] = float(prob[max(0, i - 3) : i + 4].max())
    return f


def onset_table(true_list, pred_list, v_cell, v_model, prob, dend700, events, exc, apical, window_ms=10.0,
                gap_ms=20.0, clip_mV=-55.0, long_gap_ms=500.0):
    """Onsets of the cell (with ``found``) and false onsets of the model, each a list of feature dicts.

    Args:
        true_list, pred_list: spike times per trial, ms.
        v_cell, v_model, prob, dend700: (n_trials, T) soma voltages (mV), the model's spike probability and
            the cell's 700 um trunk voltage (mV), 1 kHz.
        events: one EventTable per trial; exc, apical: (n_synapses,) bool per synapse.
    """
    from neurosurrogate.evaluate.metrics import match_spikes

    onsets, false = [], []
    for k, (st, sp) in enumerate(zip(true_list, pred_list)):
        st, sp = np.sort(np.asarray(st, float)), np.sort(np.asarray(sp, float))
        it, ip = match_spikes(st, sp, window_ms)
        found, matched = np.zeros(st.size, bool), np.zeros(sp.size, bool)
        found[it], matched[ip] = True, True
        ev = events[k]
        ev_t, ev_w, s = np.asarray(ev.t_ms), np.asarray(ev.weight_nS), np.asarray(ev.synapse)
        args = (v_cell[k], v_model[k], np.minimum(v_cell[k], clip_mV), np.minimum(v_model[k], clip_mV), prob[k],
                dend700[k], ev_t, ev_w, exc[s], apical[s])
        for j in episode_onsets(st, gap_ms):
            prev = st[j - 1] if j > 0 else -np.inf
            f = describe(st[j], *args, prev, long_gap_ms)
            if f is not None:
                f["found"], f["trial"], f["t_ms"] = bool(found[j]), k, float(st[j])
                onsets.append(f)
        for j in episode_onsets(sp, gap_ms):
            if matched[j]:
                continue
            before = st[st < sp[j]]
            f = describe(sp[j], *args, before[-1] if before.size else -np.inf, long_gap_ms)
            if f is not None:
                i = int(sp[j])
                f["v_cell_peak"] = float(v_cell[k][max(0, i - 5) : i + 6].max())
                f["trial"], f["t_ms"] = k, float(sp[j])
                false.append(f)
    return onsets, false


def calibration(v_cell, v_model, true_list, pred_list, clip_mV=-55.0, margin_ms=5.0) -> dict:
    """Mean and RMS of model - cell (both clipped) by band of the cell's and of the model's voltage.

    Samples within ``margin_ms`` of a spike of either train are left out; the last band holds the samples at
    the clip. Returns ``{"bands_mV": [...], "n_samples": n, "by_cell": [[fraction, mean, rms], ...],
    "by_model": [...]}`` (NaN where a band is empty).
    """
    from neurosurrogate.evaluate.metrics import away_from_spikes_mask

    vc, vm = np.minimum(v_cell, clip_mV), np.minimum(v_model, clip_mV)
    mask = np.stack([away_from_spikes_mask(vc.shape[1], t, p, margin_ms) for t, p in zip(true_list, pred_list)])
    a, b = vc[mask], vm[mask]
    err = b - a
    edges = [e for e in BANDS_MV if e < clip_mV] + [clip_mV]
    out: dict = {"bands_mV": edges, "n_samples": int(err.size)}
    for name, x in (("by_cell", a), ("by_model", b)):
        band = np.searchsorted(edges, x, side="right")  # 1..len(edges)-1 inside, len(edges) at the clip
        rows = []
        for j in range(1, len(edges) + 1):
            e = err[band == j]
            rows.append([float(e.size / max(err.size, 1)), float(e.mean()) if e.size else float("nan"),
                         float(np.sqrt(np.mean(e**2))) if e.size else float("nan")])
        out[name] = rows
    return out


def calibration_lines(cal: dict) -> list[str]:
    """Markdown table of :func:`calibration`."""
    e = cal["bands_mV"]
    names = [f"[{e[j - 1]:g}, {e[j]:g})" for j in range(1, len(e))] + [f"at {e[-1]:g}"]
    lines = ["| band, mV | by the cell's voltage: fraction / mean / RMS of model - cell | by the model's voltage: fraction / mean |",
             "|---|---|---|"]
    for n, c, m in zip(names, cal["by_cell"], cal["by_model"]):
        lines.append(f"| {n} | {c[0]:.3f} / {c[1]:+.2f} / {c[2]:.2f} | {m[0]:.3f} / {m[1]:+.2f} |")
    return lines


def onset_averages(onsets: list[dict], v_cell: np.ndarray, v_model: np.ndarray, clip_mV: float = -55.0,
                   lags_ms=range(-30, 3)) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Mean clipped soma voltage of the cell and the model (mV) at ``lags_ms`` from each onset's bin, over the
    found and over the missed onsets: ``{"found": (cell, model), "missed": (cell, model)}`` (onsets whose
    window leaves the trial are left out; NaN where there are none)."""
    lags = np.asarray(list(lags_ms), int)
    vc, vm = np.minimum(v_cell, clip_mV), np.minimum(v_model, clip_mV)
    out = {}
    for name, want in (("found", True), ("missed", False)):
        rows = [(o["trial"], int(o["t_ms"])) for o in onsets if o["found"] == want]
        rows = [(k, i) for k, i in rows if i + lags.min() >= 0 and i + lags.max() < vc.shape[1]]
        if rows:
            k, i = np.array(rows).T
            idx = i[:, None] + lags[None, :]
            out[name] = (vc[k[:, None], idx].mean(axis=0), vm[k[:, None], idx].mean(axis=0))
        else:
            out[name] = (np.full(lags.size, np.nan), np.full(lags.size, np.nan))
    return out


def summary(onsets: list[dict], false: list[dict]) -> list[str]:
    """Markdown lines: recall by quartile of every feature, AUC found vs missed, means of false onsets."""
    keys = [k for k in onsets[0] if k not in ("found", "trial", "t_ms")]
    found = np.array([o["found"] for o in onsets])
    lines = [f"{len(onsets)} onsets, recall {found.mean():.3f}; {len(false)} false onsets", "",
             "| feature | recall by quartile (low -> high) | quartile edges | AUC found vs missed | mean found / missed / false |",
             "|---|---|---|---|---|"]
    for key in keys:
        x = np.array([o[key] for o in onsets])
        edges = np.quantile(x, [0.25, 0.5, 0.75])
        q = np.searchsorted(edges, x, side="right")
        rec = " / ".join(f"{found[q == b].mean():.2f}" if np.any(q == b) else "-" for b in range(4))
        xf = np.array([o[key] for o in false]) if false else np.zeros(0)
        fm = f"{xf.mean():.2f}" if xf.size else "-"
        lines.append(f"| `{key}` | {rec} | {' / '.join(f'{e:.2f}' for e in edges)} | {auc(x[found], x[~found]):.3f} "
                     f"| {x[found].mean():.2f} / {x[~found].mean():.2f} / {fm} |")
    if false:
        lines.append("")
        lines.append(f"False onsets: the cell's peak within +-5 ms, median {np.median([f['v_cell_peak'] for f in false]):.1f} mV")
    return lines


def _reliability_module():
    """benchmarks/l5pc_spike_reliability.py imported as a module (its perturbations and NEURON runner)."""
    import importlib.util

    path = Path(__file__).resolve().parent.parent / "benchmarks" / "l5pc_spike_reliability.py"
    spec = importlib.util.spec_from_file_location(path.stem, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def perturbed_cell(rel, d, morphology: str, condition: tuple[str, float], seed: int, workers: int):
    """Spike times and soma voltage (n_trials, T) of the dataset's cell, perturbed as ``condition``
    (``(kind, size)`` of the reliability benchmark, ``kind`` in ``CELL_KINDS``), on the dataset's events from
    the steady state."""
    from neurosurrogate.biophys.hay import dataset_cell

    kind, size = condition
    T = int(d.duration_ms)
    tables = rel.condition_tables(kind, size, list(d.events), len(d.synapses), T, rel.condition_rng(seed, kind, size))
    cell = dataset_cell(d, morphology)
    res = rel.run_neuron(cell.to_dict(), tables, d.duration_ms, workers)
    return [np.asarray(r[2]) for r in res], np.stack([np.asarray(r[0])[:T] for r in res])


def rounded(x, digits: int = 4):
    """``x`` (nested dicts / lists of floats) with every float rounded to ``digits`` decimals (smaller JSON)."""
    if isinstance(x, float):
        return round(x, digits) if np.isfinite(x) else x
    if isinstance(x, dict):
        return {k: rounded(v, digits) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [rounded(v, digits) for v in x]
    return x


def columns(rows: list[dict]) -> dict:
    """A list of dicts with the same keys as ``{"columns": keys, "rows": [[values], ...]}`` (the JSON's form)."""
    keys = list(rows[0]) if rows else []
    return {"columns": keys, "rows": [[r[k] for k in keys] for r in rows]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", action="append", default=[], help="model folder (repeatable)")
    ap.add_argument("--cell-condition", action="append", default=[],
                    help="the real cell perturbed, KIND:SIZE of benchmarks/l5pc_spike_reliability.py (repeatable)")
    ap.add_argument("--morphology", help="Hay L5PC morphology for --cell-condition, e.g. ../shared/hay2011/cell1.asc")
    ap.add_argument("--seed", type=int, default=0, help="seed of the cell conditions' perturbations (default 0)")
    ap.add_argument("--workers", type=int, default=2, help="NEURON processes for --cell-condition (default 2)")
    ap.add_argument("--data", required=True, help="hay-l5pc dataset (.h5) with v_dend_mV; trials from the steady state")
    ap.add_argument("--window-ms", type=float, default=10.0, help="matching window, ms (default 10)")
    ap.add_argument("--gap-ms", type=float, default=20.0, help="an onset has no spike in this many ms before (default 20)")
    ap.add_argument("--clip-mV", type=float, default=-55.0, help="soma voltages clipped here, mV (default -55)")
    ap.add_argument("--trials", type=int, help="only the first N trials of --data")
    ap.add_argument("--out", help="JSON with every onset's features per model")
    ap.add_argument("--plot", help="PNG of the mean soma voltage around found and missed onsets, one panel per model")
    a = ap.parse_args(argv)
    for name, v in (("--window-ms", a.window_ms), ("--gap-ms", a.gap_ms)):
        if not v > 0:
            ap.error(f"{name} must be > 0 ms, got {v}")
    if not a.model and not a.cell_condition:
        ap.error("give at least one --model or --cell-condition")
    rel, conditions = None, []
    if a.cell_condition:
        rel = _reliability_module()
        if not a.morphology or not Path(a.morphology).is_file():
            ap.error(f"--cell-condition needs --morphology, an existing file; got {a.morphology!r}")
        try:
            conditions = [rel.parse_condition(c) for c in a.cell_condition]
        except ValueError as e:
            ap.error(f"--cell-condition: {str(e).replace('--conditions: ', '')}")
        bad = [c for c, (kind, _) in zip(a.cell_condition, conditions) if kind not in CELL_KINDS]
        if bad:
            ap.error(f"--cell-condition {bad[0]}: expected one of {', '.join(CELL_KINDS)} (with :SIZE)")
        if a.workers < 1:
            ap.error(f"--workers must be >= 1, got {a.workers}")
    from neurosurrogate.data.dataset import load_dataset
    from neurosurrogate.surrogate.model import SurrogateModel

    d = load_dataset(a.data)
    if a.trials is not None:
        if not 1 <= a.trials <= d.n_trials:
            ap.error(f"--trials must be in 1..{d.n_trials} (the trials of {a.data}), got {a.trials}")
        d = d.subset(np.arange(a.trials))
    if d.v_dend_mV is None or d.v_dend_mV.shape[1] < 2:
        ap.error(f"--data {a.data}: no two dendritic recording sites (a hay-l5pc dataset is needed)")
    if conditions and (not d.cell.get("prerun", True) or "morphology" not in d.cell):
        ap.error(f"--data {a.data}: --cell-condition needs a hay-l5pc dataset whose trials start from the steady "
                 "state (the simulate default)")
    exc = np.array([s["kind"] == "exc" for s in d.synapses])
    apical = np.array([s.get("region") == "apical" for s in d.synapses])
    true = [np.asarray(d.spike_times_ms[k]) for k in range(d.n_trials)]
    result, panels, lags = {}, [], np.arange(-30, 3)
    runs = [(m, None) for m in a.model] + list(zip(a.cell_condition, conditions))
    for m, cond in runs:
        if cond is None:
            traces = SurrogateModel.load(m).predict(list(d.events), d.duration_ms)
            pred = [np.asarray(p.spike_times_ms) for p in traces]
            v_model = np.stack([p.v_mV for p in traces])
            prob = np.stack([p.meta["spike_prob"] for p in traces])
        else:
            pred, v_model = perturbed_cell(rel, d, a.morphology, cond, a.seed, a.workers)
            prob = np.zeros_like(v_model)
            for k, p in enumerate(pred):
                prob[k, np.clip(np.asarray(p, int), 0, prob.shape[1] - 1)] = 1.0
            m = f"the cell, {m}"
        onsets, false = onset_table(true, pred, d.v_mV, v_model, prob, d.v_dend_mV[:, 1], d.events, exc, apical,
                                    a.window_ms, a.gap_ms, a.clip_mV)
        cal = calibration(d.v_mV, v_model, true, pred, a.clip_mV)
        print(f"## {m}\n")
        print("\n".join(summary(onsets, false)) + "\n")
        print("\n".join(calibration_lines(cal)) + "\n")
        result[m] = {"onsets": columns(onsets), "false": columns(false), "calibration": cal}
        label = m if cond is not None else (Path(m).parent.name if Path(m).name == "model" else Path(m).name)
        panels.append((label, onset_averages(onsets, d.v_mV, v_model, a.clip_mV, lags)))
    if a.plot:
        from neurosurrogate.plotting import plot_onset_averages

        plot_onset_averages(a.plot, lags, panels)
    if a.out:
        tmp = Path(a.out).with_suffix(".tmp")
        tmp.write_text(json.dumps(rounded({"data": str(a.data), "trials": d.n_trials, "window_ms": a.window_ms,
                                           "gap_ms": a.gap_ms, "clip_mV": a.clip_mV, "seed": a.seed,
                                           "models": result})))
        tmp.replace(a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
