"""Tests for neurosurrogate.evaluate.metrics (synthetic cases with known answers)."""

import math

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from neurosurrogate.evaluate.metrics import (
    explained_variance_over_time,
    fidelity_report,
    firing_rate_error,
    match_spikes,
    pearson_r,
    pooled_fidelity,
    pooled_spike_fidelity,
    spike_confidence_table,
    spike_precision_recall,
    subthreshold_mask,
    variance_explained,
)


@pytest.fixture
def trace():
    rng = np.random.default_rng(0)
    t = np.arange(5000.0)
    return -65.0 + 5.0 * np.sin(2 * np.pi * t / 200.0) + rng.normal(0.0, 1.0, t.size)


# ------------------------------------------------------------------ voltage metrics
def test_identical_traces(trace):
    assert variance_explained(trace, trace) == 1.0
    assert pearson_r(trace, trace) == pytest.approx(1.0)


def test_mean_prediction_gives_zero(trace):
    mean_pred = np.full_like(trace, trace.mean())
    assert variance_explained(trace, mean_pred) == pytest.approx(0.0, abs=1e-12)


def test_scaled_prediction(trace):
    pred = 2.0 * trace
    assert pearson_r(trace, pred) == pytest.approx(1.0)
    expected = 1.0 - np.mean(trace**2) / np.mean((trace - trace.mean()) ** 2)
    assert variance_explained(trace, pred) == pytest.approx(expected)
    assert pearson_r(trace, -pred) == pytest.approx(-1.0)


def test_known_small_case():
    v_true = np.array([0.0, 1.0, 2.0, 3.0])  # var = 1.25
    v_pred = np.array([0.0, 1.0, 2.0, 5.0])  # mse = 1.0
    assert variance_explained(v_true, v_pred) == pytest.approx(1.0 - 1.0 / 1.25)


def test_additive_noise():
    rng = np.random.default_rng(1)
    v_true = rng.normal(-60.0, 3.0, 200_000)
    sigma = 1.5
    v_pred = v_true + rng.normal(0.0, sigma, v_true.size)
    expected = 1.0 - sigma**2 / np.var(v_true)
    assert variance_explained(v_true, v_pred) == pytest.approx(expected, abs=0.01)
    assert pearson_r(v_true, v_pred) == pytest.approx(math.sqrt(9 / (9 + sigma**2)), abs=0.01)


@pytest.mark.parametrize("func", [variance_explained, pearson_r])
def test_voltage_errors(func, trace):
    with pytest.raises(ValueError, match="v_pred"):
        func(trace, trace[:-1])
    bad = trace.copy()
    bad[3] = np.nan
    with pytest.raises(ValueError, match="v_true"):
        func(bad, trace)
    with pytest.raises(ValueError, match="v_pred"):
        func(trace, bad)
    with pytest.raises(ValueError, match="v_true"):
        func(trace.reshape(50, 100), trace.reshape(50, 100))
    with pytest.raises(ValueError, match="v_true is constant"):
        func(np.full(10, -70.0), np.arange(10.0))


def test_pearson_constant_prediction():
    with pytest.raises(ValueError, match="v_pred is constant"):
        pearson_r(np.arange(10.0), np.zeros(10))


# ------------------------------------------------------------------ subthreshold mask
def test_subthreshold_mask_windows():
    v = np.zeros(30)
    mask = subthreshold_mask(v, [20.0, 10.0])
    excluded = set(np.flatnonzero(~mask))
    assert excluded == set(range(8, 16)) | set(range(18, 26))
    mask = subthreshold_mask(v, [10.0], exclude_ms=(0.0, 0.0))
    assert list(np.flatnonzero(~mask)) == [10]
    assert subthreshold_mask(v, []).all()


def test_subthreshold_mask_time_axis_and_vmax():
    v = np.zeros(10)
    v[1] = 10.0
    t = np.arange(10) * 0.5  # 0..4.5 ms; spike at 4 ms excludes t in [3, 4.5]
    mask = subthreshold_mask(v, [4.0], t_ms=t, exclude_ms=(1.0, 0.5), v_max_mV=0.0)
    assert list(np.flatnonzero(~mask)) == [1, 6, 7, 8, 9]


