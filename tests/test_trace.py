"""Spike detection and 1 kHz resampling on synthetic signals with known answers."""

import numpy as np
import pytest

from neurosurrogate.data.trace import bin_mean_1khz, detect_spikes, resample_1khz


def test_detect_spikes_interpolates_crossings():
    dt = 0.025
    t = np.arange(0, 10, dt)
    v = -70 + 10 * t  # crosses -20 mV at t = 5 ms exactly
    assert np.allclose(detect_spikes(v, dt, -20.0), [5.0])
    v2 = np.where((t > 2) & (t < 3), 30.0, -70.0)
    sp = detect_spikes(v2, dt, -20.0)
    assert len(sp) == 1 and 2.0 <= sp[0] <= 2.0 + dt
    assert detect_spikes(np.array([1.0]), dt, 0.0).size == 0


def test_resample_keeps_peak_only_in_its_bin():
    dt = 0.025
    n = 10
    t = np.arange(0, n + dt / 2, dt)
    v = -70 + 100 * np.exp(-((t - 4.6) ** 2) / 0.05)  # peak 30 mV at 4.6 ms, inside bin 4
    sp = detect_spikes(v, dt, -20.0)
    out = resample_1khz(v, dt, n, sp)
    assert out.shape == (n,) and np.isclose(out[4], v.max())
    for k in (0, 1, 2, 3, 5, 6, 7, 8, 9):
        assert out[k] == v[k * 40]
    with pytest.raises(ValueError):
        resample_1khz(v, 0.03, n, sp)


def test_bin_mean():
    x = np.repeat(np.arange(5.0), 40)
    assert np.allclose(bin_mean_1khz(np.append(x, 99.0), 0.025, 5), np.arange(5.0))
