"""The perturbations and bookkeeping of benchmarks/l5pc_spike_reliability.py (its NEURON runs are the
experiment itself, not a unit test)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from neurosurrogate.inputs import EventTable

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "l5pc_spike_reliability.py"
spec = importlib.util.spec_from_file_location("l5pc_spike_reliability", SCRIPT)
rel = importlib.util.module_from_spec(spec)
spec.loader.exec_module(rel)


def _table(n: int = 4000, n_syn: int = 20, seed: int = 0) -> EventTable:
    rng = np.random.default_rng(seed)
    t = np.sort(rng.uniform(0, 500, n))
    return EventTable(t, rng.integers(0, n_syn, n), rng.uniform(0.5, 3.0, n))


def test_conditions_parse_or_name_the_problem():
    assert rel.parse_condition("none") == ("none", 0.0)
    assert rel.parse_condition(" steady_start") == ("steady_start", 0.0)
    assert rel.parse_condition("jitter_ms:0.3") == ("jitter_ms", 0.3)
    for bad, what in [("wobble:1", "unknown perturbation"), ("jitter_ms", "numeric size"),
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
    rows = [{"condition": "none", "f1_10ms": 1.0}, {"condition": "surrogate hay-l5pc", "f1_10ms": 0.7}]
    path = tmp_path / "reliability.json"
    path.write_text(json.dumps({"key": key, "rows": rows}))
    assert list(rel.previous_rows(path, key)) == ["none"]  # surrogate rows are always recomputed
    assert rel.previous_rows(path, {**key, "seed": 1}) == {}
    assert rel.previous_rows(tmp_path / "missing.json", key) == {}
    path.write_text("{not json")
    assert rel.previous_rows(path, key) == {}


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