def test_subthreshold_mask_errors():
    with pytest.raises(ValueError, match="exclude_ms"):
        subthreshold_mask(np.zeros(5), [1.0], exclude_ms=(-1.0, 2.0))
    with pytest.raises(ValueError, match="t_ms"):
        subthreshold_mask(np.zeros(5), [1.0], t_ms=np.arange(4.0))
    with pytest.raises(ValueError, match="spike_times_ms"):
        subthreshold_mask(np.zeros(5), [np.nan])


# ------------------------------------------------------------------ spike matching
SPIKES = np.array([100.0, 250.0, 400.0, 410.0, 700.0])


def test_shift_1ms_within_2ms():
    p, r, shifts = spike_precision_recall(SPIKES, SPIKES + 1.0, 2.0)
    assert (p, r) == (1.0, 1.0)
    np.testing.assert_allclose(shifts, 1.0)


def test_shift_3ms():
    p, r, shifts = spike_precision_recall(SPIKES, SPIKES + 3.0, 2.0)
    assert (p, r, shifts.size) == (0.0, 0.0, 0)
    p, r, shifts = spike_precision_recall(SPIKES, SPIKES - 3.0, 10.0)
    assert (p, r) == (1.0, 1.0)
    np.testing.assert_allclose(shifts, -3.0)


def test_extra_predicted_spike():
    n = SPIKES.size
    p, r, _ = spike_precision_recall(SPIKES, np.append(SPIKES, 550.0), 2.0)
    assert p == pytest.approx(n / (n + 1)) and r == 1.0
    p, r, _ = spike_precision_recall(SPIKES, SPIKES[1:], 2.0)
    assert p == 1.0 and r == pytest.approx((n - 1) / n)


def test_one_to_one():
    it, ip = match_spikes([100.0], [99.0, 100.5], 2.0)
    assert list(it) == [0] and list(ip) == [1]  # the closer one
    p, r, _ = spike_precision_recall([100.0], [99.0, 100.5], 2.0)
    assert (p, r) == (0.5, 1.0)


def test_maximises_count_before_cost():
    # Greedy nearest would pair 10 with 11 and leave 12 unmatched.
    it, ip = match_spikes([10.0, 12.5], [11.0, 14.0], 1.5)
    assert list(zip(it, ip)) == [(0, 0), (1, 1)]


def test_unsorted_input_indices():
    t_true = np.array([50.0, 10.0, 30.0])
    t_pred = np.array([31.0, 49.0, 11.0])
    it, ip = match_spikes(t_true, t_pred, 2.0)
    assert list(it) == [1, 2, 0] and list(ip) == [2, 0, 1]
    _, _, shifts = spike_precision_recall(t_true, t_pred, 2.0)
    np.testing.assert_allclose(shifts, [1.0, 1.0, -1.0])


def test_empty_conventions():
    e = np.array([])
    assert spike_precision_recall(e, e, 2.0)[:2] == (1.0, 1.0)
    assert spike_precision_recall([1.0], e, 2.0)[:2] == (1.0, 0.0)
    assert spike_precision_recall(e, [1.0], 2.0)[:2] == (0.0, 1.0)
    assert match_spikes(e, e, 1.0)[0].size == 0


def test_match_errors():
    with pytest.raises(ValueError, match="window_ms"):
        match_spikes([1.0], [1.0], -1.0)
    with pytest.raises(ValueError, match="window_ms"):
        match_spikes([1.0], [1.0], float("nan"))
    with pytest.raises(ValueError, match="t_pred_ms"):
        match_spikes([1.0], [np.nan], 1.0)
    with pytest.raises(ValueError, match="t_true_ms"):
        spike_precision_recall(np.zeros((2, 2)), [1.0], 1.0)


def _brute_force(a, b, w):
    if a.size == 0 or b.size == 0:
        return 0, 0.0
    d = np.abs(a[:, None] - b[None, :])
    big = 1e6
    rows, cols = linear_sum_assignment(np.where(d <= w, d, big))
    ok = d[rows, cols] <= w
    return int(ok.sum()), float(d[rows, cols][ok].sum())


