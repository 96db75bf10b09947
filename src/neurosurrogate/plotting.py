"""All plots (the only module that imports matplotlib; imported lazily by the CLI)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np


def shown_v(tr) -> np.ndarray:
    """The soma voltage to draw, mV: a clipped-voltage surrogate's trace with its spikes put back
    (``meta['v_spiking_mV']``), else ``v_mV``. Scores use ``v_mV``."""
    v = (getattr(tr, "meta", None) or {}).get("v_spiking_mV")
    return tr.v_mV if v is None else v


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
        ax.plot(t[m], shown_v(tr)[m], lw=0.7, color="k")
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


def plot_overlay(path, truth: Sequence, pred: Sequence, title: str = "", max_ms: float | None = None) -> Path:
    """NEURON (black) and surrogate (red) voltage of several trials, spike times as ticks."""
    plt = _plt()
    n = max(len(truth), 1)
    fig, axes = plt.subplots(n, 1, figsize=(11, 2.2 * n + 0.5), sharex=True, squeeze=False)
    for k, (a, b) in enumerate(zip(truth, pred)):
        ax = axes[k, 0]
        m = a.t_ms < (max_ms if max_ms is not None else np.inf)
        ax.plot(a.t_ms[m], a.v_mV[m], color="k", lw=0.8, label="NEURON")
        ax.plot(b.t_ms[m], shown_v(b)[m], color="tab:red", lw=0.8, alpha=0.8, label="surrogate")
        lim = max_ms if max_ms is not None else np.inf
        ax.plot(a.spike_times_ms[a.spike_times_ms < lim], np.full((a.spike_times_ms < lim).sum(), 50), "|k", ms=6)
        ax.plot(b.spike_times_ms[b.spike_times_ms < lim], np.full((b.spike_times_ms < lim).sum(), 45), "|",
                color="tab:red", ms=6)
        ax.set_ylabel("V (mV)")
    return _finish_time_stack(fig, axes, path, plt, title)


def plot_sites(path, truth, pred, title: str = "", max_ms: float | None = None) -> Path:
    """One trial of a multi-compartment cell: soma, each dendritic site (``v_dend_mV`` rows, mV)
    and ``ica`` (mA/cm2) where present; NEURON black, surrogate red."""
    plt = _plt()
    rows = [("soma V (mV)", truth.v_mV, shown_v(pred))]
    if getattr(pred, "v_dend_mV", None) is not None and getattr(truth, "v_dend_mV", None) is not None:
        sites = (truth.meta or {}).get("sites") or [{}] * len(pred.v_dend_mV)
        for k in range(len(pred.v_dend_mV)):
            lbl = f"{sites[k].get('target_dist_um', '?')} um" if k < len(sites) else f"site {k}"
            rows.append((f"dend {lbl} (mV)", truth.v_dend_mV[k], pred.v_dend_mV[k]))
    if getattr(pred, "ica", None) is not None and getattr(truth, "ica", None) is not None:
        rows.append(("ica (mA/cm2)", truth.ica, pred.ica))
    fig, axes = plt.subplots(len(rows), 1, figsize=(11, 1.8 * len(rows) + 0.6), sharex=True, squeeze=False)
    t = truth.t_ms
    m = t < (max_ms if max_ms is not None else np.inf)
    for ax, (lbl, a, b) in zip(axes[:, 0], rows):
        ax.plot(t[m], np.asarray(a)[m], color="k", lw=0.8, label="NEURON")
        ax.plot(t[m], np.asarray(b)[m], color="tab:red", lw=0.8, alpha=0.8, label="surrogate")
        ax.set_ylabel(lbl, fontsize=8)
    return _finish_time_stack(fig, axes, path, plt, title)


def plot_speed_vs_n(path, rows: list[dict], title: str = "") -> Path:
    """Wall time of ``sim_ms`` of activity vs the number of cells, log-log.

    Args:
        rows: dicts with ``simulator`` ('NEURON' or a surrogate label), ``n_cells``, ``wall_s`` and
            ``measured`` (False: extrapolated; drawn dashed with open markers).
    """
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.2, 4.4))
    colors = {}
    for sim in dict.fromkeys(r["simulator"] for r in rows):
        color = colors.setdefault(sim, f"C{len(colors)}")
        pts = sorted((r for r in rows if r["simulator"] == sim), key=lambda r: r["n_cells"])
        n = [r["n_cells"] for r in pts]
        w = [r["wall_s"] for r in pts]
        ax.plot(n, w, "-", color=color, lw=0.8, alpha=0.5)
        for r in pts:
            ax.plot(r["n_cells"], r["wall_s"], "o", color=color, mfc=color if r["measured"] else "white", ms=6)
        ax.plot([], [], "o-", color=color, label=sim)
    ax.plot([], [], "o", color="grey", mfc="white", label="extrapolated (linear in N)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("cells")
    ax.set_ylabel("wall time (s)")
    ax.grid(True, which="both", lw=0.3, alpha=0.5)
    ax.legend(fontsize=7)
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return _save(fig, path, plt)


def plot_scatter(path, truth: Sequence, pred: Sequence, title: str = "") -> Path:
    """Predicted vs true voltage (all samples, 2-D histogram)."""
    plt = _plt()
    a = np.concatenate([t.v_mV for t in truth])
    b = np.concatenate([p.v_mV for p in pred])
    fig, ax = plt.subplots(figsize=(4.2, 4))
    lo, hi = min(a.min(), b.min()), max(a.max(), b.max())
    ax.hist2d(a, b, bins=120, range=[[lo, hi], [lo, hi]], cmap="Greys", norm=_lognorm())
    ax.plot([lo, hi], [lo, hi], "r--", lw=0.7)
    ax.set_xlabel("NEURON V (mV)")
    ax.set_ylabel("surrogate V (mV)")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return _save(fig, path, plt)


def plot_stability(path, long: dict) -> Path:
    """Explained variance per segment over a long run, plus the last second of both traces."""
    plt = _plt()
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(10, 5))
    a1.plot(np.asarray(long["t_mid_ms"]) / 1000, long["ev"], "o-", color="k")
    a1.set_ylim(min(0.0, float(np.nanmin(long["ev"]))), 1.02)
    a1.set_xlabel("time (s)")
    a1.set_ylabel("variance explained")
    tr, pr = long["truth"], long["pred"]
    m = tr.t_ms >= tr.t_ms[-1] - 1000
    a2.plot(tr.t_ms[m], tr.v_mV[m], "k", lw=0.8, label="NEURON")
    a2.plot(pr.t_ms[m], shown_v(pr)[m], color="tab:red", lw=0.8, label="surrogate")
    a2.set_xlabel("time (ms)")
    a2.set_ylabel("V (mV)")
    a2.legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, path, plt)


def plot_compare(path, rows: list[dict]) -> Path:
    """Accuracy vs cost of architectures (variance explained vs FLOPs per cell-step)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    for r in rows:
        ax.scatter(r["flops_per_step"], r.get("variance_explained_active", np.nan), s=30)
        ax.annotate(r["arch"], (r["flops_per_step"], r.get("variance_explained_active", np.nan)), fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("FLOPs per cell-step")
    ax.set_ylabel("variance explained (free-running, active)")
    fig.tight_layout()
    return _save(fig, path, plt)


def _lognorm():
    from matplotlib.colors import LogNorm

    return LogNorm()


def _finish_time_stack(fig, axes, path, plt, title: str) -> Path:
    """Legend on the top panel, time axis on the bottom one, title; save (stacked NEURON/surrogate plots)."""
    axes[0, 0].legend(loc="upper right", fontsize=7)
    axes[-1, 0].set_xlabel("time (ms)")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path, plt)


