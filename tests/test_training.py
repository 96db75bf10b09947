"""Training on real NEURON data: checkpoint/resume exactness, config errors, end to end."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from neurosurrogate.biophys.cells import get_cell
from neurosurrogate.train.config import TrainConfig
from neurosurrogate.train.loop import TrainError, train

pytestmark = pytest.mark.neuron


@pytest.fixture(scope="module")
def small_data(tmp_path_factory):
    from neurosurrogate.biophys.generate import generate_dataset

    d = tmp_path_factory.mktemp("data")
    cell = get_cell("point-hh")
    tr = generate_dataset(d / "train.h5", cell, 160, 1000, seed=11, protocol="mixed", progress=False)
    va = generate_dataset(d / "val.h5", cell, 16, 1000, seed=12, protocol="mixed", progress=False)
    te = generate_dataset(d / "test.h5", cell, 24, 1000, seed=13, protocol="paper", progress=False)
    return tr, va, te


def _cfg(small_data, out, **kw):
    tr, va, _ = small_data
    base = dict(arch="gru", arch_params={"hidden": 8, "layers": 1}, train_data=(str(tr),), val_data=(str(va),),
                out_dir=str(out), batch_size=4, chunk_ms=250, max_steps=12, eval_every=4, checkpoint_every=4,
                threads=1, device="cpu")
    base.update(kw)
    return TrainConfig(**base)


def test_resume_gives_identical_weights(small_data, tmp_path):
    cfg_a = _cfg(small_data, tmp_path / "a")
    a = train(cfg_a, progress=False, log=lambda *x: None)
    cfg_b = _cfg(small_data, tmp_path / "b")
    train(cfg_b, progress=False, log=lambda *x: None, stop_after_steps=4)  # "interrupted" after 4 steps
    ck = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=True)
    assert ck["step"] == 4
    b = train(cfg_b, progress=False, log=lambda *x: None)  # resumes
    sa, sb = a.net.state_dict(), b.net.state_dict()
    fa = torch.load(tmp_path / "a" / "checkpoint.pt", weights_only=True)["model"]
    fb = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=True)["model"]
    for k in fa:
        assert torch.equal(fa[k], fb[k]), k
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k
    assert (tmp_path / "a" / "model" / "model.json").exists()
    with pytest.raises(TrainError, match="different configuration"):
        train(dataclasses.replace(cfg_b, lr=1e-2), progress=False, log=lambda *x: None)


def test_rest_warmup_goes_into_the_card(small_data, tmp_path):
    from neurosurrogate.surrogate.model import SurrogateModel

    train(_cfg(small_data, tmp_path / "w", max_steps=4, rest_warmup_ms=300), progress=False, log=lambda *x: None)
    m = SurrogateModel.load(tmp_path / "w" / "model")
    assert m.card["rest_warmup_ms"] == 300 and m.card["train_config"]["rest_warmup_ms"] == 300
    assert m.net._rest is not None and torch.count_nonzero(m.net.init_state(1)[0]) > 0


def test_config_errors(small_data, tmp_path):
    tr, va, _ = small_data
    with pytest.raises(ValueError, match="both training and validation"):
        TrainConfig(train_data=(str(tr),), val_data=(str(tr),))
    with pytest.raises(ValueError, match="val_data"):
        TrainConfig(train_data=(str(tr),))
    with pytest.raises(ValueError, match="batch_size"):
        _cfg(small_data, tmp_path, batch_size=0)
    with pytest.raises(ValueError, match="voltage_weight must be >= 0"):
        _cfg(small_data, tmp_path, voltage_weight=-1.0)
    (tmp_path / "c.toml").write_text('arch = "gru"\nbogus = 1\n')
    with pytest.raises(ValueError, match="unknown key"):
        TrainConfig.from_toml(tmp_path / "c.toml")
    (tmp_path / "t.toml").write_text(f'train_data = ["{tr}"]\nval_data = ["{va}"]\nlr = "3e-3"\n')
    with pytest.raises(ValueError, match="lr must be a number, got '3e-3'"):  # was: "'<' not supported ..."
        TrainConfig.from_toml(tmp_path / "t.toml")
    for key, val, msg in (("batch_size", 3.5, "a whole number"), ("curriculum", 1, "true or false"),
                          ("max_steps", True, "a whole number"), ("v_clip_mV", "x", "a number or nothing")):
        with pytest.raises(ValueError, match=f"{key} must be {msg}"):
            _cfg(small_data, tmp_path, **{key: val})
    assert _cfg(small_data, tmp_path, lr=1, v_clip_mV=None).lr == 1  # a whole number is a number
    (tmp_path / "d.toml").write_text('arch = \n')
    with pytest.raises(ValueError, match="not valid TOML"):
        TrainConfig.from_toml(tmp_path / "d.toml")
    with pytest.raises(ValueError, match="unknown architecture"):
        train(_cfg(small_data, tmp_path / "x", arch="nope"), progress=False)


def test_end_to_end_small_surrogate_learns_the_cell(small_data, tmp_path):
    """A small GRU trained for 300 steps (~1 min on 2 cores) on 160 s of NEURON data, then run free
    from rest on unseen paper-protocol trials. Modest bar (the shipped model is held to the issue's
    targets): variance explained >= 0.75, spike precision and recall at +-10 ms >= 0.9 (measured
    on this machine: 0.86, 0.98 and 0.96)."""
    from neurosurrogate.data.dataset import load_dataset
    from neurosurrogate.evaluate.rollout import evaluate_dataset

    # one torch thread: with two, a step took 1.6 s instead of 0.2 s while other processes used the
    # two cores (OpenMP threads spinning against them), and the 10-minute budget ran out at step 278
    cfg = _cfg(small_data, tmp_path / "e2e", arch_params={"hidden": 32, "layers": 2}, batch_size=16,
               chunk_ms=500, max_steps=300, max_minutes=10.0, eval_every=50, checkpoint_every=300,
               threads=1, lr=5e-3, lr_final=5e-3)
    model = train(cfg, progress=False, log=lambda *x: None)
    m = evaluate_dataset(model, load_dataset(small_data[2]), "test").metrics
    print(model.card["training"]["steps"], m)
    assert model.card["training"]["steps"] == 300
    assert m["variance_explained"] >= 0.75
    assert m["recall_10ms"] >= 0.9 and m["precision_10ms"] >= 0.9


@pytest.mark.parametrize("source", ["true", "own"])
def test_spike_history_model_trains_and_decodes_at_its_own_threshold(small_data, tmp_path, source):
    """gru_history: the kernel learns in training (from zero), driven by the recorded spikes or the
    model's own; the saved model decodes spikes at its decision threshold (no calibrated other one)."""
    from neurosurrogate.surrogate.model import SurrogateModel

    params = {"hidden": 8, "layers": 1, "history_taus_ms": [3.0, 30.0], "history_threshold": 0.4,
              "history_train": source}
    m = train(_cfg(small_data, tmp_path / source, arch="gru_history", arch_params=params, lr=1e-2),
              progress=False, log=lambda *x: None)
    loaded = SurrogateModel.load(tmp_path / source / "model")
    thr = loaded.card["spike_threshold_calibration"]["threshold"]  # calibrated by running at each threshold
    assert loaded.net.history_train == source and loaded.encoding.spike_threshold == thr
    assert loaded.net.history_threshold == thr and loaded.net.config["history_threshold"] == thr
    if source == "true":  # the recorded spikes drive it from the first step (own spikes only once the model fires)
        assert torch.count_nonzero(m.net.w_hist) > 0  # gradients reached the kernel
    from neurosurrogate.data.dataset import load_dataset

    te = load_dataset(small_data[2])
    pred = loaded.predict(te.events[:2], te.duration_ms)
    assert len(pred) == 2 and all(len(p.v_mV) == int(te.duration_ms) for p in pred)
    if source == "true":  # the kernel plot of the experiment hay_history, and its clear error for another model
        import subprocess
        import sys
        from pathlib import Path

        script = Path(__file__).resolve().parents[1] / "benchmarks" / "hay_history_kernels.py"
        ok = subprocess.run([sys.executable, str(script), str(tmp_path / source / "model"), "--out",
                             str(tmp_path / "k.png")], capture_output=True, text=True, timeout=300)
        assert ok.returncode == 0 and (tmp_path / "k.png").stat().st_size > 1000, ok.stderr
        bad = subprocess.run([sys.executable, str(script), "point-hh", "--out", str(tmp_path / "b.png")],
                             capture_output=True, text=True, timeout=300)
        assert bad.returncode == 2 and "not gru_history" in bad.stderr and not (tmp_path / "b.png").exists()