def test_match_against_brute_force():
    rng = np.random.default_rng(42)
    for trial in range(400):
        n, m = rng.integers(0, 12, size=2)
        span = rng.choice([20.0, 60.0, 200.0])
        a = rng.uniform(0, span, n)
        b = rng.uniform(0, span, m)
        if trial % 4 == 0:  # integer times -> ties and exact-window distances
            a, b = np.round(a), np.round(b)
        w = float(rng.choice([0.0, 1.0, 2.0, 5.0, 10.0]))
        it, ip = match_spikes(a, b, w)
        assert len(set(it)) == it.size and len(set(ip)) == ip.size
        d = np.abs(a[it] - b[ip])
        assert np.all(d <= w)
        count, cost = _brute_force(a, b, w)
        assert it.size == count, (a, b, w)
        assert d.sum() == pytest.approx(cost, abs=1e-9), (a, b, w)


def test_match_large_train_is_fast():
    rng = np.random.default_rng(3)
    a = np.sort(rng.uniform(0, 1e6, 20_000))
    b = a + rng.normal(0, 2.0, a.size)
    it, _ = match_spikes(a, b, 10.0)
    assert it.size > 19_900


# ------------------------------------------------------------------ rates
def test_firing_rate_error():
    out = firing_rate_error(np.arange(10.0), np.arange(15.0), 2000.0)
    assert out == {"rate_true_Hz": 5.0, "rate_pred_Hz": 7.5, "rate_error_Hz": 2.5,
                   "relative_rate_error": 0.5}
    assert firing_rate_error([], [], 1000.0)["relative_rate_error"] == 0.0
    assert firing_rate_error([], [1.0], 1000.0)["relative_rate_error"] == math.inf
    with pytest.raises(ValueError, match="duration_ms"):
        firing_rate_error([], [], 0.0)


# ------------------------------------------------------------------ over time
def test_explained_variance_over_time_corrupted_second_half(trace):
    pred = trace.copy()
    rng = np.random.default_rng(5)
    pred[2500:] += rng.normal(0.0, 3.0, 2500)
    t_mid, ev = explained_variance_over_time(trace, pred, segment_ms=500.0)
    np.testing.assert_allclose(t_mid, np.arange(10) * 500.0 + 250.0)
    np.testing.assert_allclose(ev[:5], 1.0)
    assert np.all(ev[5:] < 0.5)


def test_explained_variance_over_time_constant_and_partial():
    v = np.concatenate([np.full(10, -70.0), np.arange(10.0), np.arange(5.0)])
    t_mid, ev = explained_variance_over_time(v, v, segment_ms=5.0, dt_ms=0.5)
    assert t_mid.size == 2 and math.isnan(ev[0]) and ev[1] == 1.0
    with pytest.raises(ValueError, match="segment_ms"):
        explained_variance_over_time(v, v, segment_ms=1e6)
    with pytest.raises(ValueError, match="dt_ms"):
        explained_variance_over_time(v, v, dt_ms=-1.0)


# ------------------------------------------------------------------ reports
EXPECTED_KEYS = {
    "variance_explained", "pearson_r", "variance_explained_sub", "pearson_r_sub",
    "precision_10ms", "recall_10ms", "precision_2ms", "recall_2ms",
    "mean_shift_ms", "median_shift_ms", "median_abs_shift_ms",
    "n_spikes_true", "n_spikes_pred", "rate_true_Hz", "rate_pred_Hz", "rate_error_Hz",
}


def test_fidelity_report(trace):
    spikes = np.array([1000.0, 2000.0, 3000.0])
    pred_spikes = np.array([1001.0, 2005.0, 4500.0])
    pred = trace.copy()
    pred[spikes.astype(int)] += 50.0  # errors only near spikes
    rep = fidelity_report(trace, pred, spikes, pred_spikes, 5000.0)
    assert set(rep) == EXPECTED_KEYS
    assert all(isinstance(v, float) for v in rep.values())
    assert rep["variance_explained"] < 1.0 and rep["variance_explained_sub"] == 1.0
    assert rep["pearson_r_sub"] == pytest.approx(1.0)
    assert (rep["precision_10ms"], rep["recall_10ms"]) == (pytest.approx(2 / 3),) * 2
    assert (rep["precision_2ms"], rep["recall_2ms"]) == (pytest.approx(1 / 3),) * 2
    assert rep["mean_shift_ms"] == 3.0 and rep["median_abs_shift_ms"] == 3.0
    assert rep["n_spikes_true"] == 3.0 and rep["rate_true_Hz"] == 0.6
    assert rep["rate_error_Hz"] == 0.0