def _save(fig, path, plt, dpi: int = 110) -> Path:
    """Write the figure atomically (its format from the file suffix, PNG without one) and close it."""
    from neurosurrogate.data.io import atomic_path

    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format=path.suffix.lstrip(".").lower() or "png")
    plt.close(fig)
    return path


def plot_learning_curve(path, rows: list[dict], title: str = "") -> Path:
    """Fidelity against training data: ``rows`` of {simulated_s, metrics: {name: value}} (one per size);
    spike precision/recall (left) and voltage correlations (right) against simulated seconds (log)."""
    plt = _plt()
    x = [r["simulated_s"] for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    panels = (
        (("precision_10ms", "spike precision ±10 ms"), ("recall_10ms", "recall ±10 ms"),
         ("precision_2ms", "precision ±2 ms"), ("recall_2ms", "recall ±2 ms")),
        (("pearson_r_sub", "soma r (subthreshold)"), ("pearson_r_away5ms", "soma r (>5 ms from spikes)"),
         ("v_dend0_mV_pearson_r", "dendrite 400 µm r"), ("v_dend1_mV_pearson_r", "dendrite 700 µm r")),
    )
    for ax, keys in zip(axes, panels):
        for key, label in keys:
            ax.plot(x, [r["metrics"].get(key, float("nan")) for r in rows], "o-", label=label)
        ax.set_xscale("log")
        ax.set_xlabel("training data, simulated seconds")
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[0].set_title("spikes (free-running)")
    axes[1].set_title("voltage correlation")
    if title:
        fig.suptitle(title, fontsize=10)
    return _save(fig, path, plt)


def plot_heatmaps(path, maps: dict, x: str, y: str, title: str = "") -> Path:
    """One heat map per measure: ``maps[name] = (x values, y values, Z[y, x])``; PNG."""
    plt = _plt()
    n = len(maps)
    fig, axes = plt.subplots(1, n, figsize=(4.2 * n, 3.8), squeeze=False)
    for ax, (name, (xs, ys, Z)) in zip(axes[0], maps.items()):
        dx = (xs[1] - xs[0]) / 2 if xs.size > 1 else 0.5
        dy = (ys[1] - ys[0]) / 2 if ys.size > 1 else 0.5
        im = ax.imshow(Z, origin="lower", aspect="auto", cmap="viridis",
                       extent=(xs[0] - dx, xs[-1] + dx, ys[0] - dy, ys[-1] + dy))
        fig.colorbar(im, ax=ax, shrink=0.85)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel(x, fontsize=8)
        ax.set_ylabel(y, fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path, plt)


def plot_circuit(path, runs: dict, n_cells: int, stimulus_ms: float, title: str = "") -> Path:
    """Spike rasters of circuit runs side by side (``runs[label] = CircuitRun``); PNG."""
    plt = _plt()
    n = len(runs)
    fig, axes = plt.subplots(2, n, figsize=(5.0 * n, 5.2), squeeze=False, sharex=True,
                             gridspec_kw={"height_ratios": [3, 1]})
    for k, (label, run) in enumerate(runs.items()):
        ax = axes[0, k]
        ax.plot(run.spike_t_ms, run.spike_cell, "|", ms=2.5, color="k")
        ax.axvline(stimulus_ms, color="tab:red", lw=0.8)
        ax.set_ylim(-1, n_cells)
        ax.set_title(label, fontsize=9)
        ax.set_ylabel("cell")
        edges = np.arange(0, run.duration_ms + 1, 2.0)
        cnt, _ = np.histogram(run.spike_t_ms, edges)
        axes[1, k].bar(edges[:-1], cnt / n_cells / 0.002, width=2.0, align="edge", color="0.3")
        axes[1, k].set_ylabel("rate (Hz)")
        axes[1, k].set_xlabel("time (ms)")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path, plt)


