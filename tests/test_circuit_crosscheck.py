"""Reusing NEURON networks in benchmarks/l5pc_circuit_crosscheck.py (its NEURON runs are the experiment)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import load_module

cc = load_module("benchmarks/l5pc_circuit_crosscheck.py")


def _write(path: Path, fingerprints=("aaaa", "bbbb")) -> None:
    arrays = {"settings": np.array([[0.75, 0.05], [1.0, 0.075]]), "neuron_wall_s": np.array(123.0)}
    for k, fp in enumerate(fingerprints):
        arrays[f"neuron_{k}_cell"] = np.array([k, k + 1])
        arrays[f"neuron_{k}_t_ms"] = np.array([10.0 + k, 20.0])
        arrays[f"surrogate_{k}_cell"] = np.zeros(0, np.int64)
        arrays[f"surrogate_{k}_t_ms"] = np.zeros(0)
        if fp is not None:
            arrays[f"fingerprint_{k}"] = np.array(fp)
    np.savez(path, **arrays)


def test_reused_runs_are_matched_by_fingerprint(tmp_path):
    f = tmp_path / "closed_loop_spikes.npz"
    _write(f)
    runs, wall = cc.reused_neuron_runs(f, ["bbbb", "aaaa"], [250, 300])  # any order
    assert wall == 123.0
    np.testing.assert_array_equal(runs[0].spike_cell, [1, 2])
    np.testing.assert_array_equal(runs[0].spike_t_ms, [11.0, 20.0])
    np.testing.assert_array_equal(runs[1].spike_t_ms, [10.0, 20.0])
    assert runs[1].duration_ms == 300


def test_reuse_refuses_other_circuits_and_old_files(tmp_path):
    f = tmp_path / "closed_loop_spikes.npz"
    _write(f)
    with pytest.raises(ValueError, match="no NEURON run of circuit cccc"):
        cc.reused_neuron_runs(f, ["aaaa", "cccc"], [250, 250])
    old = tmp_path / "old.npz"
    _write(old, fingerprints=(None, None))
    with pytest.raises(ValueError, match="no circuit fingerprints"):
        cc.reused_neuron_runs(old, ["aaaa"], [250])
    with pytest.raises(ValueError, match="no such file"):
        cc.reused_neuron_runs(tmp_path / "missing.npz", ["aaaa"], [250])