def test_fidelity_report_quiet_trial():
    v = np.full(1000, -70.0)
    rep = fidelity_report(v, v + 0.1, [], [], 1000.0, windows_ms=(5.0,))
    assert math.isnan(rep["variance_explained"]) and math.isnan(rep["pearson_r_sub"])
    assert math.isnan(rep["mean_shift_ms"])
    assert rep["precision_5ms"] == 1.0 and rep["recall_5ms"] == 1.0
    with pytest.raises(ValueError, match="spikes_pred_ms"):
        fidelity_report(v, v, [], [np.nan], 1000.0)
    with pytest.raises(ValueError, match="windows_ms"):
        fidelity_report(v, v, [], [], 1000.0, windows_ms=(-2.0,))


def test_pooled_fidelity(trace):
    rng = np.random.default_rng(7)
    v_true = [trace[:2000], trace[2000:]]
    v_pred = [v + rng.normal(0, 0.5, v.size) for v in v_true]
    s_true = [np.array([100.0, 500.0]), np.array([50.0])]
    s_pred = [np.array([101.0]), np.array([58.0, 900.0])]
    rep = pooled_fidelity(v_true, v_pred, s_true, s_pred, [2000.0, 3000.0])
    assert set(rep) == EXPECTED_KEYS
    allv, allp = np.concatenate(v_true), np.concatenate(v_pred)
    assert rep["variance_explained"] == pytest.approx(variance_explained(allv, allp))
    assert rep["pearson_r"] == pytest.approx(pearson_r(allv, allp))
    # trial 0: 100->101 (shift 1); trial 1: 50->58 (shift 8, only within 10 ms)
    assert (rep["precision_10ms"], rep["recall_10ms"]) == (pytest.approx(2 / 3),) * 2
    assert (rep["precision_2ms"], rep["recall_2ms"]) == (pytest.approx(1 / 3),) * 2
    assert rep["mean_shift_ms"] == 4.5 and rep["median_shift_ms"] == 4.5
    assert rep["n_spikes_pred"] == 3.0 and rep["rate_pred_Hz"] == pytest.approx(0.6)
    single = fidelity_report(v_true[0], v_pred[0], s_true[0], s_pred[0], 2000.0)
    pooled_one = pooled_fidelity(v_true[:1], v_pred[:1], s_true[:1], s_pred[:1], [2000.0])
    assert single == pooled_one


def test_pooled_spike_fidelity_equals_the_spike_part_of_pooled_fidelity(trace):
    s_true = [np.array([100.0, 300.0, 800.0]), np.array([50.0]), np.array([])]
    s_pred = [np.array([101.5, 290.0]), np.array([]), np.array([400.0, 402.0])]
    v = [trace[:1000]] * 3
    full = pooled_fidelity(v, v, s_true, s_pred, [1000.0] * 3)
    spikes = pooled_spike_fidelity(s_true, s_pred)
    assert spikes["n_spikes_true"] == 4 and spikes["n_spikes_pred"] == 4
    assert spikes["precision_10ms"] == 0.5 and spikes["recall_10ms"] == 0.5 and spikes["recall_2ms"] == 0.25
    for key, value in spikes.items():
        assert value == full[key], key
    with pytest.raises(ValueError, match="differ in length"):
        pooled_spike_fidelity(s_true, s_pred[:2])


def test_pooled_fidelity_errors(trace):
    with pytest.raises(ValueError, match="durations_ms"):
        pooled_fidelity([trace], [trace], [[]], [[]], [1000.0, 1000.0])
    with pytest.raises(ValueError, match="durations_ms"):
        pooled_fidelity([trace], [trace], [[]], [[]], [-1.0])
    with pytest.raises(ValueError, match="v_pred"):
        pooled_fidelity([trace], [trace[:-1]], [[]], [[]], [1000.0])


