"""The physics prior of ``gru_prior``: measured PSP kernels (NEURON), their exponential fit, the streaming
prior channels, model files, configs and errors."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch
from conftest import REPO, SHARED

from neurosurrogate.biophys.psp import fit_exponential_kernels
from neurosurrogate.surrogate.architectures.gru_prior import PRIOR_V_SCALE_MV
from neurosurrogate.surrogate.base import build

MORPH = SHARED / "hay2011" / "cell1.asc"
TAUS = [2.0, 10.0]


def kernels_npz(path, n_syn=3, n_sites=2, seed=0, kinds=None):
    """A kernels file as scripts/hay_psp_kernels.py writes it (random coefficients)."""
    rng = np.random.default_rng(seed)
    coef = rng.normal(size=(n_syn, n_sites, len(TAUS))).astype(np.float32)
    kinds = kinds or (["exc"] * (n_syn - 1) + ["inh"])
    np.savez(path, coef_mV=coef, taus_ms=np.asarray(TAUS), kind=np.array(kinds),
             meta=json.dumps({"args": {"t0_ms": 100.0, "window_ms": 50}}))
    return coef


def test_exponential_fit_recovers_a_sum_of_exponentials_and_checks_its_input():
    lag = np.arange(80.0)
    true = np.array([[1.5, -0.7, 0.2]])
    taus = [1.0, 6.0, 40.0]
    k = true @ np.exp(-lag[None, :] / np.asarray(taus)[:, None])
    coef, fitted = fit_exponential_kernels(k, taus, ridge=0.0)
    np.testing.assert_allclose(coef, true, atol=1e-8)
    np.testing.assert_allclose(fitted, k, atol=1e-10)
    with pytest.raises(ValueError, match="time constants"):
        fit_exponential_kernels(k, [1.0, -2.0])
    with pytest.raises(ValueError, match="finite"):
        fit_exponential_kernels(np.full((1, 5), np.nan), taus)


def test_prior_channels_are_each_synapses_kernel_by_kind(tmp_path):
    """One event of weight 2 (default weights) at synapse 0 (exc) at t = 5: the exc channels of each site
    are coef * a^(t-5) * 2 / 20 mV from its bin on, the inh channels stay 0; summed over the time
    constants they give the measured kernel."""
    coef = kernels_npz(tmp_path / "k.npz")
    net = build("gru_prior", 6, 5, prior_file=str(tmp_path / "k.npz"), hidden=8).eval()
    x = torch.zeros(1, 30, 6)
    x[0, 5, 0] = 2.0
    x[0, 5, 1] = 0.7  # an onset fraction: not part of the prior
    with torch.no_grad():
        qs = net._prior_seq(x, torch.zeros(1, 2 * 2 * len(TAUS)))
        p = net.channels(qs)[0].numpy()  # (T, kind x site)
        q = qs[0].numpy()  # (T, C), C = (kind, site, j)
    q = q.reshape(30, 2, 2, len(TAUS))
    lag = np.arange(25.0)
    expect = 2.0 / PRIOR_V_SCALE_MV * coef[0][None] * np.exp(-lag[:, None, None] / np.asarray(TAUS))
    np.testing.assert_allclose(q[5:, 0], expect, atol=1e-6)
    assert np.abs(q[:5]).max() < 1e-6 and np.abs(q[:, 1]).max() < 1e-6
    np.testing.assert_allclose(p.reshape(30, 2, 2)[5:, 0], expect.sum(-1), atol=1e-6)
    assert net.n_in == 6 and net.inp.weight.shape[1] == 6 + net.n_prior == 6 + 4


def test_forward_equals_steps_fused_or_not_and_model_files_load_without_the_kernels(tmp_path, monkeypatch):
    from neurosurrogate.surrogate.model import Encoding, SurrogateModel

    n_syn = 5
    kernels_npz(tmp_path / "k.npz", n_syn=n_syn, n_sites=3)
    torch.manual_seed(0)
    net = build("gru_prior", 2 * n_syn, 3, prior_file=str(tmp_path / "k.npz"), hidden=16, traces=2).eval()
    rng = np.random.default_rng(1)
    x = torch.zeros(3, 60, 2 * n_syn)
    m = torch.from_numpy(rng.random((3, 60, n_syn)) < 0.2)
    x[..., 0::2][m] = 1.0
    outs = {}
    for fused in ("0", "1"):
        monkeypatch.setenv("NEUROSURROGATE_FAST_STEP", fused)
        with torch.no_grad():
            y, st = net(x)
            state, ys = net.init_state(3), []
            for t in range(60):
                yt, state = net.step(x[:, t], state)
                ys.append(yt)
        torch.testing.assert_close(torch.stack(ys, 1), y, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(state[-1], st[-1], atol=1e-5, rtol=1e-5)
        outs[fused] = y
    torch.testing.assert_close(outs["0"], outs["1"], atol=1e-5, rtol=1e-5)
    assert net.config["prior_taus_ms"] == TAUS and net.config["prior_sites"] == 3
    assert "prior_file" not in net.config and net.config["prior_source"]["file"] == "k.npz"
    enc = Encoding(synapse_weights_nS=[1.0] * n_syn, v_rest_mV=-70.0)
    SurrogateModel(net, enc).save(tmp_path / "model")
    (tmp_path / "k.npz").unlink()  # the model file holds the kernels
    loaded = SurrogateModel.load(tmp_path / "model").net
    torch.testing.assert_close(loaded.prior_mix, net.prior_mix)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x)[0], outs["1"], atol=1e-5, rtol=1e-5)


def test_bad_priors_are_named(tmp_path):
    with pytest.raises(ValueError, match="prior_file"):
        build("gru_prior", 6, 5)
    with pytest.raises(ValueError, match="not a PSP-kernel NPZ"):
        build("gru_prior", 6, 5, prior_file=str(tmp_path / "missing.npz"))
    kernels_npz(tmp_path / "k.npz", n_syn=4)
    with pytest.raises(ValueError, match="do not fit 3 synapses"):
        build("gru_prior", 6, 5, prior_file=str(tmp_path / "k.npz"))
    with pytest.raises(ValueError, match="2 features per synapse"):
        build("gru_prior", 7, 5, prior_taus_ms=[2.0], prior_sites=1)


def test_config_resolves_the_kernels_beside_it(tmp_path):
    from neurosurrogate.train.config import TrainConfig

    (tmp_path / "c.toml").write_text('arch = "gru_prior"\ntrain_data = ["a.h5"]\nval_data = ["b.h5"]\n'
                                     '[arch_params]\nprior_file = "k/psp.npz"\n')
    cfg = TrainConfig.from_toml(tmp_path / "c.toml")
    assert cfg.arch_params["prior_file"] == str(tmp_path / "k" / "psp.npz")


@pytest.mark.neuron
@pytest.mark.skipif(not MORPH.exists(), reason=f"no Hay 2011 morphology at {MORPH}")
def test_psp_kernels_script_measures_neuron(tmp_path):
    """Two excitatory synapses and one inhibitory at rest, 30 ms: depolarising / hyperpolarising at the
    soma, the fit written beside them, and a model built from the file."""
    import subprocess

    out = tmp_path / "psp.npz"
    r = subprocess.run([sys.executable, str(REPO / "scripts" / "hay_psp_kernels.py"), "--morphology", str(MORPH),
                        "--out", str(out), "--window-ms", "30", "--workers", "1", "--taus-ms", "2,8",
                        "--synapses", "0,1,199"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    with np.load(out) as f:
        k, coef, kind = f["kernels_mV"], f["coef_mV"], f["kind"]
    assert k.shape == (3, 3, 30) and coef.shape == (3, 3, 2) and list(kind) == ["exc", "exc", "inh"]
    assert k[:2, 0].sum(1).min() > 0 and k[2, 0].sum() < 0
    script = [sys.executable, str(REPO / "scripts" / "hay_psp_kernels.py")]
    r = subprocess.run(script + ["--refit", str(out), "--taus-ms", "1,5,25", "--out", str(tmp_path / "re.npz")],
                       capture_output=True, text=True, timeout=120)  # no NEURON: the stored kernels fitted again
    assert r.returncode == 0, r.stderr
    with np.load(tmp_path / "re.npz") as f:
        assert f["coef_mV"].shape == (3, 3, 3) and np.array_equal(f["kernels_mV"], k)
        assert json.loads(str(f["meta"]))["args"]["window_ms"] == 30
    for args, message in ((["--morphology", str(MORPH), "--out", str(tmp_path / "x.txt")], "--out"),
                          (["--refit", str(tmp_path / "k.npz"), "--out", str(tmp_path / "y.npz")], "not an NPZ"),
                          (["--out", str(tmp_path / "z.npz")], "--morphology")):
        if message == "not an NPZ":
            kernels_npz(tmp_path / "k.npz")
        bad = subprocess.run(script + args, capture_output=True, text=True, timeout=120)
        assert bad.returncode == 2 and message in bad.stderr and "Traceback" not in bad.stderr

