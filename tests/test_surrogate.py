"""Surrogate model: encoding, spike decoding, files, training loop, resume, contract."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from neurosurrogate.inputs import EventTable
from neurosurrogate.surrogate.model import Encoding, ModelError, SurrogateModel, decode_spikes
from neurosurrogate.train.losses import surrogate_loss

ENC = Encoding(synapse_weights_nS=(2.5, 8.0), v_rest_mV=-67.5, current_scales=(0.1, 0.1))


def test_encoding_keeps_sub_ms_onsets_and_scales_by_weight():
    ev = EventTable([3.25, 3.75, 7.0], [0, 1, 0], [2.5, 16.0, 5.0])
    x = ENC.features(ev, 10)
    assert x.shape == (10, 4)
    assert np.allclose(x[3], [1.0, 0.25, 2.0, 1.5])
    assert np.allclose(x[7], [2.0, 0.0, 0.0, 0.0])


def test_targets_and_decoding_round_trip():
    spikes = [np.array([10.3, 55.9])]
    v = np.full((1, 100), -67.5)
    z = ENC.targets(v, spikes, np.zeros((1, 100)), np.zeros((1, 100)))
    assert z[0, 10, 1] == 1 and np.isclose(z[0, 10, 2], 0.3) and z[0, 55, 1] == 1 and np.allclose(z[0, :, 0], 0)
    p = np.zeros(100)
    p[[9, 10, 11]] = [0.6, 0.9, 0.7]  # one run of bins -> one spike at the most probable bin
    p[55] = 0.8
    off = np.full(100, 0.3)
    off[55] = 0.9
    assert np.allclose(decode_spikes(p, off), [10.3, 55.9])
    assert decode_spikes(np.zeros(5), np.zeros(5)).size == 0


def test_loss_parts_are_zero_for_perfect_prediction():
    z = torch.zeros(2, 50, 5)
    z[0, 10, 1], z[0, 10, 2] = 1.0, 0.4
    y = z.clone()
    y[..., 1] = torch.where(z[..., 1] > 0, torch.tensor(30.0), torch.tensor(-30.0))
    y[..., 2] = torch.logit(torch.clamp(z[..., 2], 1e-6, 1 - 1e-6))
    total, parts = surrogate_loss(y, z)
    assert parts["v"] == 0 and parts["spike"] < 1e-6 and parts["offset"] < 1e-6 and float(total) < 1e-5


def test_save_load_round_trip_is_safe_and_exact(tmp_path):
    torch.manual_seed(0)
    m = SurrogateModel.create("gru", ENC, hidden=8, layers=1)
    m.card = {"note": "test"}
    m.save(tmp_path / "m")
    assert (tmp_path / "m" / "model.safetensors").exists()
    back = SurrogateModel.load(tmp_path / "m")
    ev = EventTable([1.0, 5.5], [0, 1], [2.5, 8.0])
    a, b = m.predict(ev, 50, device="cpu"), back.predict(ev, 50, device="cpu")
    assert np.array_equal(a.v_mV, b.v_mV) and back.card["note"] == "test"
    with pytest.raises(ModelError, match="neither a shipped model"):
        SurrogateModel.load(tmp_path / "nothing")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "model.json").write_text("{")
    with pytest.raises(ModelError, match="unreadable"):
        SurrogateModel.load(tmp_path / "bad")


def test_predict_rejects_bad_input():
    m = SurrogateModel.create("gru", ENC, hidden=4, layers=1)
    with pytest.raises(ValueError, match="synapse"):
        m.predict(EventTable([1.0], [5], [1.0]), 10)
    with pytest.raises(ValueError, match="duration_ms"):
        m.predict(EventTable.empty(), 0.5)


def test_tiny_model_overfits_one_batch():
    torch.manual_seed(0)
    m = SurrogateModel.create("gru", ENC, hidden=16, layers=1)
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.random((4, 120, 4)).astype(np.float32))
    z = torch.zeros(4, 120, 5)
    z[..., 0] = torch.cumsum(x[..., 0] - 0.5, 1) * 0.1
    opt = torch.optim.Adam(m.net.parameters(), lr=1e-2)
    first = None
    for _ in range(300):
        y, _ = m.net(x)
        loss, parts = surrogate_loss(y, z, spike_weight=0.0, offset_weight=0.0, current_weight=0.0)
        first = first if first is not None else float(loss.detach())
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss.detach()) < first / 20


@pytest.mark.gpu
def test_cuda_prediction_matches_cpu():
    torch.manual_seed(0)
    m = SurrogateModel.create("gru", ENC, hidden=16, layers=2)
    ev = EventTable(np.arange(0, 200, 3.3), np.arange(61) % 2, np.full(61, 3.0))
    a = m.predict(ev, 200, device="cpu")
    b = m.predict(ev, 200, device="cuda")
    assert np.abs(a.v_mV - b.v_mV).max() < 1e-3


def test_arch_spec_parsing():
    from neurosurrogate.evaluate.compare import parse_arch_spec

    assert parse_arch_spec("gru") == ("gru", {})
    assert parse_arch_spec("gru:hidden=32:layers=1") == ("gru", {"hidden": 32, "layers": 1})
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_arch_spec("gru:hidden")


def test_curriculum_pools_rest_then_subthreshold_then_all():
    from neurosurrogate.train.config import TrainConfig
    from neurosurrogate.train.loop import Tensors, _pool

    data = Tensors(torch.zeros(4, 1, 1), torch.zeros(4, 1, 3), rates_Hz=np.array([0.0, 0.0, 5.0, 20.0]),
                   n_events=np.array([0, 7, 9, 30]))
    cfg = TrainConfig(train_data=("a.h5",), val_data=("b.h5",), max_steps=100, curriculum=True)
    assert _pool(cfg, data, 5).tolist() == [0]  # rest: no input
    assert _pool(cfg, data, 20).tolist() == [0, 1]  # subthreshold: no spikes
    assert _pool(cfg, data, 50).tolist() == [0, 1, 2, 3]
    plain = TrainConfig(train_data=("a.h5",), val_data=("b.h5",), max_steps=100)
    assert _pool(plain, data, 5).tolist() == [0, 1, 2, 3]
