"""The perturbations and bookkeeping of benchmarks/l5pc_spike_reliability.py (its NEURON runs are the
experiment itself, not a unit test)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import load_module

from neurosurrogate.inputs import EventTable

rel = load_module("benchmarks/l5pc_spike_reliability.py")
SCRIPT = Path(rel.__file__)


def _table(n: int = 4000, n_syn: int = 20, seed: int = 0) -> EventTable:
    rng = np.random.default_rng(seed)
    t = np.sort(rng.uniform(0, 500, n))
    return EventTable(t, rng.integers(0, n_syn, n), rng.uniform(0.5, 3.0, n))


def test_conditions_parse_or_name_the_problem():
    assert rel.parse_condition("none") == ("none", 0.0)
    assert rel.parse_condition(" steady_start") == ("steady_start", 0.0)
    assert rel.parse_condition("jitter_ms:0.3") == ("jitter_ms", 0.3)
    assert rel.parse_condition("dt_ms:0.0125") == ("dt_ms", 0.0125)
    for bad, what in [("wobble:1", "unknown perturbation"), ("jitter_ms", "numeric size"),
                      ("dt_ms:0.03", "divide 1 ms"),
                      ("event_weight:-0.1", "> 0"), ("none:1", "takes no size"), ("synapse_weight:nan", "> 0")]:
        with pytest.raises(ValueError, match=what):
            rel.parse_condition(bad)


def test_perturbations_change_what_they_name_and_nothing_else():
    ev, rng = _table(), np.random.default_rng(1)
    w = rel.perturb(ev, "event_weight", 0.1, 20, rng)
    np.testing.assert_array_equal(w.t_ms, ev.t_ms)
    np.testing.assert_array_equal(w.synapse, ev.synapse)
    ratio = w.weight_nS / ev.weight_nS
    assert 0.08 < ratio.std() < 0.12 and abs(ratio.mean() - 1) < 0.01
    s = rel.perturb(ev, "synapse_weight", 0.1, 20, rng)
    ratio = s.weight_nS / ev.weight_nS
    for j in range(20):  # one factor per synapse for the whole trial
        assert np.ptp(ratio[ev.synapse == j]) < 1e-12
    assert np.unique(ratio.round(12)).size == 20
    j = rel.perturb(ev, "jitter_ms", 0.3, 20, rng)
    assert np.all(np.diff(j.t_ms) >= 0) and j.t_ms.min() >= 0
    assert sorted(zip(j.synapse, j.weight_nS)) == sorted(zip(ev.synapse, ev.weight_nS))  # events moved, not changed
    d = np.sort(j.t_ms) - np.sort(ev.t_ms)
    assert 0.0 < np.abs(d).mean() < 0.3


def test_previous_rows_are_reused_only_for_the_same_run(tmp_path):
    key = {"trials": [0, 1], "seed": 0, "skip_ms": 300.0, "v_clip_mV": -55.0, "reference": "/x"}
    rows = [{"condition": "none", "f1_10ms": 1.0, "rms_near_threshold_mV": 0.0, "by_gap": []},
            {"condition": "jitter_ms:1", "f1_10ms": 0.9, "by_gap": []},  # from before the error bands: redone
            {"condition": "jitter_ms:2", "f1_10ms": 0.8, "rms_near_threshold_mV": 2.0},  # before by_gap: redone
            {"condition": "surrogate hay-l5pc", "f1_10ms": 0.7, "rms_near_threshold_mV": 1.0, "by_gap": []}]
    path = tmp_path / "reliability.json"
    path.write_text(json.dumps({"key": key, "rows": rows}))
    assert list(rel.previous_rows(path, key)) == ["none"]  # surrogate rows are always recomputed
    assert rel.previous_rows(path, {**key, "seed": 1}) == {}
    assert rel.previous_rows(tmp_path / "missing.json", key) == {}
    path.write_text("{not json")
    assert rel.previous_rows(path, key) == {}


def test_noise_currents_have_their_size_and_time_scale():
    assert rel.parse_condition("slow_current:0.05") == ("slow_current", 0.05)
    for kind, tau in rel.NOISE_TAU_MS.items():
        x = rel.noise_current(kind, 0.2, 200_000, np.random.default_rng(3))
        assert x.shape == (200_000,)
        assert x.std() == pytest.approx(0.2, rel=0.05)
        lag = int(tau)  # autocorrelation at lag tau: exp(-1) for an OU process
        ac = np.corrcoef(x[:-lag], x[lag:])[0, 1]
        assert ac == pytest.approx(np.exp(-lag / tau), abs=0.03), kind
    # the two differ in time scale: the slow one barely changes within a millisecond, the fast one does
    slow = rel.noise_current("slow_current", 1.0, 50_000, np.random.default_rng(4))
    fast = rel.noise_current("fast_current", 1.0, 50_000, np.random.default_rng(4))
    assert np.abs(np.diff(slow)).mean() < 0.3 * np.abs(np.diff(fast)).mean()


def test_error_makeup_splits_slow_from_fast_error():
    rng = np.random.default_rng(0)
    t = np.arange(3000.0)
    truth = [-65.0 + 3 * np.sin(t / 40.0) + rng.standard_normal(3000) for _ in range(3)]
    slow_err = [v + 2.0 * np.sin(2 * np.pi * t / 1000.0) for v in truth]  # a 1 s wave: slow only
    fast_err = [v + 2.0 * (-1.0) ** t for v in truth]  # alternating every ms: fast only
    b = rel.error_makeup(truth, slow_err, 300, -55.0)
    assert b["rms_slow_mV"] == pytest.approx(2.0 / np.sqrt(2), rel=0.05) and b["rms_fast_mV"] < 0.05
    b = rel.error_makeup(truth, fast_err, 300, -55.0)
    assert b["rms_fast_mV"] == pytest.approx(2.0, rel=0.05) and b["rms_slow_mV"] < 0.1  # 0.04 + the trial ends
    # spikes are clipped in both: a spike the prediction also has costs nothing
    spiky = [v.copy() for v in truth]
    for v in spiky:
        v[1000] = 30.0
    both = rel.error_makeup(spiky, [v.copy() for v in spiky], 300, -55.0)
    assert (both["rms_slow_mV"], both["rms_fast_mV"], both["rms_near_threshold_mV"]) == (0.0, 0.0, 0.0)
    assert both["slope"] == pytest.approx(1.0)


def test_error_makeup_tells_shrinkage_from_independent_error():
    """Two predictions with the same RMS error: one shrinks the cell's excursions by 30 % (its error is
    largest where the cell is high, i.e. near threshold), the other adds an independent error."""
    rng = np.random.default_rng(1)
    truth = [-64.0 + 3.0 * rng.standard_normal(4000) for _ in range(3)]
    shrunk = [-64.0 + 0.7 * (v + 64.0) for v in truth]
    noisy = [v + 0.3 * 3.0 * rng.standard_normal(4000) for v in truth]
    a = rel.error_makeup(truth, shrunk, 0, -55.0)
    b = rel.error_makeup(truth, noisy, 0, -55.0)
    assert a["slope"] == pytest.approx(0.7, abs=0.02) and b["slope"] == pytest.approx(1.0, abs=0.02)
    total = lambda d: np.hypot(d["rms_slow_mV"], d["rms_fast_mV"])  # noqa: E731
    assert total(a) == pytest.approx(total(b), rel=0.15)
    # near threshold (the cell within 5 mV of -55 mV: 4+ mV above its mean) the shrinkage errs by >= 1.2 mV
    assert a["rms_near_threshold_mV"] > 1.2 * b["rms_near_threshold_mV"]


def test_bad_conditions_are_a_clear_error_before_any_simulation(tmp_path):
    proc = subprocess.run([sys.executable, str(SCRIPT), "--morphology", "x.asc", "--conditions", "jitter_ms:-1",
                           "--out", str(tmp_path / "out")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "--conditions" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()


def test_window_edges_parse_or_name_the_problem():
    assert rel.parse_windows("300,800,2000") == [300.0, 800.0, 2000.0]
    assert rel.parse_windows(" ") == []
    for bad in ("300", "800,300", "300,a", "300,800.5", "-1,300"):
        with pytest.raises(ValueError, match="--windows-ms"):
            rel.parse_windows(bad)


def test_steady_truth_replaces_the_recordings_and_keeps_the_events():
    from neurosurrogate.data.dataset import Dataset

    T = 50
    ev = [_table(100, 5, s) for s in range(2)]
    ref = Dataset(ev, np.zeros((2, T), np.float32), np.zeros((2, T), np.float32), np.zeros((2, T), np.float32),
                  [np.array([10.0]), np.array([])], {}, {}, [], {}, None, np.zeros((2, 2, T), np.float32), None, {})
    runs = [(np.full(T, -60.0 - i), np.full((2, T), -50.0 - i), np.array([5.0 + i, 20.0])) for i in range(2)]
    truth = rel.steady_truth(ref, runs)
    assert truth.events is ref.events
    np.testing.assert_array_equal(truth.v_mV[1], -61.0)
    np.testing.assert_array_equal(truth.v_dend_mV[0], -50.0)
    np.testing.assert_array_equal(truth.spike_times_ms[1], [6.0, 20.0])
    assert ref.v_mV.max() == 0.0  # the original is untouched


def test_unknown_truth_is_refused_by_the_parser(tmp_path):
    proc = subprocess.run([sys.executable, str(SCRIPT), "--morphology", "x.asc", "--truth", "neuron",
                           "--out", str(tmp_path / "out")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "--truth" in proc.stderr


def test_spike_pulses_aim_at_a_quiet_moment_or_an_isolated_spike():
    rng = np.random.default_rng(0)
    spikes = np.array([310.0, 420.0, 440.0, 465.5, 900.0])
    for _ in range(50):  # an extra spike's pulse lies >= QUIET_MS from every spike of the truth
        i, t = rel.spike_pulse("extra_spike", 2.0, 2000, spikes, 300.0, rng)
        assert 300 <= t < 300 + rel.PULSE_SPAN_MS and t == int(t)
        a, b = rel.EXTRA_PULSE_MS
        assert np.abs(spikes - (t + (a + b) / 2)).min() >= rel.QUIET_MS + (b - a) / 2
        assert np.flatnonzero(i).tolist() == list(range(int(t) + a, int(t) + b)) and np.all(i[i != 0] == 2.0)
    picks = {rel.spike_pulse("drop_spike", 1.5, 2000, spikes, 300.0, rng)[1] for _ in range(50)}
    assert picks == {310.0}  # 420, 440 and 465.5 lie within 30 ms of each other, 900 lies beyond the span
    i, t = rel.spike_pulse("drop_spike", 1.5, 2000, spikes, 300.0, rng)
    a, b = rel.DROP_PULSE_MS
    assert np.flatnonzero(i).tolist() == list(range(310 + a, 310 + b)) and np.all(i[i != 0] == -1.5)
    # no moment: no current and NaN (the trial is then left out)
    crowded = np.arange(250.0, 560.0, 20.0)
    for kind in rel.PULSE_KINDS:
        i, t = rel.spike_pulse(kind, 1.0, 2000, crowded, 300.0, rng)
        assert np.isnan(t) and not i.any()
    assert rel.parse_condition("extra_spike:2") == ("extra_spike", 2.0)


def test_pulse_effects_are_counted_next_to_the_pulse():
    truth = np.array([100.0, 400.0])
    assert rel.pulse_effective("extra_spike", 200.0, truth, [100.0, 199.5, 400.0])  # the ramp's ms before counts
    assert not rel.pulse_effective("extra_spike", 200.0, truth, [100.0, 215.0, 400.0])
    assert rel.pulse_spike_change("extra_spike", 200.0, truth, [100.0, 201.0, 206.0, 400.0]) == 2  # a burst
    assert rel.pulse_effective("drop_spike", 400.0, truth, [100.0, 407.0])
    assert not rel.pulse_effective("drop_spike", 400.0, truth, [100.0, 403.0])  # moved by 3 ms: not dropped
    assert rel.pulse_spike_change("drop_spike", 400.0, truth, [100.0]) == -1
    assert not rel.pulse_effective("extra_spike", float("nan"), truth, truth)


def test_the_hyperpolarising_control_lies_where_no_spike_is_and_changes_none():
    rng = np.random.default_rng(2)
    spikes = np.array([310.0, 700.0])
    a, b = rel.DROP_PULSE_MS
    for _ in range(30):
        i, t = rel.spike_pulse("hyperpolarise", 1.0, 2000, spikes, 300.0, rng)
        on = np.flatnonzero(i)
        assert on.tolist() == list(range(int(t), int(t) + b - a)) and np.all(i[on] == -1.0)
        assert np.abs(spikes - (t + (b - a) / 2)).min() >= rel.QUIET_MS + (b - a) / 2
    assert rel.pulse_effective("hyperpolarise", 400.0, spikes, spikes)
    assert not rel.pulse_effective("hyperpolarise", 400.0, spikes, [310.0, 420.0, 700.0])  # rebound spike
    assert rel.pulse_spike_change("hyperpolarise", 400.0, spikes, [310.0, 420.0, 700.0]) == 1


def test_pulse_rows_from_before_the_effective_split_are_redone(tmp_path):
    key = {"trials": [0], "seed": 0}
    rows = [{"condition": "extra_spike:2", "rms_near_threshold_mV": 1.0, "pulse_ms": [400.0], "by_gap": []},
            {"condition": "extra_spike:1", "rms_near_threshold_mV": 1.0, "pulse_ms": [400.0],
             "effective": {"n_trials": 1}, "by_gap": []}]
    path = tmp_path / "reliability.json"
    path.write_text(json.dumps({"key": key, "rows": rows}))
    assert list(rel.previous_rows(path, key)) == ["extra_spike:1"]


def test_data_is_scored_against_its_own_recordings_not_the_reference(tmp_path):
    proc = subprocess.run([sys.executable, str(SCRIPT), "--morphology", "x.asc", "--data", "d.h5", "--truth",
                           "reference", "--out", str(tmp_path / "out")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "--data" in proc.stderr and "Traceback" not in proc.stderr
    proc = subprocess.run([sys.executable, str(SCRIPT), "--morphology", "x.asc", "--data", str(tmp_path / "none.h5"),
                           "--out", str(tmp_path / "out")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "does not exist" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.neuron
def test_a_dataset_from_the_steady_state_is_its_own_exact_truth(tmp_path):
    """--data: the unperturbed cell, rebuilt from the dataset's configuration on the given morphology,
    reproduces the dataset's recordings exactly (F1 1, r 1); a dataset that starts at -80 mV is refused."""
    from conftest import SHARED

    morph = SHARED / "hay2011" / "cell1.asc"
    if not morph.exists():
        pytest.skip(f"no Hay 2011 morphology in {morph.parent}")
    sim = [sys.executable, "-m", "neurosurrogate.cli", "simulate", "--cell", "hay-l5pc", "--morphology", str(morph),
           "--trials", "1", "--duration-ms", "400", "--protocol", "mixed", "--option", "exc_rate_range_Hz=3000,9000",
           "--option", "p_quiet=0", "--seed", "5", "--workers", "1", "--quiet"]
    for extra, name in (([], "steady.h5"), (["--v-init-mV", "-80", "--no-prerun"], "cold.h5")):
        r = subprocess.run([*sim, *extra, "--out", str(tmp_path / name)], capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stderr
    base = [sys.executable, str(SCRIPT), "--morphology", str(morph), "--conditions", "none", "--skip-ms", "50",
            "--windows-ms", "", "--workers", "1", "--v-clip-mV", "100"]  # no clip: the voltages compare raw
    cold = subprocess.run([*base, "--data", str(tmp_path / "cold.h5"), "--out", str(tmp_path / "c")],
                          capture_output=True, text=True, timeout=600)
    assert cold.returncode == 2 and "steady state" in cold.stderr and "Traceback" not in cold.stderr
    ok = subprocess.run([*base, "--data", str(tmp_path / "steady.h5"), "--out", str(tmp_path / "s")],
                        capture_output=True, text=True, timeout=600)
    assert ok.returncode == 0, ok.stderr
    out = json.loads((tmp_path / "s" / "reliability.json").read_text())
    row = out["rows"][0]
    assert out["key"]["data_hash"] and "reference" not in out["key"]
    assert row["n_spikes_true"] > 0  # the test means something only if the truth spikes
    assert row["f1_10ms"] == 1.0 and row["median_abs_shift_ms"] < 1e-3 and row["r_sub"] > 0.9999
    assert row["rms_slow_mV"] < 1e-3 and row["rms_fast_mV"] < 1e-3
    assert "steady.h5" in (tmp_path / "s" / "reliability.md").read_text()
    # a surrogate alone (no perturbed cell, no NEURON run): scored against the same recordings
    alone = subprocess.run([*base, "--conditions", "", "--model", "hay-l5pc", "--data", str(tmp_path / "steady.h5"),
                            "--out", str(tmp_path / "m")], capture_output=True, text=True, timeout=600)
    assert alone.returncode == 0, alone.stderr
    rows = json.loads((tmp_path / "m" / "reliability.json").read_text())["rows"]
    assert [r["condition"] for r in rows] == ["surrogate hay-l5pc"] and rows[0]["n_spikes_true"] == row["n_spikes_true"]
    nothing = subprocess.run([*base, "--conditions", "", "--data", str(tmp_path / "steady.h5")],
                             capture_output=True, text=True, timeout=600)
    assert nothing.returncode == 2 and "--conditions" in nothing.stderr and "Traceback" not in nothing.stderr


def test_spikes_are_scored_by_their_order_in_the_trial():
    truth = [np.array([50.0, 100.0, 150.0, 200.0, 250.0]), np.array([20.0, 400.0])]
    pred = [np.array([51.0, 105.0, 300.0]), np.array([60.0, 401.5, 600.0])]
    g = {x["group"]: x for x in rel.order_scores(truth, pred, start_ms=30.0)}
    # trial 0 from 30 ms: truth 1st..5th = 50..250 (1st matched at 1 ms, 2nd at 5 ms); trial 1: 20 ms is before
    # the start, so 400 is its 1st (matched at 1.5 ms); 60 ms is trial 1's first prediction and matches nothing
    assert g["1"]["recall_10ms"] == 1.0 and g["1"]["recall_2ms"] == 1.0 and g["1"]["n_true"] == 2
    assert g["2"]["recall_10ms"] == 1.0 and g["2"]["recall_2ms"] == 0.0
    assert g["3"]["recall_10ms"] == 0.0 and g["4-7"]["n_true"] == 2 and g["4-7"]["recall_10ms"] == 0.0
    assert g["1"]["precision_10ms"] == 0.5 and g["2"]["precision_10ms"] == 1.0 and g["3"]["precision_10ms"] == 0.0
    assert g[">=8"]["n_true"] == 0 and np.isnan(g[">=8"]["recall_10ms"])


def test_spikes_are_scored_by_the_time_since_their_trains_previous_spike():
    truth = [np.array([10.0, 50.0, 60.0, 300.0]), np.array([])]
    pred = [np.array([51.0, 75.0, 301.0]), np.array([100.0])]
    g = {x["group"]: x for x in rel.gap_scores(truth, pred, start_ms=40.0)}
    # truth from 40 ms: 50 (gap 40 from 10, which is before the start but counts), 60 (gap 10), 300 (gap 240);
    # matched at +-10: 50 <-> 51, 60 <-> 75? no (15 ms), 300 <-> 301; predictions: 51 (first: infinite gap),
    # 75 (gap 24), 301 (gap 226), and trial 1's 100 (first)
    assert g["0-20 ms"]["n_true"] == 1 and g["0-20 ms"]["recall_10ms"] == 0.0
    assert g["20-50 ms"]["recall_10ms"] == 1.0 and g["150-500 ms"]["recall_10ms"] == 1.0
    assert g["20-50 ms"]["n_pred"] == 1 and g["20-50 ms"]["precision_10ms"] == 0.0
    assert g["150-500 ms"]["precision_10ms"] == 1.0
    assert g[">=500 ms"]["n_pred"] == 2 and g[">=500 ms"]["precision_10ms"] == 0.5 and g[">=500 ms"]["n_true"] == 0


def test_condition_tables_are_a_function_of_seed_and_condition():
    """The inputs of a condition (shared with scripts/hay_onsets.py): the same seed and condition give the same
    perturbation, another condition another; noise kinds add a current, event kinds perturb the tables."""
    from neurosurrogate.inputs import EventTable

    ev = [EventTable(np.array([1.0, 5.5, 9.0]), np.array([0, 1, 0]), np.array([1.0, 2.0, 1.0]))] * 2

    def make(kind, size, seed=0):
        return rel.condition_tables(kind, size, ev, 2, 50, rel.condition_rng(seed, kind, size))

    a, b = make("fast_current", 0.05), make("fast_current", 0.05)
    assert all(x[0] is e and x[1].shape == (50,) and np.array_equal(x[1], y[1]) for x, y, e in zip(a, b, ev))
    assert not np.array_equal(a[0][1], make("fast_current", 0.1)[0][1])
    assert not np.array_equal(a[0][1], make("fast_current", 0.05, seed=1)[0][1])
    j = make("jitter_ms", 1.0)
    assert not np.array_equal(j[0].t_ms, ev[0].t_ms) and j[0].synapse.size == 3
    assert make("none", 0.0)[0] is ev[0]
    assert make("dt_ms", 0.05)[1] is ev[1]  # the step changes the cell, not its input
    with pytest.raises(ValueError, match="needs the truth's spikes"):
        make("extra_spike", 1.0)


def test_ou_noise_has_its_size_and_correlation_time():
    """neurosurrogate.inputs.ou_noise, shaped (trials x ms, as scripts/hay_physics_soma.py draws it); the
    benchmark's noise_current is its 1-D case."""
    from neurosurrogate.inputs import ou_noise

    x = ou_noise((200, 2000), 2.0, 10.0, np.random.default_rng(0))
    assert x.std() == pytest.approx(2.0, rel=0.03) and abs(x[:, 0].std() - 2.0) < 0.25  # stationary from t = 0
    r10 = np.mean(x[:, 10:] * x[:, :-10]) / x.var()
    assert r10 == pytest.approx(np.exp(-1.0), abs=0.03)  # correlation e^-1 after one correlation time
    assert np.array_equal(rel.noise_current("fast_current", 0.05, 500, np.random.default_rng(1)),
                          ou_noise(500, 0.05, rel.NOISE_TAU_MS["fast_current"], np.random.default_rng(1)))
    with pytest.raises(ValueError, match="tau_ms"):
        ou_noise(10, 1.0, 0.0, np.random.default_rng(0))