def plot_crosscheck(path, data: dict, n_cells: int, stimulus_ms: float) -> Path:
    """Surrogate vs NEURON circuits, one row per setting: rasters, population rate, PSTH, cell rates; PNG.

    ``data[label]`` holds ``raster`` (surrogate run, NEURON run), ``pop_rate`` (t, surrogate, NEURON),
    ``psth`` (lag, surrogate, NEURON) and ``cell_rates`` (surrogate, NEURON) arrays.
    """
    plt = _plt()
    rows = len(data)
    fig, axes = plt.subplots(rows, 5, figsize=(20, 3.0 * rows), squeeze=False)
    colors = {"surrogate": "tab:orange", "NEURON": "k"}
    for i, (label, d) in enumerate(data.items()):
        for j, (run, name) in enumerate(zip(d["raster"], ("surrogate", "NEURON"))):
            ax = axes[i, j]
            ax.plot(run.spike_t_ms, run.spike_cell, "|", ms=2, color=colors[name])
            ax.axvline(stimulus_ms, color="tab:red", lw=0.6)
            ax.set_ylim(-1, n_cells)
            ax.set_title(f"{label}\n{name}, one instance", fontsize=8)
            ax.set_ylabel("cell", fontsize=8)
        t, s, nn = d["pop_rate"]
        ax = axes[i, 2]
        ax.step(t, s, where="post", color=colors["surrogate"], label="surrogate")
        ax.step(t, nn, where="post", color=colors["NEURON"], label="NEURON", lw=0.8)
        ax.set_title("population rate (5 ms bins, mean of instances)", fontsize=8)
        ax.set_ylabel("Hz per cell", fontsize=8)
        ax.legend(fontsize=7)
        lag, s, nn = d["psth"]
        ax = axes[i, 3]
        ax.step(lag, s, where="post", color=colors["surrogate"])
        ax.step(lag, nn, where="post", color=colors["NEURON"], lw=0.8)
        ax.set_title("PSTH around the stimulus (1 ms bins)", fontsize=8)
        ax.set_xlabel("ms after stimulus", fontsize=8)
        rs, rn = d["cell_rates"]
        ax = axes[i, 4]
        bins = np.linspace(0, max(rs.max(), rn.max(), 1.0) + 1e-9, 30)
        ax.hist(rs, bins, histtype="step", color=colors["surrogate"], density=True)
        ax.hist(rn, bins, histtype="step", color=colors["NEURON"], density=True)
        ax.set_title("per-cell rate over the run", fontsize=8)
        ax.set_xlabel("Hz", fontsize=8)
    for ax in axes[-1, :2]:
        ax.set_xlabel("time (ms)", fontsize=8)
    axes[-1, 2].set_xlabel("time (ms)", fontsize=8)
    fig.tight_layout()
    return _save(fig, path, plt)


