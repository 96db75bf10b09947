"""Surrogates of multi-compartment cells: training on dendritic voltages and the Ca current,
prediction (API and CLI), evaluation with the dendritic metrics and --skip-ms.

The first tests use small synthetic datasets in the hay-l5pc file layout (no NEURON): their
"cell" is a few filters of the input, enough to check every field, shape, scale and error.
The last test does the same on a tiny real hay-l5pc dataset (NEURON in spawned workers; skips
without the morphology in ../shared/hay2011).
"""

from __future__ import annotations

import dataclasses
import json
import re

import numpy as np
import pytest

from conftest import SHARED, cli
from neurosurrogate.data import dataset as ds
from neurosurrogate.inputs import EventTable
from neurosurrogate.surrogate.model import SurrogateModel
from neurosurrogate.train.config import TrainConfig
from neurosurrogate.train.loop import TrainError, make_encoding, train

T_MS = 200
WEIGHTS = (3.0, 3.0, 3.0, 1.0)  # three excitatory synapses, one inhibitory (nS)
SITES = [{"section": "apic[36]", "target_dist_um": 400.0}, {"section": "apic[37]", "target_dist_um": 700.0}]
ICA_SITE = {"section": "apic[37]", "x_node": 0.577, "dist_um": 786.2}


def _filter(drive: np.ndarray, tau_ms: float) -> np.ndarray:
    out, acc = np.zeros_like(drive), 0.0
    for k, d in enumerate(drive):
        acc = acc * np.exp(-1.0 / tau_ms) + d
        out[k] = acc
    return out


def _trial(rng) -> tuple[EventTable, dict]:
    """A synthetic trial: soma, two dendritic sites and ica as filtered synaptic drive."""
    n = int(rng.integers(20, 120))
    t = np.sort(rng.uniform(0, T_MS, n))
    syn = rng.integers(0, 4, n)
    ev = EventTable(t, syn, np.asarray(WEIGHTS)[syn])
    drive = np.zeros(T_MS)
    np.add.at(drive, t.astype(int), np.where(syn < 3, 1.0, -1.5))
    v = -77.25 + 2.0 * _filter(drive, 10.0)
    spikes = t[(syn == 0)][:3] + 0.5  # some spike times (the content need not be physical)
    v_dend = np.stack([-74.2 + 3.0 * _filter(drive, 15.0), -71.25 + 4.0 * _filter(drive, 30.0)])
    ica = -1e-5 - 1e-3 * np.maximum(v_dend[1] + 65.0, 0.0)
    arrays = {"v_mV": v, "ina": -0.01 * (v + 77.25), "ik": 0.005 * (v + 77.25), "spike_times_ms": spikes,
              "v_dend_mV": v_dend, "ica": ica}
    return ev, arrays


STATE_NAMES = ["soma.cai", "soma.HayKPst.h"]


def _write(out, n: int, seed: int, multicompartment: bool = True, states: bool = False):
    rng = np.random.default_rng(seed)
    for i in range(n):
        ev, arrays = _trial(rng)
        if not multicompartment:
            arrays = {k: v for k, v in arrays.items() if k not in ("v_dend_mV", "ica")}
        if states:  # a Ca2+ concentration following the dendrite, a gate following the soma slowly
            arrays["states"] = np.stack([1e-4 + 1e-6 * np.maximum(arrays["v_dend_mV"][1] + 70.0, 0.0),
                                         0.6 - 0.01 * _filter(arrays["v_mV"] + 77.25, 50.0) / 50.0])
        ds.write_part(out, i, ev, arrays)
    syn = [{"index": j, "kind": "exc" if w == 3.0 else "inh", "weight_nS": w} for j, w in enumerate(WEIGHTS)]
    extra = {"sites": SITES, "ica_site": ICA_SITE, "v_rest_mV": -77.25} if multicompartment else {}
    if states:
        extra["state_names"] = STATE_NAMES
    cell = {"name": "synthetic"}  # one "cell"; the point files just lack the extra records
    return ds.assemble(out, {"duration_ms": float(T_MS), "seed": seed, "protocol": "synthetic"}, cell, syn,
                       {"test": True}, n, extra_attrs=extra)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("mc")
    return {"dir": d, "train": _write(d / "train.h5", 10, 1), "val": _write(d / "val.h5", 3, 2),
            "test": _write(d / "test.h5", 4, 3), "point": _write(d / "point.h5", 4, 4, multicompartment=False),
            "states": _write(d / "states.h5", 10, 1, states=True)}