# ------------------------------------------------------------------ multi-compartment metrics
def test_away_from_spikes_mask_known_answer():
    from neurosurrogate.evaluate.metrics import away_from_spikes_mask

    m = away_from_spikes_mask(30, [10.0], [22.5], margin_ms=5.0)
    keep = np.flatnonzero(m).tolist()
    # |t - 10| <= 5 -> 5..15 out; |t - 22.5| <= 5 -> 18..27 out (17.5 and 27.5 are not samples)
    assert keep == [0, 1, 2, 3, 4, 16, 17, 28, 29]
    assert away_from_spikes_mask(4, [], []).all()
    # dt_ms: samples at 0, 0.5, 1, ...; margin 1 ms around 2 ms -> 1.0..3.0 out
    m = away_from_spikes_mask(8, [2.0], [], margin_ms=1.0, dt_ms=0.5)
    assert m.tolist() == [True, True, False, False, False, False, False, True]
    with pytest.raises(ValueError, match="margin_ms"):
        away_from_spikes_mask(4, [], [], margin_ms=-1)
    with pytest.raises(ValueError, match="n_samples"):
        away_from_spikes_mask(2.5, [], [])


def test_multicompartment_fidelity_known_answers():
    from neurosurrogate.evaluate.metrics import multicompartment_fidelity

    t = np.arange(400.0)
    v = -70.0 + 3.0 * np.sin(2 * np.pi * t / 50.0)
    v_pred = v.copy()
    true_sp, pred_sp = np.array([100.2]), np.array([250.7])  # a miss and a spurious spike
    v[100:102] = 30.0
    v_pred[250:252] = 30.0  # spike shapes only near the spikes: away from them the traces agree
    d0 = 2.0 * v + 1.0
    d0_pred = d0 + 1.0  # a constant offset: r = 1, VE = 1 - 1 / var
    ica = np.cos(t / 7.0)
    m = multicompartment_fidelity([v], [v_pred], [true_sp], [pred_sp], [400.0],
                                  {"v_dend0_mV": [d0], "ica": [ica]}, {"v_dend0_mV": [d0_pred], "ica": [-ica]})
    assert m["pearson_r_away5ms"] == pytest.approx(1.0, abs=1e-12)
    assert m["pearson_r"] < 0.5  # the spikes dominate r over all samples
    assert m["precision_10ms"] == 0.0 and m["recall_10ms"] == 0.0
    assert m["v_dend0_mV_pearson_r"] == pytest.approx(1.0, abs=1e-12)
    assert m["v_dend0_mV_variance_explained"] == pytest.approx(1.0 - 1.0 / np.var(d0), rel=1e-12)
    assert m["ica_pearson_r"] == pytest.approx(-1.0, abs=1e-12)
    assert m["ica_variance_explained"] == pytest.approx(1.0 - np.mean(4 * ica**2) / np.var(ica), rel=1e-12)
    # the margin is a parameter and names the key
    m2 = multicompartment_fidelity([v], [v_pred], [true_sp], [pred_sp], [400.0], margin_ms=0.5)
    assert "pearson_r_away0.5ms" in m2 and "pearson_r_away5ms" not in m2
    with pytest.raises(ValueError, match="sites_pred lacks"):
        multicompartment_fidelity([v], [v_pred], [true_sp], [pred_sp], [400.0], {"ica": [ica]}, {})


def test_site_fidelity_pools_trials_and_handles_constants():
    from neurosurrogate.evaluate.metrics import site_fidelity

    a, b = [np.array([0.0, 1.0]), np.array([2.0, 3.0])], [np.array([0.0, 1.0]), np.array([2.0, 3.5])]
    m = site_fidelity(a, b)
    cat_a, cat_b = np.concatenate(a), np.concatenate(b)
    assert m["pearson_r"] == pytest.approx(np.corrcoef(cat_a, cat_b)[0, 1], rel=1e-12)
    assert m["variance_explained"] == pytest.approx(1 - 0.25 / 4 / np.var(cat_a), rel=1e-12)
    const = site_fidelity([np.ones(5)], [np.arange(5.0)])
    assert math.isnan(const["pearson_r"]) and math.isnan(const["variance_explained"])
    with pytest.raises(ValueError, match="ica: 1 true and 2 predicted"):
        site_fidelity([np.ones(3)], [np.ones(3)] * 2, "ica")


