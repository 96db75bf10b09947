"""Fidelity metrics comparing a surrogate's soma voltage and spikes with NEURON.

Voltages ``v_true`` (NEURON) and ``v_pred`` (surrogate) are 1-D float arrays in
mV sampled every ``dt_ms`` (default 1 ms, i.e. 1 kHz); spike times are 1-D float
arrays in ms, in any order. ``var`` is the population variance (ddof=0):

* Variance explained: ``EV = 1 - mean((v_true - v_pred)^2) / var(v_true)``;
  1 when perfect, 0 when predicting the mean of ``v_true``, < 0 if worse.
* Pearson r of the mean-subtracted traces a, b: ``sum(a*b) / sqrt(sum(a^2) sum(b^2))``.
* Subthreshold versions use only samples with ``t`` outside
  ``[s - 2 ms, s + 5 ms]`` (default margins) for every true spike ``s``.
* Spike matching: a one-to-one matching between true and predicted spikes with
  ``|t_pred - t_true| <= window_ms`` that maximises the number of pairs and,
  among those, minimises ``sum |t_pred - t_true|``. With M matched pairs,
  ``precision = M / n_pred``, ``recall = M / n_true`` and the shifts are
  ``t_pred - t_true`` (ms; positive = predicted spike is late).
* Firing rate: ``rate = n_spikes / (duration_ms / 1000)`` in Hz.
* Away-from-spikes soma r (multi-compartment cells, :func:`away_from_spikes_mask`):
  Pearson r of the soma voltage on the samples with ``|t - s| > margin_ms``
  (default 5 ms) for every spike ``s`` of *both* the true and the predicted
  train. It measures the subthreshold (and dendritically driven) voltage alone:
  spike errors, including spurious or late spikes, are left to precision and
  recall. Key ``pearson_r_away{margin:g}ms``.
* Site metrics (:func:`site_fidelity`): Pearson r and variance explained of a
  further recorded signal (a dendritic voltage ``v_dend{k}_mV``, ``ica``),
  pooled over trials like the soma voltage.
* Scoring window (:func:`crop_trial`): the first ``skip_ms`` of each trial can
  be left out (e.g. the 300 ms drift of reference trials that start at -80 mV
  without a pre-run); the surrogate still runs from t = 0.

Functions raise ``ValueError`` naming the argument on bad or undefined input
(e.g. constant truth), except that the report functions return ``nan`` for
undefined entries so that many trials can be aggregated.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "variance_explained", "pearson_r", "subthreshold_mask", "explained_variance_over_time",
    "match_spikes", "spike_precision_recall", "firing_rate_error", "fidelity_report",
    "pooled_fidelity", "away_from_spikes_mask", "site_fidelity", "multicompartment_fidelity", "crop_trial",
    "spike_confidence_table",
]


def _as_1d(x, name: str, min_size: int = 0) -> np.ndarray:
    """Convert ``x`` to a finite 1-D float array or raise ValueError naming it."""
    try:
        arr = np.asarray(x, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be numeric, got {type(x).__name__}") from exc
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.size < min_size:
        raise ValueError(f"{name} needs at least {min_size} samples, got {arr.size}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


def _pair(v_true, v_pred, min_size=2, names=("v_true", "v_pred")):
    a, b = _as_1d(v_true, names[0], min_size), _as_1d(v_pred, names[1], min_size)
    if a.shape != b.shape:
        raise ValueError(f"{names[0]} and {names[1]} differ in shape: {a.shape} vs {b.shape}")
    return a, b


def _scalar(x, name: str, positive: bool = False, signed: bool = False) -> float:
    """Finite float, non-negative (or positive) unless ``signed``; else ValueError."""
    try:
        val = float(x)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a number, got {x!r}") from exc
    if not np.isfinite(val) or (not signed and (val < 0 or (positive and val == 0))):
        kind = "" if signed else ("positive " if positive else "non-negative ")
        raise ValueError(f"{name} must be a finite {kind}number, got {x!r}")
    return val


def _is_constant(x: np.ndarray) -> bool:
    return bool(x.size == 0 or x.max() == x.min())


def variance_explained(v_true, v_pred) -> float:
    """Fraction of the variance of ``v_true`` explained by ``v_pred``.

    Args:
        v_true: Ground-truth voltage, shape (N,), mV, N >= 2.
        v_pred: Predicted voltage, shape (N,), mV.

    Returns:
        ``1 - mean((v_true - v_pred)**2) / var(v_true)`` (dimensionless, <= 1).

    Raises:
        ValueError: Bad shapes / non-finite values, or constant ``v_true``.
    """
    a, b = _pair(v_true, v_pred)
    if _is_constant(a):
        raise ValueError("v_true is constant; variance explained is undefined")
    return float(1.0 - np.mean((a - b) ** 2) / np.var(a))


def pearson_r(v_true, v_pred) -> float:
    """Pearson correlation coefficient between two traces.

    Args:
        v_true: Ground-truth voltage, shape (N,), mV, N >= 2.
        v_pred: Predicted voltage, shape (N,), mV.

    Returns:
        r in [-1, 1].

    Raises:
        ValueError: Bad shapes / non-finite values, or a constant trace.
    """
    a, b = _pair(v_true, v_pred)
    for arr, name in ((a, "v_true"), (b, "v_pred")):
        if _is_constant(arr):
            raise ValueError(f"{name} is constant; Pearson r is undefined")
    a, b = a - a.mean(), b - b.mean()
    return float(np.clip(np.dot(a, b) / np.sqrt(np.dot(a, a) * np.dot(b, b)), -1.0, 1.0))


def subthreshold_mask(v_true, spike_times_ms, t_ms=None, exclude_ms=(2.0, 5.0),
                      v_max_mV=None) -> np.ndarray:
    """Boolean mask of samples away from true spikes.

    A sample at time t is excluded (False) if ``s - pre <= t <= s + post`` for
    any spike time s, with ``(pre, post) = exclude_ms``. If ``v_max_mV`` is
    given, samples with ``v_true > v_max_mV`` are excluded as well (catches
    spikes missing from ``spike_times_ms``).

    Args:
        v_true: Ground-truth voltage, shape (N,), mV.
        spike_times_ms: True spike times, shape (K,), ms, any order.
        t_ms: Sample times, shape (N,), ms. Defaults to ``arange(N) * 1.0``.
        exclude_ms: ``(pre, post)`` non-negative exclusion margins in ms.
        v_max_mV: Optional voltage ceiling in mV.

    Returns:
        Boolean array, shape (N,); True for subthreshold samples.
    """
    v = _as_1d(v_true, "v_true")
    spikes = np.sort(_as_1d(spike_times_ms, "spike_times_ms"))
    t = np.arange(v.size, dtype=float) if t_ms is None else _as_1d(t_ms, "t_ms")
    if t.shape != v.shape:
        raise ValueError(f"t_ms must have the shape of v_true {v.shape}, got {t.shape}")
    ex = _as_1d(exclude_ms, "exclude_ms")
    if ex.size != 2 or np.any(ex < 0):
        raise ValueError(f"exclude_ms must be a non-negative (pre, post) pair, got {exclude_ms!r}")
    pre, post = ex.tolist()
    # A spike s excludes t iff t - post <= s <= t + pre.
    mask = np.searchsorted(spikes, t + pre, "right") == np.searchsorted(spikes, t - post, "left")
    if v_max_mV is not None:
        mask &= v <= _scalar(v_max_mV, "v_max_mV", signed=True)
    return mask


def explained_variance_over_time(v_true, v_pred, segment_ms=1000.0, dt_ms=1.0):
    """Variance explained in consecutive non-overlapping segments.

    Segments hold ``round(segment_ms / dt_ms)`` samples; a trailing partial
    segment is discarded. Segments where ``v_true`` is constant get ``nan``
    (this is a series for plotting long-run stability, not a scalar metric).

    Args:
        v_true: Ground-truth voltage, shape (N,), mV.
        v_pred: Predicted voltage, shape (N,), mV.
        segment_ms: Segment length in ms (> 0, at least 2 samples).
        dt_ms: Sampling interval in ms (> 0).

    Returns:
        ``(t_mid_ms, ev)``: segment centre times in ms (sample i is at
        ``i * dt_ms``) and variance explained, both shape (K,), K = number of
        complete segments. Raises ValueError if the trace is shorter than one.
    """
    a, b = _pair(v_true, v_pred)
    seg = _scalar(segment_ms, "segment_ms", positive=True)
    dt = _scalar(dt_ms, "dt_ms", positive=True)
    n_seg = int(round(seg / dt))
    if n_seg < 2:
        raise ValueError(f"segment_ms={segment_ms} must span at least 2 samples of dt_ms={dt_ms}")
    k = a.size // n_seg
    if k == 0:
        raise ValueError(f"segment_ms={segment_ms} is longer than the trace ({a.size} samples)")
    a2, b2 = a[: k * n_seg].reshape(k, n_seg), b[: k * n_seg].reshape(k, n_seg)
    const = a2.max(axis=1) == a2.min(axis=1)
    ev = 1.0 - np.mean((a2 - b2) ** 2, axis=1) / np.where(const, 1.0, a2.var(axis=1))
    return (np.arange(k) + 0.5) * n_seg * dt, np.where(const, np.nan, ev)


def match_spikes(t_true_ms, t_pred_ms, window_ms):
    """Optimal one-to-one matching of true and predicted spikes.

    Finds pairs with ``|t_pred - t_true| <= window_ms`` maximising the number
    of pairs and, among maximum matchings, minimising ``sum |t_pred - t_true|``.
    Some optimal matching between sorted sequences is non-crossing, so a dynamic
    programme over the sorted lists is exact. It only visits, for each true
    spike, the predicted spikes inside its window: O((n + m) log(n + m) + sum of
    window occupancies) time, i.e. near-linear for realistic spike trains.

    Args:
        t_true_ms: True spike times, shape (n,), ms, any order.
        t_pred_ms: Predicted spike times, shape (m,), ms, any order.
        window_ms: Non-negative matching tolerance in ms.

    Returns:
        ``(pairs_true_idx, pairs_pred_idx)``: int arrays of shape (M,) indexing
        the *input* arrays, ordered by increasing true spike time.
    """
    t_true = _as_1d(t_true_ms, "t_true_ms")
    t_pred = _as_1d(t_pred_ms, "t_pred_ms")
    w = _scalar(window_ms, "window_ms")
    oa, ob = np.argsort(t_true, kind="stable"), np.argsort(t_pred, kind="stable")
    a, b = t_true[oa], t_pred[ob]
    n, m = a.size, b.size
    if n == 0 or m == 0:
        return np.zeros(0, dtype=int), np.zeros(0, dtype=int)
    # f[i][j] = best (count, -cost) matching a[:i] with b[:j]. Row i is stored on
    # the band lo[i] <= j <= hi[i] (prefixes of b reaching a[i-1]'s window):
    # f[i][j] = f[i][hi[i]] for j > hi[i], and no j < lo[i] is ever read.
    lo = np.concatenate(([0], np.searchsorted(b, a - w, side="left"))).tolist()
    hi = np.concatenate(([0], np.searchsorted(b, a + w, side="right"))).tolist()
    al, bl = a.tolist(), b.tolist()
    rows, moves = [[(0, 0.0)]], [[0]]  # moves: 0 up (a[i-1] unmatched), 1 left, 2 pair
    for i in range(1, n + 1):
        prev, plo, phi, ai = rows[i - 1], lo[i - 1], hi[i - 1], al[i - 1]
        row, mv = [prev[min(lo[i], phi) - plo]], [0]
        for j in range(lo[i] + 1, hi[i] + 1):
            best, move = row[-1], 1
            cand = prev[min(j, phi) - plo]
            if cand > best:
                best, move = cand, 0
            c, s = prev[min(j - 1, phi) - plo]
            cand = (c + 1, s - abs(bl[j - 1] - ai))
            if cand > best:
                best, move = cand, 2
            row.append(best)
            mv.append(move)
        rows.append(row)
        moves.append(mv)
    pi, pj = [], []
    i, j = n, m
    while i > 0 and j > 0:
        j = min(j, hi[i])
        move = moves[i][j - lo[i]]
        if move == 2:
            pi.append(i - 1)
            pj.append(j - 1)
        j -= move > 0
        i -= move != 1
    return oa[np.array(pi[::-1], dtype=int)], ob[np.array(pj[::-1], dtype=int)]


def _pr(n_match: int, n_true: int, n_pred: int) -> tuple[float, float]:
    return (float(n_match / n_pred) if n_pred else 1.0, float(n_match / n_true) if n_true else 1.0)


def spike_precision_recall(t_true_ms, t_pred_ms, window_ms):
    """Precision, recall and timing shifts of predicted spikes.

    Conventions for empty trains: no true and no predicted spikes gives
    ``(1.0, 1.0)``; no predicted but some true spikes gives precision 1.0
    (nothing wrong was predicted), recall 0.0; predicted but no true spikes
    gives precision 0.0, recall 1.0 (nothing was missed).

    Args:
        t_true_ms: True spike times, shape (n,), ms.
        t_pred_ms: Predicted spike times, shape (m,), ms.
        window_ms: Non-negative matching tolerance in ms (see :func:`match_spikes`).

    Returns:
        ``(precision, recall, shifts_ms)`` with ``shifts_ms = t_pred - t_true``
        for the M matched pairs, shape (M,), ms, ordered by true spike time.
    """
    t_true = _as_1d(t_true_ms, "t_true_ms")
    t_pred = _as_1d(t_pred_ms, "t_pred_ms")
    it, ip = match_spikes(t_true, t_pred, window_ms)
    return (*_pr(it.size, t_true.size, t_pred.size), t_pred[ip] - t_true[it])


def firing_rate_error(t_true_ms, t_pred_ms, duration_ms) -> dict[str, float]:
    """Mean firing rates and their error over a trial.

    ``relative_rate_error = (rate_pred - rate_true) / rate_true``, defined as
    0.0 when both rates are 0 and ``inf`` when only ``rate_true`` is 0.

    Args:
        t_true_ms: True spike times, shape (n,), ms.
        t_pred_ms: Predicted spike times, shape (m,), ms.
        duration_ms: Positive trial duration in ms.

    Returns:
        Dict with ``rate_true_Hz``, ``rate_pred_Hz``, ``rate_error_Hz``
        (pred - true) and ``relative_rate_error`` (dimensionless).
    """
    seconds = _scalar(duration_ms, "duration_ms", positive=True) / 1000.0
    rt = _as_1d(t_true_ms, "t_true_ms").size / seconds
    rp = _as_1d(t_pred_ms, "t_pred_ms").size / seconds
    rel = (rp - rt) / rt if rt > 0 else (0.0 if rp == 0 else float("inf"))
    return {"rate_true_Hz": float(rt), "rate_pred_Hz": float(rp),
            "rate_error_Hz": float(rp - rt), "relative_rate_error": float(rel)}


def _voltage_entries(a, b, mask) -> dict[str, float]:
    out = {}
    for suffix, sel in (("", slice(None)), ("_sub", mask)):
        x, y = a[sel], b[sel]
        ok = x.size >= 2 and not _is_constant(x)
        out["variance_explained" + suffix] = variance_explained(x, y) if ok else float("nan")
        ok = ok and not _is_constant(y)
        out["pearson_r" + suffix] = pearson_r(x, y) if ok else float("nan")
    return out


def _spike_entries(trains, windows_ms, n_true, n_pred) -> dict[str, float]:
    windows = _as_1d(np.atleast_1d(windows_ms), "windows_ms", min_size=1)
    windows = [_scalar(w, "windows_ms") for w in windows.tolist()]
    out: dict[str, float] = {}
    for w in windows:
        matches = [(t, p, *match_spikes(t, p, w)) for t, p in trains]
        n_match = sum(it.size for _, _, it, _ in matches)
        out[f"precision_{w:g}ms"], out[f"recall_{w:g}ms"] = _pr(n_match, n_true, n_pred)
        if w == max(windows):
            shifts = np.concatenate([p[ip] - t[it] for t, p, it, ip in matches])
    s = shifts if shifts.size else np.full(1, np.nan)  # nan when nothing matched
    out.update(mean_shift_ms=float(np.mean(s)), median_shift_ms=float(np.median(s)),
               median_abs_shift_ms=float(np.median(np.abs(s))))
    return out


def pooled_spike_fidelity(spikes_true_list, spikes_pred_list, windows_ms=(10.0, 2.0)) -> dict[str, float]:
    """Spike metrics pooled over many trains (trials, or the cells of a circuit), without voltages:
    each true train matched one to one with its predicted train, match and spike counts summed;
    keys as in :func:`pooled_fidelity` (``precision_{w}ms``, ``recall_{w}ms``, shift statistics of the
    widest window) plus ``n_spikes_true``, ``n_spikes_pred``."""
    if len(spikes_true_list) != len(spikes_pred_list):
        raise ValueError(f"spikes_true_list ({len(spikes_true_list)}) and spikes_pred_list "
                         f"({len(spikes_pred_list)}) differ in length")
    trains = [(_as_1d(t, f"spikes_true_list[{k}]"), _as_1d(p, f"spikes_pred_list[{k}]"))
              for k, (t, p) in enumerate(zip(spikes_true_list, spikes_pred_list))]
    n_true, n_pred = sum(t.size for t, _ in trains), sum(p.size for _, p in trains)
    return {**_spike_entries(trains, windows_ms, n_true, n_pred), "n_spikes_true": float(n_true),
            "n_spikes_pred": float(n_pred)}


CONFIDENCE_EDGES = (0.0, 0.35, 0.5, 0.7, 1.0)


def spike_confidence_table(spikes_true_list, spikes_pred_list, confidence_list, window_ms: float = 10.0,
                           edges=CONFIDENCE_EDGES) -> list[dict[str, float]]:
    """What a predicted spike's confidence says about it, pooled over trials.

    Every predicted train is matched one to one with its true train (:func:`match_spikes`,
    ``window_ms``). For each bin ``[edges[i], edges[i+1])`` of confidence (the last bin includes
    its upper edge) the table gives the number of predicted spikes in it and the fraction of them
    that were matched, and what keeping only the spikes with confidence ``>= edges[i]`` gives:
    precision and recall, re-matched after the others are dropped.

    Args:
        spikes_true_list, spikes_pred_list: spike times per trial, ms.
        confidence_list: per trial, one confidence in [0, 1] per predicted spike (e.g.
            :func:`neurosurrogate.surrogate.model.spike_confidence`).
        window_ms: matching tolerance, ms.
        edges: increasing bin edges in [0, 1].

    Returns:
        One dict per bin: ``conf_from``, ``conf_to``, ``n_pred``, ``conf_mean`` (the mean
        confidence in the bin) and ``matched_fraction`` (both nan for an empty bin),
        ``precision_at_least``, ``recall_at_least``, ``n_pred_at_least``.

    Raises:
        ValueError: lists of unequal length, a confidence list that does not match its spike
            train, confidences outside [0, 1], or edges that are not increasing within [0, 1].
    """
    n = len(spikes_pred_list)
    if len(spikes_true_list) != n or len(confidence_list) != n:
        raise ValueError(f"spikes_true_list ({len(spikes_true_list)}), spikes_pred_list ({n}) and "
                         f"confidence_list ({len(confidence_list)}) differ in length")
    e = _as_1d(edges, "edges", min_size=2)
    if np.any(np.diff(e) <= 0) or e[0] < 0 or e[-1] > 1:
        raise ValueError(f"edges must increase within [0, 1], got {e.tolist()}")
    w = _scalar(window_ms, "window_ms")
    trains = []
    for k in range(n):
        t = _as_1d(spikes_true_list[k], f"spikes_true_list[{k}]")
        p = _as_1d(spikes_pred_list[k], f"spikes_pred_list[{k}]")
        c = _as_1d(confidence_list[k], f"confidence_list[{k}]")
        if c.size != p.size:
            raise ValueError(f"confidence_list[{k}] has {c.size} entries for {p.size} predicted spikes")
        if c.size and (c.min() < 0 or c.max() > 1):
            raise ValueError(f"confidence_list[{k}]: confidences must lie in [0, 1]")
        hit = np.zeros(p.size, dtype=bool)
        hit[match_spikes(t, p, w)[1]] = True
        trains.append((t, p, c, hit))
    conf = np.concatenate([c for _, _, c, _ in trains])
    hit = np.concatenate([h for _, _, _, h in trains])
    n_true = sum(t.size for t, _, _, _ in trains)
    rows = []
    for i, (lo, hi) in enumerate(zip(e[:-1], e[1:])):
        last = i == e.size - 2
        in_bin = (conf >= lo) & ((conf <= hi) if last else (conf < hi))
        n_kept = int(np.count_nonzero(conf >= lo))
        if n_kept == conf.size:  # nothing dropped: the matching above
            n_match = int(hit.sum())
        else:
            n_match = sum(match_spikes(t, p[c >= lo], w)[0].size for t, p, c, _ in trains)
        prec, rec = _pr(n_match, n_true, n_kept)
        rows.append({"conf_from": float(lo), "conf_to": float(hi), "n_pred": float(in_bin.sum()),
                     "conf_mean": float(conf[in_bin].mean()) if in_bin.any() else float("nan"),
                     "matched_fraction": float(hit[in_bin].mean()) if in_bin.any() else float("nan"),
                     "precision_at_least": prec, "recall_at_least": rec, "n_pred_at_least": float(n_kept)})
    return rows


def fidelity_report(v_true, v_pred, spikes_true_ms, spikes_pred_ms, duration_ms,
                    windows_ms=(10.0, 2.0), dt_ms=1.0) -> dict[str, float]:
    """All fidelity metrics of one trial as a flat dict of floats.

    Keys: ``variance_explained``, ``pearson_r``, ``variance_explained_sub``,
    ``pearson_r_sub`` (subthreshold samples per :func:`subthreshold_mask` with
    the true spikes), ``precision_{w:g}ms`` / ``recall_{w:g}ms`` for each window
    w, ``mean_shift_ms``, ``median_shift_ms``, ``median_abs_shift_ms`` (from the
    matches at the largest window), ``n_spikes_true``, ``n_spikes_pred``,
    ``rate_true_Hz``, ``rate_pred_Hz``, ``rate_error_Hz``.

    Undefined entries are ``nan`` instead of raising: voltage metrics when the
    (selected) truth is constant (e.g. a quiet trial at rest) or has < 2
    samples, Pearson entries also for a constant prediction, shift entries
    when nothing matched. Empty-train conventions: :func:`spike_precision_recall`.

    Args:
        v_true: Ground-truth voltage, shape (N,), mV.
        v_pred: Predicted voltage, shape (N,), mV.
        spikes_true_ms: True spike times, shape (n,), ms.
        spikes_pred_ms: Predicted spike times, shape (m,), ms.
        duration_ms: Positive trial duration in ms (for rates).
        windows_ms: Non-negative matching windows in ms.
        dt_ms: Voltage sampling interval in ms (sample i is at ``i * dt_ms``).

    Returns:
        Flat ``dict[str, float]`` as described above.
    """
    a, b = _pair(v_true, v_pred, min_size=1)
    st = _as_1d(spikes_true_ms, "spikes_true_ms")
    sp = _as_1d(spikes_pred_ms, "spikes_pred_ms")
    dur = _scalar(duration_ms, "duration_ms", positive=True)
    return pooled_fidelity([a], [b], [st], [sp], [dur], windows_ms=windows_ms, dt_ms=dt_ms)


def pooled_fidelity(v_true_list, v_pred_list, spikes_true_list, spikes_pred_list,
                    durations_ms, windows_ms=(10.0, 2.0), dt_ms=1.0) -> dict[str, float]:
    """Fidelity metrics pooled over many trials (what evaluation tables report).

    Voltage metrics are computed on the concatenation of all trials (the
    subthreshold mask is built per trial from its own true spikes). Spikes are
    matched per trial; match counts and spike counts are summed and shifts
    pooled before computing precision, recall and shift statistics. Rates are
    total spikes over total duration. Keys and nan conventions are those of
    :func:`fidelity_report`.

    Args:
        v_true_list: T ground-truth traces, trace k of shape (N_k,), mV.
        v_pred_list: T predicted traces, shapes matching ``v_true_list``, mV.
        spikes_true_list: T arrays of true spike times, ms.
        spikes_pred_list: T arrays of predicted spike times, ms.
        durations_ms: Positive trial durations, shape (T,), ms.
        windows_ms: Non-negative matching windows in ms.
        dt_ms: Voltage sampling interval in ms.

    Returns:
        Flat ``dict[str, float]``.
    """
    lens = {"v_true_list": len(v_true_list), "v_pred_list": len(v_pred_list),
            "spikes_true_list": len(spikes_true_list), "spikes_pred_list": len(spikes_pred_list)}
    durs = _as_1d(durations_ms, "durations_ms", min_size=1)
    if set(lens.values()) != {durs.size}:
        raise ValueError(f"trial lists {lens} and durations_ms ({durs.size}) differ in length")
    if np.any(durs <= 0):
        raise ValueError("durations_ms must all be positive")
    dt = _scalar(dt_ms, "dt_ms", positive=True)
    volts, trains = [], []
    for k in range(durs.size):
        a, b = _pair(v_true_list[k], v_pred_list[k], 1, (f"v_true_list[{k}]", f"v_pred_list[{k}]"))
        st = _as_1d(spikes_true_list[k], f"spikes_true_list[{k}]")
        volts.append((a, b, subthreshold_mask(a, st, t_ms=np.arange(a.size) * dt)))
        trains.append((st, _as_1d(spikes_pred_list[k], f"spikes_pred_list[{k}]")))
    all_true, all_pred = (np.concatenate(x) for x in zip(*trains))
    n_true, n_pred = all_true.size, all_pred.size
    rates = firing_rate_error(all_true, all_pred, float(durs.sum()))
    del rates["relative_rate_error"]
    volt = _voltage_entries(*(np.concatenate(x) for x in zip(*volts)))
    return {**volt, **_spike_entries(trains, windows_ms, n_true, n_pred),
            "n_spikes_true": float(n_true), "n_spikes_pred": float(n_pred), **rates}


def away_from_spikes_mask(n_samples, spikes_true_ms, spikes_pred_ms, margin_ms=5.0, dt_ms=1.0) -> np.ndarray:
    """Samples farther than ``margin_ms`` from every true and every predicted spike.

    Sample i is at ``t = i * dt_ms``; it is kept (True) iff ``|t - s| > margin_ms`` for
    every s in ``spikes_true_ms`` and ``spikes_pred_ms``.

    Args:
        n_samples: number of samples N (>= 0).
        spikes_true_ms: true spike times, shape (n,), ms.
        spikes_pred_ms: predicted spike times, shape (m,), ms.
        margin_ms: non-negative half-width of the excluded window, ms.
        dt_ms: sampling interval, ms (> 0).

    Returns:
        Boolean array, shape (N,).
    """
    n = int(n_samples)
    if n < 0 or n != n_samples:
        raise ValueError(f"n_samples must be a whole number >= 0, got {n_samples!r}")
    margin = _scalar(margin_ms, "margin_ms")
    dt = _scalar(dt_ms, "dt_ms", positive=True)
    spikes = np.sort(np.concatenate([_as_1d(spikes_true_ms, "spikes_true_ms"),
                                     _as_1d(spikes_pred_ms, "spikes_pred_ms")]))
    t = np.arange(n, dtype=float) * dt
    # no spike s with t - margin <= s <= t + margin
    return np.searchsorted(spikes, t + margin, "right") == np.searchsorted(spikes, t - margin, "left")


def site_fidelity(true_list, pred_list, name: str = "signal") -> dict[str, float]:
    """Pearson r and variance explained of one recorded signal, pooled over trials.

    Args:
        true_list: ground-truth traces, trace k of shape (N_k,) (e.g. mV or mA/cm2).
        pred_list: predicted traces, shapes matching ``true_list``.
        name: used in error messages.

    Returns:
        ``{"pearson_r": r, "variance_explained": ve}`` on the concatenation of all trials;
        ``nan`` where undefined (constant truth or prediction, fewer than 2 samples).
    """
    if len(true_list) != len(pred_list):
        raise ValueError(f"{name}: {len(true_list)} true and {len(pred_list)} predicted traces")
    if not len(true_list):
        return {"pearson_r": float("nan"), "variance_explained": float("nan")}
    pairs = [_pair(a, b, 1, (f"{name} true[{k}]", f"{name} pred[{k}]"))
             for k, (a, b) in enumerate(zip(true_list, pred_list))]
    a, b = (np.concatenate(x) for x in zip(*pairs))
    ok = a.size >= 2 and not _is_constant(a)
    return {"pearson_r": pearson_r(a, b) if ok and not _is_constant(b) else float("nan"),
            "variance_explained": variance_explained(a, b) if ok else float("nan")}


def crop_trial(v, spikes_ms, skip_ms: float, dt_ms: float = 1.0):
    """Leave out the first ``skip_ms`` of a trial: the samples with ``t < skip_ms`` and the
    spikes before ``skip_ms``; the remaining times are shifted by ``-skip_ms``.

    Args:
        v: trace of shape (..., N) sampled every ``dt_ms`` from t = 0 (any unit).
        spikes_ms: spike times, shape (k,), ms.
        skip_ms: non-negative whole number of samples' worth of time, ms, < N * dt_ms.
        dt_ms: sampling interval, ms.

    Returns:
        ``(v[..., skip:], spikes[spikes >= skip_ms] - skip_ms)`` with ``skip = skip_ms / dt_ms``.
    """
    v = np.asarray(v)
    skip = _scalar(skip_ms, "skip_ms")
    dt = _scalar(dt_ms, "dt_ms", positive=True)
    k = int(round(skip / dt))
    if abs(k * dt - skip) > 1e-9 or k >= v.shape[-1]:
        raise ValueError(f"skip_ms={skip_ms} must be a whole number of samples shorter than the trial "
                         f"({v.shape[-1]} samples of {dt:g} ms)")
    st = _as_1d(spikes_ms, "spikes_ms")
    return v[..., k:], st[st >= skip] - skip


def multicompartment_fidelity(v_true_list, v_pred_list, spikes_true_list, spikes_pred_list, durations_ms,
                              sites_true=None, sites_pred=None, margin_ms=5.0, windows_ms=(10.0, 2.0),
                              dt_ms=1.0) -> dict[str, float]:
    """:func:`pooled_fidelity` plus the metrics of a multi-compartment cell.

    Adds ``pearson_r_away{margin:g}ms`` (soma r away from true and predicted spikes, see
    :func:`away_from_spikes_mask`; nan if fewer than 2 such samples) and, for each
    signal ``name`` in ``sites_true``, ``{name}_pearson_r`` and ``{name}_variance_explained``
    (:func:`site_fidelity`).

    Args:
        v_true_list, v_pred_list, spikes_true_list, spikes_pred_list, durations_ms, windows_ms,
            dt_ms: as :func:`pooled_fidelity` (soma voltage mV, spike times ms).
        sites_true, sites_pred: ``{name: [trace per trial]}`` of further signals, e.g.
            ``v_dend0_mV``; every name of ``sites_true`` must be in ``sites_pred``.
        margin_ms: half-width of the window left out around each spike, ms.

    Returns:
        Flat ``dict[str, float]``.
    """
    out = pooled_fidelity(v_true_list, v_pred_list, spikes_true_list, spikes_pred_list, durations_ms,
                          windows_ms=windows_ms, dt_ms=dt_ms)
    a, b = [], []
    for k, (vt, vp) in enumerate(zip(v_true_list, v_pred_list)):
        vt, vp = _pair(vt, vp, 1, (f"v_true_list[{k}]", f"v_pred_list[{k}]"))
        keep = away_from_spikes_mask(vt.size, spikes_true_list[k], spikes_pred_list[k], margin_ms, dt_ms)
        a.append(vt[keep])
        b.append(vp[keep])
    a, b = np.concatenate(a), np.concatenate(b)
    ok = a.size >= 2 and not _is_constant(a) and not _is_constant(b)
    out[f"pearson_r_away{_scalar(margin_ms, 'margin_ms'):g}ms"] = pearson_r(a, b) if ok else float("nan")
    sites_true, sites_pred = dict(sites_true or {}), dict(sites_pred or {})
    missing = set(sites_true) - set(sites_pred)
    if missing:
        raise ValueError(f"sites_pred lacks {sorted(missing)}")
    for name, tr in sites_true.items():
        for key, val in site_fidelity(tr, sites_pred[name], name).items():
            out[f"{name}_{key}"] = val
    return out