def _cfg(data, out, **kw):
    base = dict(arch="gru", arch_params={"hidden": 8, "layers": 1}, train_data=(str(data["train"]),),
                val_data=(str(data["val"]),), out_dir=str(out), batch_size=4, chunk_ms=100, max_steps=6,
                eval_every=3, checkpoint_every=3, threads=1, device="cpu", targets=("v_dend", "ica"))
    base.update(kw)
    return TrainConfig(**base)


@pytest.fixture(scope="module")
def trained(data):
    return train(_cfg(data, data["dir"] / "run"), progress=False, log=lambda *a: None)


def test_encoding_scales_extras_from_the_data(data):
    d = ds.load_dataset(data["train"])
    enc = make_encoding([d], targets=("v_dend", "ica"))
    assert enc.extra_names == ("v_dend0_mV", "v_dend1_mV", "ica")
    v0, v1, ica = enc.extras
    assert (v0.offset, v0.scale, v0.unit) == (pytest.approx(-74.2, abs=1e-4), 20.0, "mV")
    assert v1.offset == pytest.approx(np.median(d.v_dend_mV[:, 1, 0]))
    assert ica.offset == pytest.approx(np.median(d.ica[:, 0])) and ica.scale == pytest.approx(d.ica.std(), rel=1e-5)
    assert enc.v_rest_mV == pytest.approx(np.median(d.v_mV[:, 0]))
    # the default (no targets) keeps the point-cell behaviour: soma currents only
    assert make_encoding([d]).extra_names == ("ina", "ik")
    assert make_encoding([d], predict_currents=False).extras == ()
    assert make_encoding([d], targets=("ica", "ina")).extra_names == ("ica", "ina")
    with pytest.raises(TrainError, match="'v_dend' requested, but dataset"):
        make_encoding([ds.load_dataset(data["point"])], targets=("v_dend",))


def test_training_on_dendritic_targets(trained, data):
    run = data["dir"] / "run"
    assert trained.encoding.extra_names == ("v_dend0_mV", "v_dend1_mV", "ica")
    card = json.loads((run / "model" / "model.json").read_text())["card"]
    assert card["sites"] == SITES and card["ica_site"] == ICA_SITE
    assert [o["name"] for o in card["outputs"]] == ["v_dend0_mV", "v_dend1_mV", "ica"]
    assert card["train_config"]["targets"] == ["v_dend", "ica"] and card["training"]["steps"] == 6
    # the loss covered the groups: a changed dendritic weight changes the configuration key
    with pytest.raises(TrainError, match="different configuration"):
        train(_cfg(data, run, dend_weight=2.0), progress=False, log=lambda *a: None)
    # validation data without the targets is refused with the file named
    with pytest.raises(TrainError, match="point.h5"):
        train(_cfg(data, data["dir"] / "bad", val_data=(str(data["point"]),)), progress=False, log=lambda *a: None)


def test_dend_weight_reaches_the_dendritic_head(data, tmp_path):
    """Two optimizer steps from the same initial weights: with dend_weight 1 the output rows of
    v_dend0/1 move; with dend_weight 0 they get no gradient and stay exactly as initialised
    (while the ica row still moves)."""
    import torch

    torch.manual_seed(0)
    fresh = SurrogateModel.create("gru", make_encoding([ds.load_dataset(data["train"])], targets=("v_dend", "ica")),
                                  hidden=8, layers=1)
    w0 = fresh.net.head.weight.detach()
    on = train(_cfg(data, tmp_path / "on", max_steps=2, seed=0), progress=False, log=lambda *a: None)
    off = train(_cfg(data, tmp_path / "off", max_steps=2, seed=0, dend_weight=0.0), progress=False, log=lambda *a: None)
    # (the returned models are the best by validation loss; both runs validate after step 2 only)
    w_on, w_off = on.net.head.weight.detach(), off.net.head.weight.detach()
    assert not torch.allclose(w0[3:5], w_on[3:5])
    assert torch.equal(w0[3:5], w_off[3:5]) and not torch.allclose(w0[5], w_off[5])


