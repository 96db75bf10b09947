"""scripts/hay_onsets.py: episode onsets of a spike train, found or missed, and the voltage calibration table."""

import numpy as np
import pytest

from conftest import load_module
from neurosurrogate.inputs import EventTable

ons = load_module("scripts/hay_onsets.py")


def test_auc_is_the_mann_whitney_probability():
    assert ons.auc([2.0, 3.0], [0.0, 1.0]) == 1.0
    assert ons.auc([0.0, 1.0], [2.0, 3.0]) == 0.0
    assert ons.auc([1.0, 1.0], [1.0]) == 0.5  # ties count half
    assert ons.auc([1.0, 3.0], [2.0]) == 0.5
    assert np.isnan(ons.auc([], [1.0]))


def test_episode_onsets_are_spikes_without_a_spike_in_the_gap_before():
    s = np.array([30.0, 35.0, 80.0, 99.0, 150.0])
    assert list(ons.episode_onsets(s, 20.0)) == [0, 2, 4]  # 35 and 99 follow within 20 ms
    assert list(ons.episode_onsets(s, 5.0)) == [0, 1, 2, 3, 4]  # exactly 5 ms counts as a new episode
    assert ons.episode_onsets([], 20.0).size == 0


def _trial(T=400):
    """A cell ramping to two spikes; a model that follows the first ramp and stays 3 mV under the second."""
    t = np.arange(T, dtype=float)
    v_cell = np.full(T, -65.0)
    v_cell[90:100] = np.linspace(-62.0, -55.0, 10)  # a fast approach: onset at 100 ms
    v_cell[100:102] = 20.0
    v_cell[270:300] = np.linspace(-58.0, -55.0, 30)  # a slow ramp near threshold: onset at 300 ms
    v_cell[300:302] = 20.0
    v_model = np.minimum(v_cell, -55.0)
    v_model[270:302] -= 3.0  # the model misses the slow ramp
    true, pred = np.array([100.3, 300.6]), np.array([101.0, 350.0])  # 350: a false onset
    prob = np.zeros(T)
    prob[101], prob[350] = 0.9, 0.8
    prob[299] = 0.1
    ev = EventTable(np.array([96.2, 96.5, 98.0, 297.0]), np.array([0, 1, 2, 1]), np.array([3.0, 3.0, 3.0, 1.0]))
    return t, v_cell, v_model, prob, true, pred, ev


def test_onset_table_finds_the_fast_onset_and_misses_the_slow_ramp():
    t, v_cell, v_model, prob, true, pred, ev = _trial()
    exc = np.array([True, True, False])
    apical = np.array([False, True, False])
    dend = np.full((1, t.size), -60.0)
    onsets, false = ons.onset_table([true], [pred], v_cell[None], v_model[None], prob[None], dend, [ev], exc, apical)
    assert [o["found"] for o in onsets] == [True, False]
    fast, slow = onsets
    # the excitatory input of the 5 ms before 100.3 ms: synapse 0 (basal) 3 nS and 1 (apical) 3 nS; 2 is inhibitory
    assert fast["exc_5"] == 6.0 and fast["exc_basal_5"] == 3.0 and fast["exc_apical_5"] == 3.0
    assert fast["inh_10"] == 3.0 and fast["exc_peak_1ms"] == 6.0  # both excitatory events fall in bin 96
    assert fast["err_5"] == 0.0 and slow["err_5"] == pytest.approx(-3.0)
    assert slow["rise_cell"] < fast["rise_cell"]
    assert fast["gap"] == 500.0 and slow["gap"] == pytest.approx(200.3)  # first spike: the long-gap value
    assert fast["p_max"] == 0.9 and slow["p_max"] == pytest.approx(0.1)
    assert len(false) == 1 and false[0]["t_ms"] == 350.0 and false[0]["v_cell_peak"] == -65.0
    avg = ons.onset_averages(onsets, v_cell[None], v_model[None], lags_ms=range(-5, 1))
    assert np.allclose(avg["found"][0], avg["found"][1])  # the model follows the fast approach
    assert np.allclose(avg["missed"][1], avg["missed"][0] - 3.0)  # and stays 3 mV under the slow ramp
    assert avg["missed"][0][-1] == -55.0  # clipped
    lines = ons.summary(onsets, false)
    assert lines[0].startswith("2 onsets, recall 0.500; 1 false onsets")


def test_calibration_tells_a_biased_model_from_a_calibrated_one():
    rng = np.random.default_rng(0)
    v = -62.0 + 3.0 * rng.standard_normal((4, 3000))
    none = [np.zeros(0)] * 4
    # a shrunk model (the conditional mean of an uncertain one): biased by the cell's band, calibrated by its own
    shrunk = -62.0 + 0.5 * (v + 62.0)
    cal = ons.calibration(v, shrunk, none, none)
    bands = cal["bands_mV"]
    j = bands.index(-57.0)  # the band [-57, -56)
    assert cal["by_cell"][j][1] < -2.0  # the cell at -56.5: the model ~ -59.25
    assert abs(cal["by_cell"][bands.index(-62.0)][1]) < 0.5
    # a model as good but with an error independent of the cell is unbiased where the cell is
    noisy = v + 1.5 * rng.standard_normal(v.shape)
    cal2 = ons.calibration(v, noisy, none, none)
    assert abs(cal2["by_cell"][j][1]) < 0.3
    assert sum(r[0] for r in cal2["by_cell"]) == pytest.approx(1.0)
    assert cal2["n_samples"] == v.size
    # samples within 5 ms of a spike of either train are left out
    cal3 = ons.calibration(v[:1], v[:1], [np.array([100.0])], [np.array([2000.0])])
    assert cal3["n_samples"] == 3000 - 2 * 11


def test_main_rejects_bad_arguments(capsys):
    for argv, msg in ((["--data", "x.h5"], "at least one --model or --cell-condition"),
                      (["--data", "x.h5", "--model", "m", "--gap-ms", "0"], "--gap-ms must be > 0"),
                      (["--data", "x.h5", "--cell-condition", "fast_current:0.05"], "needs --morphology"),
                      (["--data", "x.h5", "--cell-condition", "extra_spike:1", "--morphology", __file__],
                       "expected one of none")):
        with pytest.raises(SystemExit) as e:
            ons.main(argv)
        assert e.value.code == 2
        assert msg in capsys.readouterr().err