def test_crop_trial_drops_the_first_ms():
    from neurosurrogate.evaluate.metrics import crop_trial

    v, sp = crop_trial(np.arange(10.0), [1.5, 3.0, 7.25], 3)
    assert v.tolist() == [3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0] and sp.tolist() == [0.0, 4.25]
    vd, _ = crop_trial(np.arange(20.0).reshape(2, 10), [], 8)
    assert vd.tolist() == [[8.0, 9.0], [18.0, 19.0]]
    with pytest.raises(ValueError, match="skip_ms=10"):
        crop_trial(np.arange(10.0), [], 10)
    with pytest.raises(ValueError, match="skip_ms=2.5"):
        crop_trial(np.arange(10.0), [], 2.5)
    with pytest.raises(ValueError, match="skip_ms"):
        crop_trial(np.arange(10.0), [], -1)


# ------------------------------------------------------------------ spike confidence
def test_spike_confidence_table_known_answer():
    true = [np.array([100.0, 200.0, 300.0, 400.0]), np.array([50.0])]
    # trial 0: sure spikes at 100 and 200 (matched), an unsure one at 300.5 (matched), an unsure
    # false one at 700; trial 1: a sure false one at 900, the true spike at 50 missed
    pred = [np.array([100.2, 199.0, 300.5, 700.0]), np.array([900.0])]
    conf = [np.array([0.9, 0.8, 0.3, 0.4]), np.array([0.6])]
    rows = spike_confidence_table(true, pred, conf, window_ms=10.0, edges=(0.0, 0.5, 1.0))
    lo, hi = rows
    assert (lo["conf_from"], lo["conf_to"], hi["conf_from"], hi["conf_to"]) == (0.0, 0.5, 0.5, 1.0)
    assert lo["n_pred"] == 2 and lo["matched_fraction"] == pytest.approx(0.5)
    assert hi["n_pred"] == 3 and hi["matched_fraction"] == pytest.approx(2 / 3)
    assert lo["conf_mean"] == pytest.approx(0.35) and hi["conf_mean"] == pytest.approx(2.3 / 3)
    # keeping all: 3 of 5 predicted match, 3 of 5 true found; keeping >= 0.5: 2 of 3, 2 of 5
    assert (lo["precision_at_least"], lo["recall_at_least"], lo["n_pred_at_least"]) == (0.6, 0.6, 5)
    assert hi["precision_at_least"] == pytest.approx(2 / 3) and hi["recall_at_least"] == pytest.approx(0.4)
    assert lo["precision_at_least"] == pooled_spike_fidelity(true, pred, (10.0,))["precision_10ms"]


def test_spike_confidence_table_rematches_after_dropping():
    # the unsure spike at 104 takes the true spike at 100 from nobody: dropped, the sure one at 108 still matches
    rows = spike_confidence_table([np.array([100.0])], [np.array([104.0, 108.0])], [np.array([0.2, 0.9])],
                                  edges=(0.0, 0.5, 1.0))
    assert rows[0]["precision_at_least"] == 0.5 and rows[1]["precision_at_least"] == 1.0
    assert rows[1]["recall_at_least"] == 1.0
    # an empty bin has no matched fraction; the last bin includes 1.0
    rows = spike_confidence_table([np.array([1.0])], [np.array([1.0])], [np.array([1.0])], edges=(0.0, 0.5, 1.0))
    assert math.isnan(rows[0]["matched_fraction"]) and math.isnan(rows[0]["conf_mean"])
    assert rows[1]["n_pred"] == 1


@pytest.mark.parametrize("args, match", [
    (([np.zeros(1)], [np.zeros(2)], [np.zeros(1)]), "1 entries for 2 predicted"),
    (([np.zeros(1)], [np.zeros(1)], [np.zeros(1), np.zeros(1)]), "differ in length"),
    (([np.zeros(1)], [np.zeros(1)], [np.array([1.5])]), r"\[0, 1\]"),
])
def test_spike_confidence_table_errors(args, match):
    with pytest.raises(ValueError, match=match):
        spike_confidence_table(*args)
    with pytest.raises(ValueError, match="edges"):
        spike_confidence_table([np.zeros(0)], [np.zeros(0)], [np.zeros(0)], edges=(0.5, 0.2))
