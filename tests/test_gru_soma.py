"""gru_soma: the GRU's drive into an excitable soma (exponential integrate-and-fire unit)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from neurosurrogate.inputs import EventTable
from neurosurrogate.surrogate.architectures.gru_soma import _Unit
from neurosurrogate.surrogate.base import build
from neurosurrogate.surrogate.model import Encoding, SurrogateModel

V_PEAK = -30.0


def reference_unit(drive, v, w, n_sub, vt, delta, k_m, dec_w, b, v_reset):
    """The unit written plainly, differentiated by autograd (resets by comparison, no gradient)."""
    dt = 1.0 / n_sub
    ends, maxs = [], []
    for t in range(drive.shape[1]):
        vm = v
        for _ in range(n_sub):
            ex = torch.exp(((v - vt) / delta).clamp(max=10.0))
            v1 = v + k_m * (drive[:, t] - v + delta * ex) - dt * w
            vm = torch.maximum(vm, v1)
            f = (v1 >= V_PEAK).detach()
            v = torch.where(f, v_reset.expand_as(v1), v1)
            w = dec_w * w + b * f.to(w.dtype)
        ends.append(v)
        maxs.append(vm)
    return torch.stack(ends, 1), torch.stack(maxs, 1)


def unit_inputs(seed=0, B=3, T=40):
    g = torch.Generator().manual_seed(seed)
    drive = (-50.0 + 10.0 * torch.randn(B, T, generator=g, dtype=torch.float64)).requires_grad_()
    params = [torch.tensor(x, dtype=torch.float64, requires_grad=True)
              for x in (-52.0, 2.0, 0.25 / 2.0, math.exp(-0.25 / 30.0), 0.5, -60.0)]
    v0 = torch.full((B,), -65.0, dtype=torch.float64)
    return drive, v0, torch.zeros(B, dtype=torch.float64), params


def grads(out, drive, params, seed=1):
    g = torch.Generator().manual_seed(seed)
    end, vmax = out
    loss = (end * torch.randn(end.shape, generator=g, dtype=end.dtype)).sum() + \
        (vmax * torch.randn(vmax.shape, generator=g, dtype=end.dtype)).sum()
    return torch.autograd.grad(loss, [drive, *params])


def test_hand_written_backward_equals_autograd():
    """Forward and every gradient (drive, V_T, Delta, k_m, w decay, b, V_reset) equal autograd's on the
    plain loop, with spikes and resets in the window (the gradient cap set out of reach)."""
    drive, v0, w0, params = unit_inputs()
    ref = reference_unit(drive, v0, w0, 4, *params)
    end, vmax, v, w = _Unit.apply(drive, v0, w0, 4, V_PEAK, 10.0, *params)
    assert int((vmax >= V_PEAK).sum()) >= 5  # the unit fired, so the reset and adaptation paths count
    torch.testing.assert_close(end, ref[0])
    torch.testing.assert_close(vmax, ref[1])
    for a, b in zip(grads((end, vmax), drive, params), grads(ref, drive, params)):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)
    assert not v.requires_grad and not w.requires_grad  # the state is carried on, not differentiated


def test_gradient_cap_keeps_the_upstroke_from_exploding():
    drive, v0, w0, params = unit_inputs()
    exact = grads(_Unit.apply(drive, v0, w0, 4, V_PEAK, 10.0, *params)[:2], drive, params)
    capped = grads(_Unit.apply(drive, v0, w0, 4, V_PEAK, 2.0, *params)[:2], drive, params)
    assert exact[0].abs().max() > 1e3  # through e^10 on the upstroke the exact gradient explodes
    assert all(torch.isfinite(g).all() for g in capped) and capped[0].abs().max() < 50


def soma_model(drive_mV: float, **kw) -> SurrogateModel:
    torch.manual_seed(0)
    enc = Encoding((2.5, 8.0), -70.0, v_clip_mV=-55.0)
    m = SurrogateModel.create("gru_soma", enc, hidden=8, layers=1, **kw)
    with torch.no_grad():  # a constant drive: the head's voltage row is its bias alone
        m.net.head.weight.zero_()
        m.net.head.bias.zero_()
        m.net.head.bias[0] = (drive_mV - enc.v_rest_mV) / enc.v_scale_mV
        m.net.head.bias[1] = 5.0  # the GRU's own spike logit is not used
    m.net.eval()
    return m


def test_create_hands_the_unit_the_encodings_voltages():
    m = soma_model(-70.0)
    assert m.net.config["v_rest_mV"] == -70.0 and m.net.config["v_clip_mV"] == -55.0
    assert m.net.config["v_scale_mV"] == 20.0 and m.net.soma_parameters()["V_T_mV"] == -52.0


def test_strong_drive_fires_regularly_weak_drive_rests(tmp_path):
    empty = EventTable(np.zeros(0), np.zeros(0, dtype=np.int64), np.zeros(0))
    fires = soma_model(-45.0).predict([empty], 300.0, device="cpu")[0]
    t = fires.spike_times_ms
    isi = np.diff(t)
    assert len(t) >= 5 and isi.min() >= 3.0 and np.ptp(isi[-5:]) <= 1.0  # regular after adapting
    assert fires.v_mV.max() <= -55.0 + 1e-9  # clipped as trained
    assert fires.v_mV.min() < -56.0  # reset below the clip after each spike
    rests = soma_model(-65.0)
    trace = rests.predict([empty], 300.0, device="cpu")[0]
    assert len(trace.spike_times_ms) == 0 and abs(trace.v_mV[-1] - (-65.0)) < 0.5
    rests.save(tmp_path / "m")  # the unit's parameters and configuration survive a round trip
    again = SurrogateModel.load(tmp_path / "m").predict([empty], 300.0, device="cpu")[0]
    np.testing.assert_allclose(again.v_mV, trace.v_mV)


def test_warm_rest_includes_the_unit():
    m = soma_model(-62.0)
    m.net.set_rest_from_silence(500)
    v, w = m.net._soma_rest
    assert abs(v - (-62.0)) < 0.1 and w == 0.0
    st = m.net.init_state(2)
    assert torch.allclose(st[-2], torch.full((2, 1), v))
    m.net.train()  # training starts from the configured rest, as every trial did
    assert torch.allclose(m.net.init_state(2)[-2], torch.full((2, 1), -70.0))


@pytest.mark.parametrize("kw, match", [
    (dict(soma_substeps=0), "soma_substeps"),
    (dict(soma_tau_ms=0.0), "soma_tau_ms"),
    (dict(soma_vt_mV=-20.0), "soma_v_reset_mV < soma_vt_mV < soma_v_peak_mV"),
    (dict(soma_delta_mV=float("nan")), "soma_delta_mV"),
    (dict(v_clip_mV="high"), "v_clip_mV"),
])
def test_bad_parameters_are_named(kw, match):
    with pytest.raises(ValueError, match=match):
        build("gru_soma", 4, 5, hidden=8, layers=1, **kw)


def test_spike_loss_reaches_the_drive_of_a_fired_bin():
    """A bin where the unit fired scores (V_peak - theta) / kappa, and its gradient reaches the drive
    (straight through the cap), so a false spike can be trained away."""
    m = soma_model(-45.0)
    net = m.net.train()
    y, _ = net(torch.zeros(1, 60, net.n_in))
    logit = y[0, :, 1]
    top = float(((V_PEAK - net.theta) / net.log_kappa.exp()).detach())
    fired = torch.isclose(logit, torch.tensor(top), atol=1e-4)
    assert fired.sum() >= 3 and (logit[~fired] < top).all()
    (g,) = torch.autograd.grad(logit[fired].sum(), net.head.bias)
    assert g[0] > 0  # more drive, higher maximum: the loss of a false spike pushes the drive down