def plot_raster_overlay(path, panels: list[tuple[str, object, object]], stimulus_ms: float,
                        neuron_label: str = "NEURON (same input)") -> Path:
    """One panel per ``(title, neuron_run, surrogate_run)``: both rasters of the same cells overlaid
    (NEURON black, surrogate orange, offset by 0.4 rows); PNG."""
    plt = _plt()
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 4.2), sharey=True, squeeze=False)
    for ax, (title, nrn, sur) in zip(axes[0], panels):
        ax.plot(nrn.spike_t_ms, nrn.spike_cell, "|", color="k", ms=4, label=neuron_label)
        ax.plot(sur.spike_t_ms, sur.spike_cell + 0.4, "|", color="tab:orange", ms=4, label="surrogate")
        ax.axvline(stimulus_ms, color="tab:red", lw=0.8)
        ax.set_xlim(0, nrn.duration_ms)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("time (ms)")
    axes[0, 0].set_ylabel("cell")
    axes[0, 0].legend(loc="upper left", fontsize=7)
    fig.tight_layout()
    return _save(fig, path, plt)


def plot_history_kernels(path, lags_ms, curves) -> Path:
    """Post-spike kernels of spike-history models (``gru_history``): ``curves`` of (label, added to
    the spike logit, added to the soma voltage in mV), each by ``lags_ms`` after the spike's bin."""
    plt = _plt()
    fig, (ax_l, ax_v) = plt.subplots(1, 2, figsize=(10, 3.6))
    for label, logit, v_mV in curves:
        ax_l.plot(lags_ms, logit, label=label)
        ax_v.plot(lags_ms, v_mV, label=label)
    ax_l.set(xlabel="lag after the spike's bin (ms)", ylabel="added to the spike logit", title="spike probability")
    ax_v.set(xlabel="lag after the spike's bin (ms)", ylabel="added to the soma voltage (mV)", title="soma voltage")
    for ax in (ax_l, ax_v):
        ax.axhline(0, color="0.7", lw=0.8)
    ax_l.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path, plt)


def plot_synapse_efficacy(path, panels: list) -> Path:
    """One extra event per synapse, surrogate against NEURON (``benchmarks/l5pc_synapse_efficacy.py``):
    one panel per context, ``(title, (neuron, surrogate), kinds, dist_um, changed)`` with the soma
    change's integral per synapse (mV ms), its kind (``exc``/``inh``), its path distance from the
    soma (um) and whether its event changed a NEURON spike (those are left out)."""
    plt = _plt()
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 4), squeeze=False)
    for ax, (title, (a, b), kinds, dist, changed) in zip(axes[0], panels):
        ok = ~changed
        sc = ax.scatter(a[ok], b[ok], c=dist[ok], s=12, cmap="viridis",
                        marker="o", edgecolors=np.where(kinds[ok] == "exc", "none", "red"))
        lo, hi = min(a[ok].min(), b[ok].min()), max(a[ok].max(), b[ok].max())
        ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
        ax.set_xlabel("NEURON: soma change, mV ms")
        ax.set_ylabel("surrogate: soma change, mV ms")
        ax.set_title(title, fontsize=9)
        fig.colorbar(sc, ax=ax, label="path distance from soma, µm")
    fig.suptitle("one extra event per synapse (red edge: inhibitory)", fontsize=10)
    fig.tight_layout()
    return _save(fig, path, plt)


