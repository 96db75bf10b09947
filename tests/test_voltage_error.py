"""The analysis of benchmarks/l5pc_voltage_error.py on traces whose answer is known by construction."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from conftest import load_module

ve = load_module("benchmarks/l5pc_voltage_error.py")

N_MS = 3000


def _slow(rng, n=N_MS, w=101):
    from scipy.ndimage import uniform_filter1d

    return uniform_filter1d(rng.standard_normal(n), w) * 10.0


def _spikes(rng, rate_hz=8.0):
    return np.sort(rng.choice(np.arange(20, N_MS - 20), int(rate_hz * N_MS / 1000), replace=False)).astype(float)


def test_spike_trace_is_a_decaying_sum_of_spikes():
    x = ve.spike_trace(np.array([10.3, 10.9, 50.0, -3.0, N_MS + 5.0]), 100, tau_ms=20.0)
    assert x[:10].sum() == 0 and x[10] == 2.0  # two spikes in bin 10, those outside ignored
    assert x[30] == pytest.approx(2.0 * np.exp(-1.0))
    assert x[50] == pytest.approx(2.0 * np.exp(-2.0) + 1.0)


@pytest.mark.parametrize("follows_own_spikes", [True, False])
def test_history_fit_tells_a_model_that_carries_its_own_after_effects(follows_own_spikes):
    rng = np.random.default_rng(0)
    truth, pred = [], []
    for _ in range(6):
        common = -68.0 + _slow(rng) * 0.3
        st, sp = _spikes(rng), _spikes(rng)
        v_true = common - 2.0 * ve.spike_trace(st, N_MS)  # -2 mV per unit of the spike trace
        v_pred = common - (2.0 * ve.spike_trace(sp, N_MS) if follows_own_spikes else 0.0)
        truth.append(SimpleNamespace(v_mV=v_true, spike_times_ms=st))
        pred.append(SimpleNamespace(v_mV=v_pred, spike_times_ms=sp))
    h = ve.analyse(truth, pred, v_clip_mV=-55.0, skip_ms=300)["history"]
    assert h["coef_true_mV"] == pytest.approx(2.0, abs=0.05)
    assert h["coef_pred_mV"] == pytest.approx(-2.0 if follows_own_spikes else 0.0, abs=0.05)
    assert h["r2"] > 0.99 and h["r_true"] > 0.3
    assert (h["r_pred"] < -0.3) if follows_own_spikes else (abs(h["r_pred"]) < 0.1)


def test_bands_add_up_and_shrinkage_is_the_slope():
    rng = np.random.default_rng(1)
    truth, pred = [], []
    for _ in range(4):
        v = -65.0 + _slow(rng, w=31)
        truth.append(SimpleNamespace(v_mV=v, spike_times_ms=np.zeros(0)))
        pred.append(SimpleNamespace(v_mV=v.mean() + 0.5 * (v - v.mean()), spike_times_ms=np.zeros(0)))
    row = ve.analyse(truth, pred, v_clip_mV=-40.0, skip_ms=0)
    assert row["slope_raw"] == pytest.approx(0.5, abs=1e-6) and row["r_raw"] == pytest.approx(1.0)
    assert row["slope_51ms"] == pytest.approx(0.5, abs=1e-6)
    assert row["trial_mean_error_rms_mV"] < 1e-9  # no offset: the error has zero mean in each trial
    # parts below / between / above the filter scales sum back to the error
    e = pred[0].v_mV - truth[0].v_mV
    mask = np.ones(e.size, bool)
    bands = ve.error_bands(e, mask)
    assert len(bands) == 5 and all(b >= 0 for b in bands)
    assert sum(bands) == pytest.approx(np.mean(e ** 2), rel=0.5)  # box filters: roughly, not exactly orthogonal


def test_no_subthreshold_samples_is_a_clear_error():
    v = np.full(10, 0.0)
    tr = SimpleNamespace(v_mV=v, spike_times_ms=np.arange(10.0))
    with pytest.raises(ValueError, match="no trial has subthreshold samples"):
        ve.analyse([tr], [tr], v_clip_mV=-55.0, skip_ms=0)


def test_the_benchmark_figures_are_written_by_plotting(tmp_path):
    """The two hay benchmarks draw through neurosurrogate.plotting (the only matplotlib import), atomically."""
    from neurosurrogate.plotting import plot_reliability, plot_voltage_error

    rng = np.random.default_rng(1)
    tr = [SimpleNamespace(v_mV=-65.0 + _slow(rng), spike_times_ms=_spikes(rng)) for _ in range(2)]
    path = plot_voltage_error(tmp_path / "err.png", tr, tr[::-1], -55.0)
    rows = [{"condition": "none", "r_sub": 1.0, "f1_10ms": 1.0},
            {"condition": "surrogate (hay-l5pc)", "r_sub": 0.9, "f1_10ms": 0.75}]
    path2 = plot_reliability(tmp_path / "rel.png", rows, "the reference")
    for p in (path, path2):
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(x.name for x in tmp_path.iterdir()) == ["err.png", "rel.png"]  # no temporary file left


def test_plotting_is_the_only_module_that_imports_matplotlib():
    """The house rule (DESIGN: plots live in neurosurrogate/plotting.py, imported lazily): no package module,
    benchmark or script imports matplotlib itself (two benchmarks did for several sessions)."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    pattern = re.compile(r"^\s*(import matplotlib|from matplotlib)", re.M)
    files = [p for d in ("src", "benchmarks", "scripts", "examples") for p in (root / d).rglob("*.py")]
    assert len(files) > 20
    offenders = [str(p.relative_to(root)) for p in files
                 if p.name != "plotting.py" and pattern.search(p.read_text(encoding="utf-8"))]
    assert offenders == []
