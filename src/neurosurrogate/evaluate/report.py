"""Evaluation reports: Markdown table + PNG figures."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from neurosurrogate.data.io import atomic_path

TABLE_KEYS = [
    ("variance_explained", "VE"), ("pearson_r", "r"), ("variance_explained_sub", "VE sub"),
    ("pearson_r_sub", "r sub"), ("precision_10ms", "P ±10"), ("recall_10ms", "R ±10"),
    ("precision_2ms", "P ±2"), ("recall_2ms", "R ±2"), ("median_abs_shift_ms", "median abs shift ms"),
    ("rate_true_Hz", "rate true Hz"), ("rate_pred_Hz", "rate pred Hz"),
]


def _column_label(key: str) -> str | None:
    """Label of a multi-compartment metric column (``pearson_r_away5ms``, ``v_dend0_mV_pearson_r``,
    ``ica_pearson_r``), or None for other keys."""
    import re

    m = re.fullmatch(r"pearson_r_away(.+)ms", key)
    if m:
        return f"r soma away ±{m.group(1)}"
    m = re.fullmatch(r"v_dend(\d+)_mV_pearson_r", key)
    if m:
        return f"r dend{m.group(1)}"
    return "r ica" if key == "ica_pearson_r" else None


def _cell(v) -> str:
    """A table entry: three decimals, or n/a for a metric without data (None or nan)."""
    return "n/a" if v is None or (isinstance(v, float) and np.isnan(v)) else f"{v:.3f}"


def metrics_table(rows: dict[str, dict[str, float]]) -> str:
    """A Markdown table, one row per dataset / regime; multi-compartment columns (soma r away
    from spikes, r per dendritic site, r of ica) are added when some row has them."""
    keys = list(TABLE_KEYS)
    for m in rows.values():
        for k in m:
            lbl = _column_label(k)
            if lbl is not None and (k, lbl) not in keys:
                keys.insert(4 + sum(_column_label(x) is not None for x, _ in keys), (k, lbl))
    head = "| data | " + " | ".join(lbl for _, lbl in keys) + " |"
    sep = "|---" * (len(keys) + 1) + "|"
    lines = [head, sep]
    for name, m in rows.items():
        vals = [_cell(m.get(k)) for k, _ in keys]
        lines.append(f"| {name} | " + " | ".join(vals) + " |")
    return "\n".join(lines)


def confidence_table(rows: list[dict[str, float]]) -> str:
    """Markdown of :func:`~neurosurrogate.evaluate.metrics.spike_confidence_table` rows."""
    lines = ["Predicted spikes by confidence (their peak 1-ms spike probability), matched within ±10 ms:", "",
             "| confidence | spikes | matched | keeping conf ≥ lower edge: spikes | precision | recall |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['conf_from']:.2f}–{r['conf_to']:.2f} | {r['n_pred']:.0f} | "
                     f"{_cell(r['matched_fraction'])} | {r['n_pred_at_least']:.0f} | "
                     f"{_cell(r['precision_at_least'])} | {_cell(r['recall_at_least'])} |")
    return "\n".join(lines)


def write_report(out_dir: Path, title: str, evaluations: list, long: dict | None = None, card: dict | None = None) -> Path:
    """Write ``report.md`` and PNGs (traces, scatter, long-run stability) into ``out_dir``."""
    from neurosurrogate.plotting import plot_overlay, plot_scatter, plot_sites, plot_spike_confidence, plot_stability

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = {e.name: e.metrics for e in evaluations}
    md = [f"# {title}", "", "Free-running from the model's resting state on held-out NEURON trials.", "",
          metrics_table(rows), ""]
    for e in evaluations:
        tag = e.name.replace(":", "_").replace("/", "_")
        # the most active trials show most
        order = np.argsort([-len(t.spike_times_ms) for t in e.truth])
        pick = [int(order[len(order) // 4])] if len(order) else []
        pick += [int(order[len(order) // 2])] if len(order) > 1 else []
        png = plot_overlay(out_dir / f"traces_{tag}.png", [e.truth[i] for i in pick], [e.pred[i] for i in pick],
                           title=f"{e.name}: NEURON (black) vs surrogate (red)", max_ms=1000)
        sc = plot_scatter(out_dir / f"scatter_{tag}.png", e.truth, e.pred, title=e.name)
        md += [f"## {e.name}", f"![traces]({png.name})", f"![scatter]({sc.name})", ""]
        p0 = e.pred[pick[0]] if pick else None
        if p0 is not None and (getattr(p0, "v_dend_mV", None) is not None or getattr(p0, "ica", None) is not None):
            sp = plot_sites(out_dir / f"sites_{tag}.png", e.truth[pick[0]], e.pred[pick[0]],
                            title=f"{e.name}: soma, dendrites, ica", max_ms=1000)
            md += [f"![sites]({sp.name})", ""]
        if e.extra.get("skip_ms"):
            md += [f"Scores leave out the first {e.extra['skip_ms']:g} ms of every trial.", ""]
        if e.extra.get("spike_confidence"):
            md += [confidence_table(e.extra["spike_confidence"]), ""]
    conf = {e.name: e.extra["spike_confidence"] for e in evaluations if e.extra.get("spike_confidence")}
    if any(r["n_pred"] for rows in conf.values() for r in rows):
        png = plot_spike_confidence(out_dir / "spike_confidence.png", conf)
        md += ["## Spike confidence", f"![spike confidence]({png.name})", ""]
    if long is not None:
        png = plot_stability(out_dir / "long_run.png", long)
        evs = np.asarray(long["ev"])
        md += ["## Long-run stability", f"{long['duration_ms'] / 1000:g} s of input, explained variance per second: "
               f"min {np.nanmin(evs):.3f}, mean {np.nanmean(evs):.3f}, last {evs[-1]:.3f}. "
               f"NEURON {long['wall_s_neuron']:.2f} s, surrogate {long['wall_s_surrogate']:.2f} s (one cell).",
               f"![long run]({png.name})", ""]
    if card:
        tr = card.get("training", {})
        md += ["## Model", f"architecture `{card.get('arch')}` {card.get('arch_params')}, "
               f"{card.get('parameters')} parameters, {card.get('flops_per_step')} FLOPs per cell-step; "
               f"trained {tr.get('steps')} steps in {tr.get('wall_time_s', 0) / 60:.1f} min on {tr.get('hardware')}."]
    path = out_dir / "report.md"
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(md) + "\n")
    return path


def card_markdown(name: str, card: dict) -> str:
    """A human-readable model card from the card stored in model.json."""
    tr = card.get("training", {})
    lines = [f"# Model card: {name}", "",
             f"* architecture: `{card.get('arch')}` {card.get('arch_params')}; {card.get('parameters')} parameters; "
             f"{card.get('flops_per_step')} FLOPs per cell-step (streaming)",
             f"* cell: `{card.get('cell', {}).get('name')}` (parameters in model.json)",
             f"* training: {tr.get('steps')} steps, {tr.get('wall_time_s', 0) / 60:.1f} min wall on {tr.get('hardware')} "
             f"({tr.get('device')}, {tr.get('torch_threads')} threads); best validation loss {tr.get('best_val_loss')}",
             "* training data (NEURON, this package's simulator):"]
    for d in card.get("data", []):
        lines.append(f"  * {d.get('n_trials')} trials x {d.get('duration_ms')} ms, protocol `{d.get('protocol')}` "
                     f"{d.get('protocol_options') or ''}, seed {d.get('seed')}, content hash `{d.get('content_hash')}`")
    cal = card.get("spike_threshold_calibration")
    if cal:
        lines.append(f"* spike threshold {cal['threshold']} (F1 at ±2 ms on validation {cal['val_f1_2ms']:.4f})")
    prov = card.get("provenance", {})
    lines.append(f"* code {prov.get('git_commit')}, torch {prov.get('torch_version')}, NEURON {prov.get('neuron_version')}, "
                 f"Python {prov.get('python_version')}")
    held = {k: v for k, v in card.get("heldout_metrics", {}).items() if k not in ("long_run", "scoring")}
    if held:
        lines += ["", "## Held-out fidelity (free-running from rest, unseen inputs)", "", metrics_table(held)]
        lr = card.get("heldout_metrics", {}).get("long_run")
        if lr:
            ev = np.asarray(lr["ev_per_s"], dtype=float)
            lines.append(f"\nLong run ({lr['duration_s']:g} s): explained variance per second min {np.nanmin(ev):.3f}, "
                         f"mean {np.nanmean(ev):.3f}.")
        data = card.get("heldout_data", {})
        if data:
            lines += ["", "Held-out data: " + "; ".join(
                f"{k}: `{v.get('protocol')}` {v.get('protocol_options') or ''} seed {v.get('seed')}, {v.get('n_trials')} trials"
                + (f", first {v['skip_ms']:g} ms not scored" if v.get("skip_ms") else "")
                for k, v in data.items())]
    notes = card.get("notes", [])
    if notes:
        lines += ["", "## Notes", ""] + [f"* {n}" for n in notes]
    return "\n".join(lines) + "\n"