def test_predict_api_and_cli(trained, data, tmp_path):
    model = SurrogateModel.load(data["dir"] / "run" / "model")
    ev, _ = _trial(np.random.default_rng(9))
    tr = model.predict(ev, 150, device="cpu")
    assert tr.v_mV.shape == (150,) and tr.v_dend_mV.shape == (2, 150) and tr.ica.shape == (150,)
    assert np.isfinite(tr.v_dend_mV).all() and tr.meta["sites"] == SITES
    both = model.predict([ev, ev], 150, device="cpu")
    assert np.allclose(both[1].v_dend_mV, tr.v_dend_mV, atol=1e-3)
    ev.save(tmp_path / "ev.npz")
    r = cli("predict", "--model", str(data["dir"] / "run" / "model"), "--events", str(tmp_path / "ev.npz"),
            "--duration-ms", "150", "--out", str(tmp_path / "pred.npz"), "--plot", str(tmp_path / "pred.png"))
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "pred.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"  # soma, spike probability, dendrites
    z = np.load(tmp_path / "pred.npz")
    assert set(z.files) == {"t_ms", "v_mV", "spike_times_ms", "v_dend_mV", "ica", "spike_prob", "spike_confidence",
                            "meta"}
    assert z["v_dend_mV"].shape == (2, 150) and z["ica"].shape == (150,)
    assert np.allclose(z["v_dend_mV"], tr.v_dend_mV, atol=1e-3) and np.array_equal(z["t_ms"], np.arange(150.0))
    meta = json.loads(str(z["meta"]))
    assert meta["units"]["v_dend_mV"] == "mV" and meta["sites"] == SITES and "ica" in meta["outputs"]
    # an event on synapse 4 does not fit this 4-synapse model
    np.savez(tmp_path / "bad.npz", t_ms=[1.0, 2.0], synapse=[0, 4], weight_nS=[1.0, 1.0])
    r = cli("predict", "--model", str(data["dir"] / "run" / "model"), "--events", str(tmp_path / "bad.npz"),
            "--out", str(tmp_path / "p.npz"))
    assert r.returncode == 2 and "row 1: index 4" in r.stderr and "has 4 synapses" in r.stderr
    assert not (tmp_path / "p.npz").exists()