def test_model_from_checkpoint_writes_the_last_weights(small_data, tmp_path):
    """scripts/model_from_checkpoint.py: a model folder with the run's last weights (not the best-validation
    ones), the run's encoding and card; a folder that is no finished run gets a clear error."""
    import subprocess
    import sys
    from pathlib import Path

    from neurosurrogate.surrogate.model import SurrogateModel

    script = Path(__file__).resolve().parent.parent / "scripts" / "model_from_checkpoint.py"
    run = tmp_path / "r"
    train(_cfg(small_data, run, max_steps=8), progress=False, log=lambda *x: None)
    r = subprocess.run([sys.executable, str(script), str(run), str(tmp_path / "last")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    last = SurrogateModel.load(tmp_path / "last")
    ck = torch.load(run / "checkpoint.pt", weights_only=True)
    assert ck["step"] == 8 and "step 8" in last.card["weights"]
    for k, v in last.net.state_dict().items():
        assert torch.equal(v, ck["model"][k]), k
    assert last.encoding == SurrogateModel.load(run / "model").encoding
    bad = subprocess.run([sys.executable, str(script), str(tmp_path), str(tmp_path / "x")], capture_output=True, text=True)
    assert bad.returncode == 2 and "expected a finished training run" in bad.stderr and not (tmp_path / "x").exists()
