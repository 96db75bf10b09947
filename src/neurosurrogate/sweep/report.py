"""Sweep results -> what the paper reports: heat maps, means +- SD per setting, t-tests.

* ``heatmaps.png``: mean of each measure over the two chosen parameters
  (averaged over repeats and over any other swept parameter);
* ``settings.csv``: mean, SD and count of every measure per setting;
* ``stats.md``: for each named comparison, per measure: mean +- SD of both
  settings, Welch's two-sample t statistic and two-sided p value
  (``scipy.stats.ttest_ind(equal_var=False)``), and the counts.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from neurosurrogate.data.io import atomic_path
from neurosurrogate.network.measures import MEASURES

__all__ = ["ReportError", "compare_settings", "settings_table", "write_report"]

#: measures shown in heat maps and tests
REPORTED = ("instability", "immediate_response", "baseline_rate_Hz", "response_latency_ms")


class ReportError(ValueError):
    """The results do not contain what the report asks for."""


def settings_table(df, params):
    """Mean, SD and count of each measure per setting (a flat DataFrame)."""
    keys = list(params) if params else ["setting"]
    g = df.groupby(keys)[[m for m in MEASURES if m in df]]
    agg = g.agg(["mean", "std", "count"])
    agg.columns = [f"{m}_{s}" for m, s in agg.columns]
    return agg.reset_index()


def _select(df, values: dict, name: str):
    m = np.ones(len(df), dtype=bool)
    for k, v in values.items():
        if k not in df:
            raise ReportError(f"comparison {name!r}: the results have no column {k!r}")
        m &= np.isclose(df[k].to_numpy(dtype=float), float(v), rtol=1e-9, atol=1e-12)
    if not m.any():
        raise ReportError(f"comparison {name!r}: no run has {values} (values must be sweep settings)")
    return df[m]


def compare_settings(df, a: dict, b: dict, name: str = "comparison") -> list[dict]:
    """Per measure: mean +- SD of settings a and b, Welch t and p."""
    from scipy import stats

    A, B = _select(df, a, name), _select(df, b, name)
    rows = []
    for m in REPORTED:
        xa, xb = A[m].dropna().to_numpy(), B[m].dropna().to_numpy()
        if xa.size >= 2 and xb.size >= 2 and (xa.std() > 0 or xb.std() > 0):
            t, p = stats.ttest_ind(xa, xb, equal_var=False)
        else:
            t, p = float("nan"), float("nan")
        rows.append({"measure": m, "a_mean": xa.mean() if xa.size else np.nan, "a_sd": xa.std(ddof=1) if xa.size > 1
                     else np.nan, "n_a": xa.size, "b_mean": xb.mean() if xb.size else np.nan,
                     "b_sd": xb.std(ddof=1) if xb.size > 1 else np.nan, "n_b": xb.size, "t": float(t), "p": float(p)})
    return rows


def write_report(df, out_dir: str | Path, x: str | None, y: str | None, compare=(), params=(), title: str = "") -> dict:
    """Write heat maps, the per-setting table and the comparisons into ``out_dir``; returns the paths."""
    from neurosurrogate import plotting

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    table = settings_table(df, params)
    with atomic_path(out_dir / "settings.csv") as tmp:
        table.to_csv(tmp, index=False, float_format="%.6g")
    paths["settings"] = out_dir / "settings.csv"
    if x and y:
        for axis in (x, y):
            if axis not in df:
                raise ReportError(f"heat map axis {axis!r} is not a column of the results")
        maps = {}
        for m in REPORTED:
            piv = df.pivot_table(index=y, columns=x, values=m, aggfunc="mean")
            maps[m] = (piv.columns.to_numpy(float), piv.index.to_numpy(float), piv.to_numpy(float))
        paths["heatmaps"] = plotting.plot_heatmaps(out_dir / "heatmaps.png", maps, x, y, title)
    lines = [f"# {title or 'Sweep statistics'}", "",
             f"{len(df)} runs; Welch's two-sample t-test (two-sided) per measure.", ""]
    for c in compare:
        rows = compare_settings(df, c["a"], c["b"], c["name"])
        lines += [f"## {c['name']}", "", f"a = {c['a']}, b = {c['b']}", "",
                  "| measure | a: mean ± SD (n) | b: mean ± SD (n) | t | p |", "|---|---|---|---|---|"]
        for r in rows:
            lines.append(f"| {r['measure']} | {r['a_mean']:.3f} ± {r['a_sd']:.3f} ({r['n_a']}) | "
                         f"{r['b_mean']:.3f} ± {r['b_sd']:.3f} ({r['n_b']}) | {r['t']:.2f} | {r['p']:.2g} |")
        lines.append("")
    with atomic_path(out_dir / "stats.md") as tmp:
        tmp.write_text("\n".join(lines))
    paths["stats"] = out_dir / "stats.md"
    return paths