def test_evaluate_reports_dendritic_metrics_and_skips_ms(trained, data, tmp_path):
    from neurosurrogate.evaluate.rollout import evaluate_dataset

    model = SurrogateModel.load(data["dir"] / "run" / "model")
    d = ds.load_dataset(data["test"])
    full = evaluate_dataset(model, d, "t").metrics
    late = evaluate_dataset(model, d, "t", skip_ms=50).metrics
    keys = {"pearson_r_away5ms", "v_dend0_mV_pearson_r", "v_dend1_mV_pearson_r", "ica_pearson_r",
            "v_dend0_mV_variance_explained", "precision_2ms", "recall_10ms", "median_abs_shift_ms"}
    assert keys <= set(full)
    # skipping 50 ms scores only t >= 50: the same numbers as cropping by hand
    from neurosurrogate.evaluate.metrics import site_fidelity

    preds = model.predict(d.events, T_MS, device="cpu")
    want = site_fidelity([x[0, 50:] for x in d.v_dend_mV], [p.v_dend_mV[0, 50:] for p in preds])
    assert late["v_dend0_mV_pearson_r"] == pytest.approx(want["pearson_r"], rel=1e-9)
    assert late["n_spikes_true"] == sum(int((s >= 50).sum()) for s in d.spike_times_ms)
    assert late["v_dend0_mV_pearson_r"] != full["v_dend0_mV_pearson_r"]
    # data without the dendritic / Ca records (point files, the Hay reference has no ica): the soma is
    # scored, the outputs without data are listed as not scored, and none of their keys appear
    ev = evaluate_dataset(model, ds.load_dataset(data["point"]), "p")
    assert ev.extra["not_scored"] == ["v_dend0_mV", "v_dend1_mV", "ica"]
    assert "pearson_r" in ev.metrics and not any(k.startswith(("v_dend", "ica")) for k in ev.metrics)
    # the CLI
    out = tmp_path / "rep"
    r = cli("evaluate", "--model", str(data["dir"] / "run" / "model"), "--data", str(data["test"]),
            "--long-run-s", "0", "--skip-ms", "50", "--out-dir", str(out))
    assert r.returncode == 0, r.stderr
    assert "r dend0" in r.stdout and "r soma away ±5" in r.stdout
    m = json.loads((out / "metrics.json").read_text())
    assert m["scoring"] == {"skip_ms": {"test": 50.0}}
    assert m["test"]["v_dend1_mV_pearson_r"] == pytest.approx(late["v_dend1_mV_pearson_r"], rel=1e-5)
    assert (out / "sites_test.png").exists() and "first 50 ms" in (out / "report.md").read_text()
    for bad, msg in (("250", "leaves nothing"), ("2.5", "whole number")):
        r = cli("evaluate", "--model", str(data["dir"] / "run" / "model"), "--data", str(data["test"]),
                "--long-run-s", "0", "--skip-ms", bad, "--out-dir", str(out))
        assert r.returncode == 2 and msg in r.stderr and "Traceback" not in r.stderr
    # without --skip-ms: trials from the steady state are scored whole, trials from finitialize
    # without a pre-run (simulate --no-prerun, the Hay reference recordings) after 300 ms
    import dataclasses

    from neurosurrogate.evaluate.reference import default_skip_ms, load_reference_bombardment

    steady = ds.load_dataset(data["test"])
    assert default_skip_ms(steady) == 0.0
    assert default_skip_ms(dataclasses.replace(steady, cell={**steady.cell, "prerun": False})) == 300.0
    if REF.exists():
        assert default_skip_ms(load_reference_bombardment(REF)) == 300.0
    r = cli("evaluate", "--model", str(data["dir"] / "run" / "model"), "--data", str(data["test"]),
            "--long-run-s", "0", "--out-dir", str(out))
    assert r.returncode == 0, r.stderr
    m = json.loads((out / "metrics.json").read_text())
    assert "scoring" not in m and m["test"]["n_spikes_true"] == full["n_spikes_true"]


HAY = SHARED / "hay2011"
REF = HAY / "reference" / "synaptic_bombardment.npz"
MORPH = HAY / "cell1.asc"


def _split(src, out, idx):
    """Write trials ``idx`` of the dataset file ``src`` to a new dataset file ``out``."""
    d = ds.load_dataset(src)
    for j, i in enumerate(idx):
        arrays = {"v_mV": d.v_mV[i], "ina": d.ina[i], "ik": d.ik[i], "spike_times_ms": d.spike_times_ms[i],
                  "v_dend_mV": d.v_dend_mV[i], "ica": d.ica[i]}
        ds.write_part(out, j, d.events[i], arrays)
    return ds.assemble(out, {**d.config, "n_trials": len(idx)}, d.cell, d.synapses, d.provenance, len(idx),
                       extra_attrs=d.extra)


