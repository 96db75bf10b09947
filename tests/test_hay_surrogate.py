"""The shipped hay-l5pc surrogate: contract, fidelity floor on the original model's recordings,
and circuits of hay-l5pc cells (5 contacts per connection on proximal sites)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import REPO, SHARED, cli
from neurosurrogate.surrogate.model import SurrogateModel, shipped_models

REF = SHARED / "hay2011" / "reference" / "synaptic_bombardment.npz"


@pytest.fixture(scope="module")
def model():
    assert "hay-l5pc" in shipped_models()
    return SurrogateModel.load("hay-l5pc")


def test_shipped_model_card_and_encoding(model):
    enc = model.encoding
    assert enc.cell_name == "hay-l5pc" and enc.n_synapses == 200 and enc.n_in == 400
    assert enc.extra_names == ("v_dend0_mV", "v_dend1_mV", "ica")
    assert 0.05 <= enc.spike_threshold <= 0.95
    card = model.card
    syn = card["synapses"]
    assert len(syn) == 200 and sum(s["kind"] == "exc" for s in syn) == 150
    assert {s["region"] for s in syn} == {"apical", "basal"}
    assert [round(s["target_dist_um"]) for s in card["sites"]] == [400, 700]
    assert card["training"]["wall_time_s"] < 180 * 60  # trained within one working session
    assert card["data"][0]["n_trials"] >= 400
    # the CPU cost that the speed target allows: <= a few hundred thousand FLOPs per cell-step
    assert model.net.flops_per_step() <= 300_000


def test_predict_contract(model, tmp_path):
    """predict --model hay-l5pc writes t_ms, v_mV, v_dend_mV (2, T), spike_times_ms, from rest."""
    from neurosurrogate.inputs import EventTable

    rng = np.random.default_rng(5)
    n = 3000
    t = np.sort(rng.uniform(0, 2000, n))
    syn = rng.integers(0, 200, n)
    w = np.array([s["weight_nS"] for s in model.card["synapses"]])[syn]
    np.savez(tmp_path / "ev.npz", t_ms=t, synapse=syn, weight_nS=w)
    r = cli("predict", "--model", "hay-l5pc", "--events", str(tmp_path / "ev.npz"), "--duration-ms", "2000",
            "--out", str(tmp_path / "pred.npz"))
    assert r.returncode == 0, r.stderr
    z = np.load(tmp_path / "pred.npz")
    assert np.array_equal(z["t_ms"], np.arange(2000.0)) and z["v_mV"].shape == (2000,)
    assert z["v_dend_mV"].shape == (2, 2000) and np.isfinite(z["v_dend_mV"]).all()
    assert z["spike_times_ms"].ndim == 1 and np.all(np.diff(z["spike_times_ms"]) > 0)
    # how sure the model is: per-ms spike probability and each spike's peak-bin probability
    p, conf, st = z["spike_prob"], z["spike_confidence"], z["spike_times_ms"]
    assert p.shape == (2000,) and np.all((p >= 0) & (p <= 1)) and conf.shape == st.shape
    assert np.array_equal(conf, p[np.floor(st).astype(int)])
    thr = json.loads(str(z["meta"]))["spike_threshold"]
    assert thr == model.encoding.spike_threshold and np.all(conf > thr)
    # from rest: no input, no spikes; the model starts from its warmed-up rest (card rest_warmup_ms),
    # so from t = 0 there is no start transient and the voltage stays within 1 mV of the cell's rest
    assert model.card["rest_warmup_ms"] > 0
    quiet = model.predict(EventTable.empty(), 500.0, device="cpu")
    assert quiet.spike_times_ms.size == 0
    assert np.abs(quiet.v_mV - model.encoding.v_rest_mV).max() < 1.0 and np.ptp(quiet.v_mV) < 0.1


@pytest.mark.skipif(not REF.exists(), reason=f"no reference data at {REF}")
def test_fidelity_floor_on_the_original_models_recordings(model):
    """Free-running on the 20 reference trials (never used in training), scored after 300 ms.
    Floors well below the measured values of the shipped model (README): a broken or swapped
    model fails them; the issue's targets are reported, not asserted."""
    from neurosurrogate.evaluate.reference import check_synapse_table, load_reference_bombardment
    from neurosurrogate.evaluate.rollout import evaluate_dataset

    d = load_reference_bombardment(REF)
    check_synapse_table(model.card["synapses"], d)
    ev = evaluate_dataset(model, d, "reference", device="cpu", skip_ms=300)
    m = ev.metrics
    assert m["v_dend0_mV_pearson_r"] > 0.85 and m["v_dend1_mV_pearson_r"] > 0.8
    assert m["pearson_r_away5ms"] > 0.6
    assert m["precision_10ms"] > 0.45 and m["recall_10ms"] > 0.45
    # a spike's confidence ranks it: the model's sure spikes are real more often than its unsure ones
    # (README: 0.59 of the spikes below 0.35 matched, 0.94 of those from 0.5 to 0.7)
    rows = ev.extra["spike_confidence"]
    assert sum(r["n_pred"] for r in rows) == m["n_spikes_pred"]
    assert rows[0]["precision_at_least"] == pytest.approx(m["precision_10ms"])
    assert rows[0]["recall_at_least"] == pytest.approx(m["recall_10ms"])
    assert rows[2]["matched_fraction"] > rows[0]["matched_fraction"] + 0.15
    assert rows[2]["precision_at_least"] > rows[0]["precision_at_least"]


def test_l5pc_circuit_uses_proximal_contacts_and_runs():
    """examples/l5pc_circuit.toml: every connection is 5 contacts on excitatory sites within 200 um;
    the circuit runs batched; the Rett map behaves as measured (README): the Rett-like corner (0.75 x
    drive, 5 %) is silent before the stimulus and answers it far less than the control setting, which is
    stable and answers it, more so with more connections (recurrent recruitment), the strong corner (1.25 x, 10 %)
    is unstable."""
    from neurosurrogate.network.build import cell_table, realise
    from neurosurrogate.network.config import load_network_config
    from neurosurrogate.network.engine import simulate
    from neurosurrogate.network.measures import circuit_measures

    cfg = load_network_config(REPO / "examples" / "l5pc_circuit.toml")
    c = realise(cfg, seed=1)
    table = cell_table("hay-l5pc", None)
    assert np.all(table.dist_um[c.channel] <= 200.0) and np.all(np.asarray(table.kinds)[c.channel] == "exc")
    pairs, counts = np.unique(np.stack([c.pre, c.post]), axis=1, return_counts=True)
    assert np.all(counts % 5 == 0) and pairs.shape[1] > 0

    def measures(drive, p):
        cf = cfg.with_values({"network.exc_scale": drive, "projections.recurrent.p": p})
        runs = simulate([realise(cf, seed=s) for s in range(3)], device="cpu")
        m = [circuit_measures(r, 150, 100.0, 10.0) for r in runs]
        return np.mean([x["instability"] for x in m]), np.mean([x["immediate_response"] for x in m])

    inst, resp = measures(1.0, 0.075)
    assert inst < 0.3 and resp > 0.35
    # the Rett-like corner: stable, and its answer a fraction of control's (the real cells, driven open
    # loop with the same circuit input in NEURON, answer 0.19 there vs 0.54 at control: README)
    inst_rett, resp_rett = measures(0.75, 0.05)
    assert inst_rett == 0.0 and resp_rett < 0.5 * resp
    # recurrent recruitment: at control drive the response grows with connectivity
    assert measures(1.0, 0.10)[1] > measures(1.0, 0.05)[1] + 0.05
    inst, resp = measures(1.25, 0.10)
    assert inst > 0.8
