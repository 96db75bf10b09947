"""Recorded traces: spike detection and 1 kHz resampling that keeps AP peaks.

Spike times are detected at the simulator's full resolution as upward
crossings of a threshold ``theta`` (mV), linearly interpolated between the
two samples that bracket the crossing:

    t_spike = t_k + dt * (theta - v_k) / (v_{k+1} - v_k),  v_k < theta <= v_{k+1}

The 1 kHz record ``v_mV[k]`` is the voltage sampled at ``t = k`` ms, except
in the millisecond bin ``[k, k+1)`` that contains the peak of an action
potential, where it is the maximum of the full-resolution voltage in that
bin. A plain 1 kHz sample would cut AP peaks (an HH spike is ~1 ms wide at
half height) at random heights; keeping the bin maximum, as Olah et al.
(2022) did, keeps the true peak once per spike and leaves every other
sample an exact point sample. Currents (``ina``, ``ik``, mA/cm2) are bin
means over ``[k, k+1)``, so the 1 kHz record conserves charge.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Trace:
    """A simulated or predicted trace at 1 kHz.

    Attributes:
        t_ms: (n,) sample times, ms (0, 1, 2, ...).
        v_mV: (n,) soma membrane potential, mV (AP peaks kept, see module doc).
        spike_times_ms: (k,) spike times, ms.
        ina: (n,) sodium current density, mA/cm2 (bin means), or None.
        ik: (n,) potassium current density, mA/cm2 (bin means), or None.
        meta: free-form metadata (units, thresholds).
    """

    t_ms: np.ndarray
    v_mV: np.ndarray
    spike_times_ms: np.ndarray
    ina: np.ndarray | None = None
    ik: np.ndarray | None = None
    meta: dict = field(default_factory=dict)

    def save_npz(self, path, meta: dict | None = None, extra: dict[str, np.ndarray] | None = None) -> None:
        """Write the trace arrays, any ``extra`` arrays by name, and ``meta`` (as a JSON string
        array) to an NPZ, atomically."""
        import json

        from neurosurrogate.data.io import atomic_path

        arrays = {**self.to_npz_dict(), **(extra or {})}
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, **arrays, meta=np.array(json.dumps(meta or {}, default=str)))

    def to_npz_dict(self) -> dict[str, np.ndarray]:
        out = {"t_ms": self.t_ms, "v_mV": self.v_mV, "spike_times_ms": self.spike_times_ms}
        if self.ina is not None:
            out["ina"] = self.ina
        if self.ik is not None:
            out["ik"] = self.ik
        return out


def detect_spikes(v: np.ndarray, dt_ms: float, threshold_mV: float, t0_ms: float = 0.0) -> np.ndarray:
    """Upward threshold crossings, linearly interpolated.

    Args:
        v: (n,) voltage sampled every ``dt_ms`` starting at ``t0_ms``, mV.
        dt_ms: sample interval, ms.
        threshold_mV: crossing level, mV.

    Returns:
        (k,) float64 spike times, ms.
    """
    v = np.asarray(v, dtype=float)
    if v.size < 2:
        return np.zeros(0)
    k = np.flatnonzero((v[:-1] < threshold_mV) & (v[1:] >= threshold_mV))
    frac = (threshold_mV - v[k]) / (v[k + 1] - v[k])
    return t0_ms + (k + frac) * dt_ms


def resample_1khz(
    v_full: np.ndarray, dt_ms: float, duration_ms: float, spike_times_ms: np.ndarray,
    peak_search_ms: float = 2.0,
) -> np.ndarray:
    """Down-sample a full-resolution voltage to 1 kHz, keeping each AP peak.

    Args:
        v_full: (m,) voltage at ``t = i * dt_ms``, mV (m >= duration_ms/dt_ms + 1).
        dt_ms: integration step, ms; 1 ms must be a whole number of steps.
        duration_ms: record length, ms (whole number); output has that many samples.
        spike_times_ms: detected spike times; the peak of each is searched in
            ``[t_spike, t_spike + peak_search_ms]``.

    Returns:
        (duration_ms,) float64 voltage in mV.
    """
    per_ms = int(round(1.0 / dt_ms))
    if abs(per_ms * dt_ms - 1.0) > 1e-9:
        raise ValueError(f"dt_ms={dt_ms} must divide 1 ms exactly")
    n = int(round(duration_ms))
    v_full = np.asarray(v_full, dtype=float)
    out = v_full[: n * per_ms : per_ms].copy()
    win = int(round(peak_search_ms / dt_ms))
    for ts in np.asarray(spike_times_ms, dtype=float):
        i0 = int(np.floor(ts / dt_ms))
        seg = v_full[i0 : min(i0 + win + 1, v_full.size)]
        if seg.size == 0:
            continue
        ip = i0 + int(np.argmax(seg))
        k = ip // per_ms
        if k < n:
            out[k] = max(out[k], v_full[ip])
    return out


def bin_mean_1khz(x_full: np.ndarray, dt_ms: float, duration_ms: float) -> np.ndarray:
    """Mean of a full-resolution signal over each 1 ms bin ``[k, k+1)``; (duration_ms,) float64."""
    per_ms = int(round(1.0 / dt_ms))
    n = int(round(duration_ms))
    x = np.asarray(x_full, dtype=float)[: n * per_ms]
    return x.reshape(n, per_ms).mean(axis=1)