@pytest.mark.neuron
@pytest.mark.skipif(not MORPH.exists(), reason=f"no Hay 2011 morphology in {HAY}")
def test_tiny_hay_l5pc_surrogate_end_to_end(tmp_path):
    """3 NEURON trials x 400 ms of hay-l5pc (2 train, 1 validation) -> a GRU trained for 4 steps ->
    saved, loaded, predicted through the API and the CLI with the right fields and shapes."""
    from neurosurrogate.biophys.cells import get_cell
    from neurosurrogate.biophys.generate import generate_dataset

    cell = get_cell("hay-l5pc", morphology=str(MORPH))
    src = generate_dataset(tmp_path / "all.h5", cell, 3, 400, 5, protocol="mixed",
                           protocol_options={"exc_rate_range_Hz": (400, 9000), "p_quiet": 0.0}, workers=2,
                           progress=False)
    tr, va = _split(src, tmp_path / "train.h5", [0, 1]), _split(src, tmp_path / "val.h5", [2])
    cfg = TrainConfig(arch="gru", arch_params={"hidden": 8, "layers": 1}, train_data=(str(tr),), val_data=(str(va),),
                      out_dir=str(tmp_path / "run"), batch_size=2, chunk_ms=200, max_steps=4, eval_every=2,
                      checkpoint_every=2, threads=1, device="cpu", targets=("v_dend", "ica"))
    train(cfg, progress=False, log=lambda *a: None)
    model = SurrogateModel.load(tmp_path / "run" / "model")
    enc = model.encoding
    assert enc.n_synapses == 200 and enc.n_in == 400 and enc.cell_name == "hay-l5pc"
    assert enc.extra_names == ("v_dend0_mV", "v_dend1_mV", "ica")
    assert enc.v_rest_mV == pytest.approx(-77.25, abs=0.02)
    assert model.card["ica_site"]["section"] == "apic[37]"
    assert [round(s["target_dist_um"]) for s in model.card["sites"]] == [400, 700]
    # the card keeps where each input channel sits, for the network's site selectors
    from neurosurrogate.network.build import cell_table

    syn = model.card["synapses"]
    assert len(syn) == 200 and {s["region"] for s in syn} == {"apical", "basal"}
    table = cell_table(str(tmp_path / "run" / "model"), None)
    near = table.sites((("kind", "exc"), ("max_dist_um", 150.0)), "test")
    assert near.size > 0 and all(syn[j]["kind"] == "exc" and syn[j]["dist_um"] <= 150.0 for j in near)
    d = ds.load_dataset(va)
    pred = model.predict(d.events[0], 400, device="cpu")
    assert pred.v_dend_mV.shape == (2, 400) and pred.ica.shape == (400,) and np.isfinite(pred.v_dend_mV).all()
    d.events[0].save(tmp_path / "ev.npz")
    r = cli("predict", "--model", str(tmp_path / "run" / "model"), "--events", str(tmp_path / "ev.npz"),
            "--duration-ms", "400", "--out", str(tmp_path / "pred.npz"))
    assert r.returncode == 0, r.stderr
    z = np.load(tmp_path / "pred.npz")
    assert z["v_mV"].shape == (400,) and z["v_dend_mV"].shape == (2, 400) and z["ica"].shape == (400,)
    assert np.allclose(z["v_dend_mV"], pred.v_dend_mV, atol=1e-3)


def test_hay_config_is_valid():
    """configs/hay-l5pc.toml (the shipped model's run) parses, asks for the dendritic and Ca targets
    and builds its architecture for 200 synapses and six outputs."""
    from conftest import REPO
    from neurosurrogate.surrogate.base import build

    cfg = TrainConfig.from_toml(REPO / "configs" / "hay-l5pc.toml")
    assert cfg.targets == ("v_dend", "ica") and cfg.arch == "gru"
    assert cfg.train_data[0].endswith("data/hay/train_790.h5") and cfg.val_data[0].endswith("data/hay/val_mixed.h5")
    assert 10 <= cfg.max_minutes <= 90 and cfg.threads == 1 and cfg.rest_warmup_ms > 0
    net = build(cfg.arch, 400, 6, **cfg.arch_params)
    assert net.n_out == 6 and net.traces == 4 and 0 < net.flops_per_step() <= 300_000
    # the config is the shipped model's (same architecture, so the card's config matches it)
    from neurosurrogate.surrogate.model import SurrogateModel

    card = SurrogateModel.load("hay-l5pc").card["train_config"]
    assert card["arch_params"] == cfg.arch_params and card["max_steps"] == cfg.max_steps
    assert card["rest_warmup_ms"] == cfg.rest_warmup_ms and card["train_data"][0].endswith("train_790.h5")


def test_spread_weight_reaches_the_voltage_head(data, tmp_path):
    """With every other loss term weighted 0, the anti-shrinkage term alone moves the soma-voltage
    output row (row 0) in two steps; weighted 0 as well, nothing moves."""
    import torch

    zero = dict(max_steps=2, seed=0, voltage_weight=0.0, spike_weight=0.0, offset_weight=0.0, dend_weight=0.0,
                ica_weight=0.0)
    torch.manual_seed(0)
    fresh = SurrogateModel.create("gru", make_encoding([ds.load_dataset(data["train"])], targets=("v_dend", "ica")),
                                  hidden=8, layers=1)
    w0 = fresh.net.head.weight.detach()
    on = train(_cfg(data, tmp_path / "on", spread_weight=1.0, **zero), progress=False, log=lambda *a: None)
    off = train(_cfg(data, tmp_path / "off", **zero), progress=False, log=lambda *a: None)
    assert not torch.allclose(w0[0], on.net.head.weight.detach()[0])
    assert torch.equal(w0, off.net.head.weight.detach())


