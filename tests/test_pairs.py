"""Paired trials (probe events) and the difference loss: events, pairing, mask, loss, training."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import load_module

from neurosurrogate.biophys.cells import get_cell
from neurosurrogate.biophys.generate import trial_events
from neurosurrogate.inputs import EventTable, with_probe_events
from neurosurrogate.train.pairs import pair_loss, pair_mask


def test_probe_events_add_single_default_weight_events_and_keep_the_base():
    base = EventTable(np.array([1.0, 5.5, 9.0]), np.array([0, 3, 1]), np.array([2.0, 2.5, 1.0]))
    w = [3.0, 1.0, 3.0, 1.0]
    ev = with_probe_events(base, w, 10_000.0, 50.0, np.random.default_rng(0))
    n = len(ev) - len(base)
    assert 400 < n < 600  # Poisson(500)
    assert np.all(np.diff(ev.t_ms) >= 0)
    t, s, wt = np.asarray(ev.t_ms), np.asarray(ev.synapse), np.asarray(ev.weight_nS)
    for tb, sb, wb in zip(base.t_ms, base.synapse, base.weight_nS):  # every base event is still there
        assert np.any((t == tb) & (s == sb) & (wt == wb))
    new = ~np.isin(t, np.asarray(base.t_ms))
    assert np.allclose(wt[new], np.asarray(w)[s[new]])  # probes at the synapse's default weight
    assert set(np.unique(s[new])) == {0, 1, 2, 3}
    assert with_probe_events(base, w, 100.0, 0.0, np.random.default_rng(0)) is base
    for bad in (-1.0, float("nan"), "5", True):
        with pytest.raises(ValueError, match="probe_rate_Hz"):
            with_probe_events(base, w, 100.0, bad, np.random.default_rng(0))


def test_trial_events_with_probes_hold_the_trial_without_them():
    cell = get_cell("point-hh")
    opts = {"exc_rate_range_Hz": [200, 2000]}
    for i in range(4):
        a = trial_events(cell, "mixed", opts, 1000.0, 5, i)
        b = trial_events(cell, "mixed", {**opts, "probe_rate_Hz": 30.0}, 1000.0, 5, i)
        assert len(b) > len(a) or len(a) == 0
        assert np.isin(np.asarray(a.t_ms), np.asarray(b.t_ms)).all()
    c = trial_events(cell, "mixed", {**opts, "probe_rate_Hz": 30.0}, 1000.0, 5, 0)
    assert np.array_equal(c.t_ms, trial_events(cell, "mixed", {**opts, "probe_rate_Hz": 30.0}, 1000.0, 5, 0).t_ms)
    with pytest.raises(ValueError, match="probe_rate_Hz"):
        trial_events(cell, "mixed", {**opts, "probe_rate_Hz": -3}, 1000.0, 5, 0)


def test_pair_mask_stops_where_the_spikes_part_and_skips_every_spike():
    m = pair_mask([50.2, 120.0], [50.9, 300.4], 400, tol_ms=2.0, pre_ms=1, post_ms=10)
    # 120.0 has no partner within 2 ms: the mask ends 1 ms before it
    assert m[:49].all() and not m[49:60].any() and m[60:119].all() and not m[119:].any()
    same = pair_mask([10.0], [10.5], 100)
    assert same[:9].all() and not same[9:20].any() and same[20:].all()
    assert pair_mask([], [], 50).all()
    assert pair_mask([3.0], [], 50).tolist() == [True, True] + [False] * 48  # up to 1 ms before the lone spike


def test_pair_loss_is_the_unexplained_fraction_of_the_true_difference():
    from neurosurrogate.train.pairs import Pairs, PairError

    torch.manual_seed(0)
    z = torch.randn(4, 30, 3)
    z[2:, :, 0] += torch.randn(2, 30)  # siblings differ from their bases
    mask = torch.ones(2, 30, dtype=torch.bool)
    pairs = Pairs(np.array([2, 3, 0, 1]), np.array([0, 1]), np.array([2, 3]), mask)
    pairs.set_energy(z, [0])  # mean squared true difference per masked sample
    e = pairs.energy
    assert float(e[0]) == pytest.approx(float(((z[2:, :, 0] - z[:2, :, 0]) ** 2).mean()))
    pb, pp = [0, 1], [2, 3]
    assert float(pair_loss(z.clone(), z, pb, pp, mask, [0], e)) == pytest.approx(0.0, abs=1e-7)
    same = z.clone()
    same[2:] = same[:2]  # a model that answers both trials alike ignores the probes: loss 1
    assert float(pair_loss(same, z, pb, pp, mask, [0], e)) == pytest.approx(1.0)
    y = same.clone().requires_grad_(True)
    pair_loss(y, z, pb, pp, mask, [0], e).backward()
    assert y.grad[..., 0].abs().sum() > 0 and float(y.grad[..., 1:].abs().sum()) == 0.0
    half = mask.clone()
    half[:, 15:] = False  # masked-out samples count for nothing
    z2 = z.clone()
    z2[2:, 15:, 0] += 100.0
    assert float(pair_loss(z.clone(), z2, pb, pp, half, [0], e)) == pytest.approx(0.0, abs=1e-7)
    # a chunk with few compared samples whose differences are ~0 stays bounded (the normaliser is global)
    few = torch.zeros_like(mask)
    few[0, :2] = True
    flat = z.clone()
    flat[2, :2, 0] = flat[0, :2, 0] + 1e-6
    assert float(pair_loss(same, flat, pb, pp, few, [0], e)) < 1e-6
    assert float(pair_loss(z, z, [], [], mask[:0], [0], e)) == 0.0
    with pytest.raises(PairError, match="do not differ"):
        Pairs(pairs.partner, pairs.base, pairs.probed, torch.zeros_like(mask)).set_energy(z, [0])


@pytest.mark.neuron
def test_paired_runs_train_with_the_difference_loss(tmp_path, run_neuron):
    from neurosurrogate.biophys.generate import generate_dataset
    from neurosurrogate.data.dataset import load_dataset
    from neurosurrogate.train.config import TrainConfig
    from neurosurrogate.train.loop import TrainError, train
    from neurosurrogate.train.pairs import PairError, find_pairs, make_pairs

    cell = get_cell("point-hh")
    opts = {"exc_rate_range_Hz": [400, 3000]}
    kw = dict(protocol="mixed", progress=False, workers=2)
    base = generate_dataset(tmp_path / "base.h5", cell, 6, 600, 21, protocol_options=opts, **kw)
    probed = generate_dataset(tmp_path / "probed.h5", cell, 4, 600, 21,
                              protocol_options={**opts, "probe_rate_Hz": 40.0}, **kw)
    other = generate_dataset(tmp_path / "other.h5", cell, 4, 600, 22,
                             protocol_options={**opts, "probe_rate_Hz": 40.0}, **kw)
    val = generate_dataset(tmp_path / "val.h5", cell, 2, 600, 23, protocol_options=opts, **kw)
    b, p = load_dataset(base), load_dataset(probed)
    assert find_pairs([b, p]) == [(0, 1, 4)]
    pairs = make_pairs([b, p], 600)
    assert pairs.partner.tolist() == [6, 7, 8, 9, -1, -1, 0, 1, 2, 3]
    # the probes change the cell's voltage; before they start, the pair is identical
    k = int(np.argmax(np.abs(p.v_mV[:4] - b.v_mV[:4]).max(axis=1)))
    first = float(np.asarray(p.events[k].t_ms)[~np.isin(p.events[k].t_ms, b.events[k].t_ms)].min())
    assert np.abs(p.v_mV[k] - b.v_mV[k]).max() > 0.1
    assert np.array_equal(p.v_mV[k, : int(first)], b.v_mV[k, : int(first)])
    with pytest.raises(PairError, match="no training dataset is its base"):
        find_pairs([b, load_dataset(other)])

    def cfg(out, w, data=(base, probed)):
        return TrainConfig(arch="gru", arch_params={"hidden": 8, "layers": 1}, train_data=tuple(map(str, data)),
                           val_data=(str(val),), out_dir=str(tmp_path / out), batch_size=3, chunk_ms=300,
                           max_steps=6, eval_every=3, checkpoint_every=3, threads=1, device="cpu", pair_weight=w)

    msgs = []
    model = train(cfg("w1", 1.0), progress=False, log=msgs.append)
    assert any("4 paired trials" in m and "difference loss weight 1" in m for m in msgs)
    assert model.card["train_config"]["pair_weight"] == 1.0
    with pytest.raises(TrainError, match="no training dataset is its base"):
        train(cfg("bad", 1.0, (probed,)), progress=False, log=lambda *a: None)
    with pytest.raises(TrainError, match="hold no pairs"):
        train(cfg("none", 1.0, (base,)), progress=False, log=lambda *a: None)
    with pytest.raises(ValueError, match="pair_weight must be >= 0"):
        cfg("neg", -1.0)

    # scripts/hay_pair_response.py: the trained model's answer to the probes, per channel
    import json

    mod = load_module("scripts/hay_pair_response.py")
    out = tmp_path / "resp.json"
    assert mod.main(["--model", str(tmp_path / "w1" / "model"), "--base", str(base), "--probed", str(probed),
                     "--out", str(out)]) == 0
    row = json.loads(out.read_text())[0]
    assert row["pairs"] == 4 and 0 < row["masked_fraction"] <= 1
    ch = row["channels"]["v_mV"]
    assert np.isfinite(ch["fvu"]) and ch["fvu"] >= 0 and ch["rms_true_mV"] > 0
    assert mod.main(["--model", str(tmp_path / "w1" / "model"), "--base", str(val), "--probed", str(probed),
                     "--out", str(tmp_path / "x.json")]) == 2  # no pairs: a clear error, no file
    assert not (tmp_path / "x.json").exists()

    # scripts/hay_probe_consistency.py on the same pairs, with the point cell's own PSPs at rest (NEURON)
    import _neuron_cases as cases

    k_exc = run_neuron(cases.point_psp, 0, 2.5)  # NEURON in a fresh process
    assert k_exc.max() > 0.5  # a real EPSP, mV
    psp = tmp_path / "psp.npz"
    np.savez(psp, kernels_mV=np.stack([k_exc, -0.3 * k_exc])[:, None, :], kind=np.array(["exc", "inh"]))
    cons = load_module("scripts/hay_probe_consistency.py")
    out = tmp_path / "cons.json"
    args = ["--model", str(tmp_path / "w1" / "model"), "--base", str(base), "--probed", str(probed)]
    assert cons.main(args + ["--psp", str(psp), "--kernel-ms", "15", "--out", str(out)]) == 0
    row = json.loads(out.read_text())[0]
    assert row["probes"] > 5 and np.isfinite(row["slope"])
    # the cell's probes, fitted with their synapse's PSP at rest: of that size, within the cell's state's range
    assert 0.2 < row["cell_amplitude_quartiles"][1] < 2.0
    for bad in (["--psp", str(tmp_path / "none.npz")], ["--psp", str(psp), "--kernel-ms", "2000"]):
        assert cons.main(args + bad + ["--out", str(tmp_path / "y.json")]) == 2  # no file; no probe far from spikes
        assert not (tmp_path / "y.json").exists()


def test_probe_consistency_tells_a_synapse_error_from_a_context_error():
    cons = load_module("scripts/hay_probe_consistency.py")
    rng = np.random.default_rng(0)
    excitatory = np.array([True] * 20 + [False] * 5)
    n = 4000
    trial, syn = rng.integers(0, 40, n), rng.integers(0, 25, n)
    a_cell = rng.uniform(0.3, 1.0, n)
    gain = rng.uniform(0.4, 1.2, 25)  # a fixed error per synapse
    per_synapse = cons.consistency(np.c_[trial, syn, a_cell, gain[syn] * a_cell], excitatory)
    assert per_synapse["split_half_r"] > 0.9 and per_synapse["synapses_compared"] == 20
    context = cons.consistency(np.c_[trial, syn, a_cell, rng.uniform(0.4, 1.2, n) * a_cell], excitatory)
    assert abs(context["split_half_r"]) < 0.6
    exact = cons.consistency(np.c_[trial, syn, a_cell, 0.7 * a_cell], excitatory)
    assert exact["slope"] == pytest.approx(0.7) and exact["synapse_slope_median"] == pytest.approx(0.7)
    assert exact["probes"] == int(np.isin(syn, np.flatnonzero(excitatory)).sum())


def test_events_command_adds_probes_to_the_same_table(tmp_path):
    from neurosurrogate.cli import main

    args = ["events", "--cell", "point-hh", "--protocol", "mixed", "--duration-ms", "1000", "--seed", "4"]
    assert main(args + ["--out", str(tmp_path / "a.npz")]) == 0
    assert main(args + ["--option", "probe_rate_Hz=50", "--out", str(tmp_path / "b.npz")]) == 0
    a, b = EventTable.load(tmp_path / "a.npz"), EventTable.load(tmp_path / "b.npz")
    assert len(b) > len(a) and np.isin(np.asarray(a.t_ms), np.asarray(b.t_ms)).all()
    assert main(args + ["--option", "probe_rate_Hz=-1", "--out", str(tmp_path / "c.npz")]) != 0
    assert not (tmp_path / "c.npz").exists()