def plot_onset_averages(path, lags_ms, panels: list) -> Path:
    """Soma voltage around the cell's episode onsets (``scripts/hay_onsets.py``): one panel per model (or
    perturbed cell; four per row), ``(title, {"found": (cell, model), "missed": (cell, model)})`` with the
    mean clipped voltages (mV) by ``lags_ms`` relative to the onset's bin; the cell solid, the model dashed."""
    plt = _plt()
    ncol = min(4, len(panels))
    nrow = -(-len(panels) // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.6 * ncol, 3.2 * nrow), squeeze=False, sharey=True)
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    for ax, (title, curves) in zip(axes.flat, panels):
        for (name, (cell, model)), color in zip(curves.items(), ("tab:blue", "tab:red")):
            ax.plot(lags_ms, cell, color=color, label=f"cell, {name}")
            ax.plot(lags_ms, model, color=color, ls="--", label=f"model, {name}")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("time from the onset's bin (ms)")
    axes[0, 0].set_ylabel("soma voltage, clipped (mV)")
    axes[0, 0].legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    return _save(fig, path, plt)


def plot_reliability(path, rows: list[dict], truth_label: str) -> Path:
    """Spike F1 at +-10 ms against subthreshold soma r of perturbed NEURON cells and surrogates
    (``benchmarks/l5pc_spike_reliability.py``; rows whose condition starts with "surrogate" as squares),
    both scored against ``truth_label``; the issue's targets (F1 0.9, r 0.95) dashed."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for r in rows:
        sur = r["condition"].startswith("surrogate")
        ax.plot(r["r_sub"], r["f1_10ms"], "s" if sur else "o", color="C3" if sur else "C0")
        ax.annotate(r["condition"], (r["r_sub"], r["f1_10ms"]), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.axhline(0.9, color="0.6", ls="--", lw=0.8)
    ax.axvline(0.95, color="0.6", ls="--", lw=0.8)
    ax.set_xlabel(f"subthreshold soma r vs {truth_label}")
    ax.set_ylabel(f"spike F1 at +-10 ms vs {truth_label}")
    ax.set_title("hay-l5pc: spike fidelity of perturbed NEURON cells", fontsize=9)
    fig.tight_layout()
    return _save(fig, path, plt, dpi=120)


def plot_voltage_error(path, truth: Sequence, pred: Sequence, v_clip_mV: float) -> Path:
    """The first three trials (``benchmarks/l5pc_voltage_error.py``): NEURON's and the surrogate's clipped
    soma voltage with both spike trains, and below each the error with its 51 ms moving mean (mV)."""
    from scipy.ndimage import uniform_filter1d

    plt = _plt()
    n = min(3, len(truth))
    fig, ax = plt.subplots(2 * n, 1, figsize=(14, 3.2 * n), sharex=True, squeeze=False)
    for k in range(n):
        a, b = np.minimum(truth[k].v_mV, v_clip_mV), np.minimum(pred[k].v_mV, v_clip_mV)
        t = np.arange(a.size)
        top, low = ax[2 * k, 0], ax[2 * k + 1, 0]
        top.plot(t, a, "k", lw=0.6, label="NEURON")
        top.plot(t, b, "r", lw=0.6, label="surrogate")
        for s in truth[k].spike_times_ms:
            top.axvline(s, ymin=0.92, color="k", lw=0.8)
        for s in pred[k].spike_times_ms:
            top.axvline(s, ymin=0.84, ymax=0.92, color="r", lw=0.8)
        top.set_ylabel(f"trial {k}\nsoma mV (clipped)")
        low.plot(t, b - a, "b", lw=0.5, label="error")
        low.plot(t, uniform_filter1d(b - a, 51), "m", lw=1.2, label="error, 51 ms mean")
        low.axhline(0, color="k", lw=0.5)
        low.set_ylabel("pred - true, mV")
    ax[0, 0].legend(loc="lower right", fontsize=8)
    ax[1, 0].legend(loc="lower right", fontsize=8)
    ax[-1, 0].set_xlabel("time, ms")
    fig.tight_layout()
    return _save(fig, path, plt, dpi=80)


def plot_spike_confidence(path, tables: dict[str, list[dict]]) -> Path:
    """What a spike's confidence is worth, per data set: left, the fraction of predicted spikes
    matched by the cell in each confidence bin, against the bin's mean confidence (a calibrated
    probability would lie on the diagonal); right, precision against recall when only the spikes
    of at least each bin's lower edge are kept (rows of
    :func:`~neurosurrogate.evaluate.metrics.spike_confidence_table`)."""
    plt = _plt()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(8.4, 3.6))

    def num(v):  # an empty bin: nan in memory, null once read back from JSON
        return np.nan if v is None else v

    for i, (name, rows) in enumerate(tables.items()):
        a1.plot([num(r["conf_mean"]) for r in rows], [num(r["matched_fraction"]) for r in rows], "o-",
                label=f"{name} ({sum(r['n_pred'] for r in rows):.0f} spikes)")
        a2.plot([r["recall_at_least"] for r in rows], [r["precision_at_least"] for r in rows], "o-", label=name)
        for r in rows if i == 0 else []:  # the edges once: they are the same for every data set
            a2.annotate(f"≥{r['conf_from']:.2f}", (r["recall_at_least"], r["precision_at_least"]), fontsize=7,
                        textcoords="offset points", xytext=(4, -10))
    a1.plot([0, 1], [0, 1], ":", color="grey", lw=0.8)
    a1.set(xlim=(0, 1), ylim=(0, 1.05), xlabel="spike confidence (mean in bin)", ylabel="fraction matched (±10 ms)")
    a2.set(xlim=(0, 1), ylim=(0, 1.05), xlabel="recall (±10 ms)", ylabel="precision (±10 ms)")
    a2.set_title("keeping spikes of confidence ≥ …", fontsize=9)
    a1.legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, path, plt)


def plot_prediction(path, tr, title: str = "") -> Path:
    """One surrogate prediction: the soma voltage (with its spikes marked and coloured by the
    model's confidence) above the spike probability of every 1-ms bin and the decoding threshold,
    and the dendritic voltages where the model predicts them. ``tr.meta`` holds ``spike_prob``,
    ``spike_confidence`` and ``spike_threshold`` (as :meth:`SurrogateModel.predict` gives)."""
    plt = _plt()
    dend = getattr(tr, "v_dend_mV", None)
    n = 3 if dend is not None else 2
    fig, axes = plt.subplots(n, 1, figsize=(11, 1.7 * n + 0.8), sharex=True, layout="constrained",
                             gridspec_kw={"height_ratios": [2, 1, 1.3][:n]})
    ax = axes[0]
    ax.plot(tr.t_ms, shown_v(tr), lw=0.7, color="k")
    st, conf = tr.spike_times_ms, np.asarray(tr.meta.get("spike_confidence", np.ones(len(tr.spike_times_ms))))
    if st.size:
        sc = ax.scatter(st, np.full(st.size, float(np.max(shown_v(tr))) + 3.0), c=conf, vmin=0, vmax=1,
                        cmap="viridis", marker="v", s=18)
        fig.colorbar(sc, ax=list(axes), pad=0.01, fraction=0.03, label="spike confidence")  # keeps the x axes aligned
    ax.set_ylabel("soma V (mV)")
    ax.set_title(f"{st.size} spikes", fontsize=8, loc="left")
    ax = axes[1]
    ax.plot(tr.t_ms, tr.meta["spike_prob"], lw=0.7, color="tab:purple")
    thr = tr.meta.get("spike_threshold")
    if thr is not None:
        ax.axhline(thr, color="grey", ls=":", lw=0.8, label=f"threshold {thr:g}")
        ax.legend(fontsize=7, loc="upper right")
    ax.set(ylim=(0, 1), ylabel="spike prob.\n(per ms)")
    if dend is not None:
        for k, v in enumerate(dend):
            site = (tr.meta.get("sites") or [{}] * len(dend))[k]
            dist = site.get("target_dist_um") if isinstance(site, dict) else None
            axes[2].plot(tr.t_ms, v, lw=0.7, label=f"site {k}" + (f" ({dist:g} µm)" if dist is not None else ""))
        axes[2].set_ylabel("dend. V (mV)")
        axes[2].legend(fontsize=7, loc="upper right")
    axes[-1].set_xlabel("time (ms)")
    if title:
        fig.suptitle(title, fontsize=10)
    return _save(fig, path, plt)