def test_state_targets_are_auxiliary_outputs(data, tmp_path):
    """targets "states": one z-scored output per recorded state variable, learned with
    states_weight (0: its head rows get no gradient), left out of the validation loss, so the
    validation data need not hold states; training data without them are refused."""
    import torch

    from neurosurrogate.train.loop import loss_groups

    d = ds.load_dataset(data["states"])
    assert d.states.shape == (10, 2, T_MS) and d.subset([3]).states.shape == (1, 2, T_MS)
    enc = make_encoding([d], targets=("v_dend", "states"))
    assert enc.extra_names == ("v_dend0_mV", "v_dend1_mV", "state_soma_cai", "state_soma_HayKPst_h")
    cai = enc.extras[2]
    assert cai.unit == "mM" and enc.extras[3].unit == "1"
    assert cai.offset == pytest.approx(np.median(d.states[:, 0, 0]))
    assert cai.scale == pytest.approx(d.states[:, 0].std(), rel=1e-4)
    z = enc.targets(d.v_mV, d.spike_times_ms, v_dend_mV=d.v_dend_mV,
                    values={"state_soma_cai": d.states[:, 0], "state_soma_HayKPst_h": d.states[:, 1]})
    assert np.allclose(z[..., 5], (d.states[:, 0] - cai.offset) / cai.scale, atol=1e-5)
    assert z[..., 5].std() == pytest.approx(1.0, rel=0.01) and np.abs(z[:, 0, 5]).min() < 1e-6  # 0 at rest
    cfg = _cfg(data, tmp_path / "s", train_data=(str(data["states"]),), targets=("v_dend", "states"),
               states_weight=0.5, max_steps=2, seed=0)
    assert [g[0] for g in loss_groups(cfg, enc)] == ["v_dend", "states"]
    assert loss_groups(cfg, enc)[1][1:] == ([5, 6], 0.5)
    assert [g[0] for g in loss_groups(cfg, enc, auxiliary=False)] == ["v_dend"]
    torch.manual_seed(0)
    w0 = SurrogateModel.create("gru", enc, hidden=8, layers=1).net.head.weight.detach()
    on = train(cfg, progress=False, log=lambda *a: None)  # validation data (val.h5) hold no states
    off = train(dataclasses.replace(cfg, out_dir=str(tmp_path / "off"), states_weight=0.0), progress=False,
                log=lambda *a: None)
    assert not torch.allclose(w0[5:7], on.net.head.weight.detach()[5:7])
    assert torch.equal(w0[5:7], off.net.head.weight.detach()[5:7])
    assert on.encoding.extra_names[-2:] == ("state_soma_cai", "state_soma_HayKPst_h")
    with pytest.raises(TrainError, match=r"'states' requested, but dataset.*train.h5.*record_states"):
        make_encoding([ds.load_dataset(data["train"])], targets=("states",))
    with pytest.raises(ValueError, match="unknown target"):
        _cfg(data, tmp_path / "x", targets=("state",))


