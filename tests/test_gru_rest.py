"""The warmed-up resting state of GRU surrogates (``rest_warmup_ms`` in the training config / card)."""

from __future__ import annotations

import pytest
import torch

from neurosurrogate.surrogate.base import build
from neurosurrogate.surrogate.model import Encoding, ModelError, SurrogateModel
from neurosurrogate.train.config import TrainConfig


def small_model(traces: int = 0) -> SurrogateModel:
    torch.manual_seed(0)
    enc = Encoding((2.5, 8.0), -65.0)
    return SurrogateModel(build("gru", enc.n_in, enc.n_out, hidden=16, layers=2, traces=traces), enc)


@pytest.mark.parametrize("traces", [0, 2])
def test_rest_is_the_fixed_point_of_silence(traces):
    net = small_model(traces).net.eval()
    with torch.no_grad():
        y0, _ = net(torch.zeros(1, 30, net.n_in))  # from zeros: a start transient
        net.set_rest_from_silence(2000)
        st = net.init_state(3)
        y, st2 = net(torch.zeros(3, 30, net.n_in), st)
    assert torch.allclose(st[0][:, 0], net._rest) and torch.allclose(st[0][:, 2], net._rest)
    assert torch.count_nonzero(st[0]) > 0 and (traces == 0 or torch.count_nonzero(st[1]) == 0)
    # silence from rest stays at rest (to float32 rounding), unlike silence from zeros
    assert (y[:, :, 0] - y[:, :1, 0]).abs().max() < 1e-4 < (y0[:, :, 0] - y0[:, -1:, 0]).abs().max()
    assert torch.allclose(st2[0], st[0], atol=1e-4)
    net.train()  # training always starts from zeros, as the model was trained
    assert torch.count_nonzero(net.init_state(2)[0]) == 0
    with pytest.raises(ValueError, match="warm-up"):
        net.set_rest_from_silence(0)


def test_card_asks_for_warm_rest_on_load(tmp_path):
    m = small_model()
    m.card = {"rest_warmup_ms": 500}
    m.save(tmp_path / "m")
    loaded = SurrogateModel.load(tmp_path / "m")
    assert loaded.net._rest is not None
    m.card = {}
    m.save(tmp_path / "plain")
    assert SurrogateModel.load(tmp_path / "plain").net._rest is None  # models without the key: zeros, as before
    torch.manual_seed(0)
    tcn = SurrogateModel(build("tcn", 4, 3, channels=8, kernel=2, levels=2), Encoding((2.5, 8.0), -65.0),
                         {"rest_warmup_ms": 100})
    tcn.save(tmp_path / "tcn")
    with pytest.raises(ModelError, match="no warm rest"):
        SurrogateModel.load(tmp_path / "tcn")


def test_train_config_rest_warmup_validated(tmp_path):
    with pytest.raises(ValueError, match="rest_warmup_ms must be >= 0"):
        TrainConfig(train_data=("a.h5",), val_data=("b.h5",), rest_warmup_ms=-1)
    cfg = TrainConfig(train_data=("a.h5",), val_data=("b.h5",))
    assert "rest_warmup_ms" not in cfg.key_dict()  # checkpoints from before the key still resume
