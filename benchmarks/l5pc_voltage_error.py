"""Where in time is a surrogate's soma-voltage error? Bands of time scale, shrinkage of the slow part.

A surrogate run free from rest on datasets of NEURON trials (``neurosurrogate evaluate``'s rollout); its
clipped soma voltage (min(v, --v-clip-mV), as the shipped models learn it) is compared with the cell's on the
samples between true spikes (``subthreshold_mask``: 2 ms before to 5 ms after each spike left out):

* **bands**: the error e = v_pred - v_true split by nested box filters of 3, 11, 51 and 201 ms into the parts
  below 3 ms, 3-11, 11-51, 51-201 and above 201 ms (RMS of each, mV; the parts add up to e, their squares only
  roughly to e's: box filters are not orthogonal);
* **trial-mean error**: RMS over trials of each trial's mean error, mV (a per-trial offset);
* **shrinkage**: the slope of the regression of the predicted on the true within-trial voltage (t >= --skip-ms,
  each trial's mean removed), raw and after a 51 ms moving average, with their r; a slope below 1 means the
  model's excursions are too small (it predicts the mean of what it cannot tell apart);
* **spike history**: the slow error (51 ms mean, t >= --skip-ms, each trial's mean removed) regressed on the
  slow parts of two spike traces, sum_k exp(-(t - t_k) / 200 ms) over the cell's spikes and over the model's
  (200 ms: the soma's calcium, which drives its SK after-hyperpolarisation, follows this trace of the cell's
  spikes with r 0.95 under steady drive). ``coef_true_mV`` is the error per unit of the cell's trace,
  ``coef_pred_mV`` per unit of the model's own; a model whose voltage carries the after-effect of its own spikes
  as the cell's does has coef_pred ~ -coef_true; one that ignores them has coef_pred ~ 0. With ``r2``, the share
  of the slow error these two traces explain.

    .venv/bin/python benchmarks/l5pc_voltage_error.py --model hay-l5pc --data data/hay/val_mixed.h5 \
        --data runs/regimes_hay/data/heldout_hay-l5pc_strong.h5 [--trials 40] [--skip-ms 300] \
        [--plot error.png] [--out error.json]

Prints one row per dataset (and writes them as JSON with --out); --plot draws the first three trials of the
first dataset: true and predicted voltage with their spikes, and the error with its 51 ms moving average.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from scipy.ndimage import uniform_filter1d

SCALES_MS = (3, 11, 51, 201)
HISTORY_TAU_MS = 200.0


def spike_trace(spike_times_ms: np.ndarray, n: int, tau_ms: float = HISTORY_TAU_MS) -> np.ndarray:
    """(n,) sum over spikes of exp(-(t - t_k) / tau_ms) for t >= t_k, at t = 0, 1, ... ms (spike in its bin)."""
    from scipy.signal import lfilter

    x = np.zeros(n)
    k = np.floor(np.asarray(spike_times_ms, dtype=float)).astype(int)
    np.add.at(x, k[(k >= 0) & (k < n)], 1.0)
    return lfilter([1.0], [1.0, -np.exp(-1.0 / tau_ms)], x)


def history_fit(err: np.ndarray, true_trace: np.ndarray, pred_trace: np.ndarray) -> dict:
    """Least squares err ~ a true_trace + b pred_trace (all centred): coefficients (mV per unit), r, R^2."""
    x = np.stack([true_trace, pred_trace], 1)
    c, *_ = np.linalg.lstsq(x, err, rcond=None)
    var = float(np.var(err))
    r2 = 1.0 - float(np.var(err - x @ c)) / var if var > 0 else float("nan")
    r = [float(np.corrcoef(z, err)[0, 1]) if np.std(z) > 0 and var > 0 else float("nan") for z in x.T]
    return {"tau_ms": HISTORY_TAU_MS, "coef_true_mV": float(c[0]), "coef_pred_mV": float(c[1]),
            "r_true": r[0], "r_pred": r[1], "r2": r2}


def error_bands(e: np.ndarray, mask: np.ndarray) -> list[float]:
    """Mean squares of the parts of ``e`` below 3 ms, 3-11, 11-51, 51-201 and above 201 ms, on ``mask``."""
    out, prev = [], e
    for w in SCALES_MS:
        low = uniform_filter1d(e, w, mode="nearest")
        out.append(float(np.mean((prev - low)[mask] ** 2)))
        prev = low
    out.append(float(np.mean(prev[mask] ** 2)))
    return out


def slope_r(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    return float(np.dot(x, y) / np.dot(x, x)), float(np.corrcoef(x, y)[0, 1])


def analyse(truth, pred, v_clip_mV: float, skip_ms: int) -> dict:
    from neurosurrogate.evaluate.metrics import subthreshold_mask

    bands, means, total, raw, smooth, hist = [], [], [], [], [], []
    for tr, pr in zip(truth, pred):
        a, b = np.minimum(tr.v_mV, v_clip_mV), np.minimum(pr.v_mV, v_clip_mV)
        mask = subthreshold_mask(tr.v_mV, tr.spike_times_ms)
        if mask.sum() < 2:
            continue
        e = b - a
        bands.append(error_bands(e, mask))
        means.append(float(e[mask].mean()))
        total.append(float(np.mean(e[mask] ** 2)))
        for w, acc in ((1, raw), (51, smooth)):
            x, y = uniform_filter1d(a, w)[skip_ms:], uniform_filter1d(b, w)[skip_ms:]
            acc.append((x - x.mean(), y - y.mean()))
        keep = mask[skip_ms:]
        if keep.any():
            parts = [uniform_filter1d(z, 51)[skip_ms:][keep] for z in
                     (e, spike_trace(tr.spike_times_ms, e.size), spike_trace(pr.spike_times_ms, e.size))]
            hist.append([z - z.mean() for z in parts])
    if not bands:
        raise ValueError("no trial has subthreshold samples to score")
    rms = np.sqrt(np.mean(bands, axis=0))
    out = {"n_trials": len(bands), "error_rms_mV": float(np.sqrt(np.mean(total))),
           "bands_rms_mV": dict(zip(("<3", "3-11", "11-51", "51-201", ">201"), map(float, rms))),
           "trial_mean_error_rms_mV": float(np.sqrt(np.mean(np.square(means))))}
    for name, acc in (("raw", raw), ("51ms", smooth)):
        x, y = (np.concatenate(z) for z in zip(*acc))
        s, r = slope_r(x, y)
        out[f"slope_{name}"], out[f"r_{name}"] = s, r
    if hist:
        out["history"] = history_fit(*(np.concatenate(z) for z in zip(*hist)))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="hay-l5pc", help="shipped model name or model folder (default hay-l5pc)")
    ap.add_argument("--data", action="append", required=True, help="dataset (.h5) of NEURON trials (repeatable)")
    ap.add_argument("--trials", type=int, default=40, help="first N trials of each dataset (default 40)")
    ap.add_argument("--skip-ms", type=int, default=300,
                    help="leave out the first ms of each trial from the shrinkage slopes (default 300)")
    ap.add_argument("--v-clip-mV", type=float, default=-55.0, help="voltage ceiling of both traces, mV (default -55)")
    ap.add_argument("--plot", type=Path, help="PNG of the first three trials of the first dataset")
    ap.add_argument("--out", type=Path, help="write the rows as JSON here")
    args = ap.parse_args(argv)
    if args.trials < 1 or args.skip_ms < 0:
        ap.error(f"--trials must be >= 1 and --skip-ms >= 0, got {args.trials}, {args.skip_ms}")
    import torch

    from neurosurrogate.data.dataset import DatasetError, load_dataset
    from neurosurrogate.data.io import atomic_path
    from neurosurrogate.evaluate.rollout import evaluate_dataset
    from neurosurrogate.surrogate.model import ModelError, SurrogateModel

    torch.set_num_threads(1)
    try:
        model = SurrogateModel.load(args.model)
        rows = {}
        for k, path in enumerate(args.data):
            d = load_dataset(path)
            d = d.subset(np.arange(min(args.trials, d.n_trials)))
            if args.skip_ms >= d.duration_ms:
                raise ValueError(f"--skip-ms {args.skip_ms} leaves nothing of {path}'s {d.duration_ms:g} ms trials")
            ev = evaluate_dataset(model, d)
            rows[Path(path).name] = row = analyse(ev.truth, ev.pred, args.v_clip_mV, args.skip_ms)
            b = row["bands_rms_mV"]
            print(f"{Path(path).name}: {row['n_trials']} trials, error {row['error_rms_mV']:.2f} mV RMS; bands "
                  + ", ".join(f"{k} ms {v:.2f}" for k, v in b.items())
                  + f"; trial-mean {row['trial_mean_error_rms_mV']:.2f}; slope {row['slope_raw']:.2f} "
                  f"(r {row['r_raw']:.3f}), 51 ms mean {row['slope_51ms']:.2f} (r {row['r_51ms']:.3f})")
            if "history" in row:
                hs = row["history"]
                print(f"  slow error vs spike traces (200 ms): {hs['coef_true_mV']:+.2f} mV per unit of the cell's "
                      f"(r {hs['r_true']:+.2f}), {hs['coef_pred_mV']:+.2f} per unit of the model's own "
                      f"(r {hs['r_pred']:+.2f}); R2 {hs['r2']:.2f}")
            if k == 0 and args.plot:
                from neurosurrogate.plotting import plot_voltage_error

                plot_voltage_error(args.plot, ev.truth, ev.pred, args.v_clip_mV)
    except (DatasetError, ModelError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.out:
        with atomic_path(args.out) as tmp:
            tmp.write_text(json.dumps({"model": str(args.model), "trials": args.trials, "skip_ms": args.skip_ms,
                                       "v_clip_mV": args.v_clip_mV, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