def test_state_fidelity_script(trained, data, tmp_path):
    """scripts/hay_state_fidelity.py scores every state output against the data (a model trained
    on them follows both synthetic states, r > 0.3), or with --probe a linear read-out of a model's
    top GRU layer; data or models without states are
    refused with the argument named."""
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parent.parent / "scripts" / "hay_state_fidelity.py"
    cfg = _cfg(data, tmp_path / "s", train_data=(str(data["states"]),), targets=("v_dend", "states"),
               states_weight=1.0, max_steps=150, eval_every=150, checkpoint_every=150, seed=0, lr=1e-2)
    train(cfg, progress=False, log=lambda *a: None)
    out = tmp_path / "sf.json"
    r = subprocess.run([sys.executable, str(script), "--model", str(tmp_path / "s" / "model"), "--data",
                        str(data["states"]), "--out", str(out)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    rows = json.loads(out.read_text())["states"]
    assert [x["state"] for x in rows] == STATE_NAMES and "| soma.HayKPst.h |" in r.stdout
    assert all(x["r_all"] > 0.3 for x in rows)  # both learned (r 0.73 / 0.59 when written)
    # --probe: a linear read-out of the top GRU layer of a model without state outputs, fitted on states data
    probe = tmp_path / "probe.json"
    plain = str(data["dir"] / "run" / "model")
    r = subprocess.run([sys.executable, str(script), "--model", plain, "--probe", str(data["states"]), "--data",
                        str(data["states"]), "--out", str(probe)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    res = json.loads(probe.read_text())
    assert res["probe"] == str(data["states"]) and res["probe_trials"] == 100
    assert all(np.isfinite(x["r_all"]) and -1 <= x["r_all"] <= 1 for x in res["states"])
    for args, msg in ((["--data", str(data["train"]), "--model", str(tmp_path / "s" / "model")], "--data: .* no state"),
                      (["--data", str(data["states"]), "--model", plain, "--probe", str(data["train"])],
                       "--probe: .* same state variables"),
                      (["--data", str(data["states"]), "--model", plain, "--probe", str(data["states"]),
                        "--probe-trials", "0"], "--probe-trials must be >= 1"),
                      (["--data", str(data["states"]), "--model", str(data["dir"] / "run" / "model")],
                       "--model: .* no output")):
        r = subprocess.run([sys.executable, str(script), *args, "--out", str(tmp_path / "x.json")], capture_output=True,
                           text=True)
        assert r.returncode == 2 and re.search(msg, r.stderr), r.stderr


def test_onsets_script_end_to_end(trained, data, tmp_path):
    """scripts/hay_onsets.py on a trained model: every onset of the data's spike trains is described, the
    JSON holds them and the calibration table; a dataset without dendritic sites is refused."""
    import subprocess
    import sys
    from pathlib import Path

    from neurosurrogate.data.dataset import load_dataset

    script = Path(__file__).resolve().parent.parent / "scripts" / "hay_onsets.py"
    out = tmp_path / "onsets.json"
    model = str(data["dir"] / "run" / "model")
    r = subprocess.run([sys.executable, str(script), "--model", model, "--data", str(data["test"]), "--gap-ms", "5",
                        "--out", str(out)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    res = json.loads(out.read_text())["models"][model]
    res["onsets"] = [dict(zip(res["onsets"]["columns"], row)) for row in res["onsets"]["rows"]]
    d = load_dataset(data["test"])
    expected = sum(int(np.sum((s >= 20) & (np.diff(np.concatenate([[-np.inf], s])) >= 5))) for s in d.spike_times_ms)
    assert len(res["onsets"]) == expected > 0
    assert all(isinstance(o["found"], bool) and np.isfinite(o["err_5"]) for o in res["onsets"])
    assert sum(row[0] for row in res["calibration"]["by_cell"]) == pytest.approx(1.0, abs=1e-3)  # rounded
    assert "| `err_5` |" in r.stdout and "by the model's voltage" in r.stdout
    r = subprocess.run([sys.executable, str(script), "--model", model, "--data", str(data["point"])],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "no two dendritic recording sites" in r.stderr


def test_rest_warmup_is_refused_before_training_an_architecture_without_it(data, tmp_path):
    """A warm rest is a GRU-family state: a tcn configured with one is refused before any step (it used to
    train and write a model that no command could load)."""
    from neurosurrogate.train.loop import TrainError

    cfg = _cfg(data, tmp_path / "tcn", arch="tcn", arch_params={"channels": 4, "kernel": 2, "levels": 2},
               rest_warmup_ms=100)
    with pytest.raises(TrainError, match="rest_warmup_ms = 100: architecture 'tcn' has no warm rest state"):
        train(cfg, progress=False, log=lambda *a: None)
    assert not (tmp_path / "tcn" / "model").exists() and not (tmp_path / "tcn" / "checkpoint.pt").exists()
