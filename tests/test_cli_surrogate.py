"""Surrogate-stage CLI commands on tiny settings: train, predict, evaluate, compare-architectures."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import cli

pytestmark = pytest.mark.neuron


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    for name, n, seed, proto in (("train", 24, 21, "mixed"), ("val", 4, 22, "mixed"), ("test", 6, 23, "paper")):
        r = cli("simulate", "--trials", str(n), "--duration-ms", "300", "--seed", str(seed), "--protocol", proto,
                "--out", str(d / f"{name}.h5"), "--quiet")
        assert r.returncode == 0, r.stderr
    (d / "cfg.toml").write_text(
        'arch = "gru"\ntrain_data = ["train.h5"]\nval_data = ["val.h5"]\nout_dir = "run"\n'
        "batch_size = 4\nchunk_ms = 150\nmax_steps = 6\neval_every = 2\ncheckpoint_every = 2\n"
        "[arch_params]\nhidden = 8\nlayers = 1\n"
    )
    r = cli("train", "--config", str(d / "cfg.toml"), "--quiet")
    assert r.returncode == 0, r.stderr
    return d


def test_train_writes_model_with_card(tiny):
    meta = json.loads((tiny / "run" / "model" / "model.json").read_text())
    card = meta["card"]
    assert card["training"]["steps"] == 6 and card["parameters"] > 0
    assert len(card["data"][0]["content_hash"]) == 16 and card["cell"]["name"] == "point-hh"
    # the same command again resumes (nothing left to do) and succeeds
    r = cli("train", "--config", str(tiny / "cfg.toml"), "--quiet")
    assert r.returncode == 0 and "resumed" in r.stdout


def test_predict_contract_with_model_path(tiny, tmp_path):
    ev = tmp_path / "events.npz"
    assert cli("events", "--duration-ms", "300", "--seed", "5", "--out", str(ev)).returncode == 0
    out = tmp_path / "pred.npz"
    r = cli("predict", "--model", str(tiny / "run" / "model"), "--events", str(ev), "--duration-ms", "300",
            "--out", str(out), "--plot", str(tmp_path / "pred.png"))
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "pred.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    z = np.load(out)
    assert z["v_mV"].shape == (300,) and np.array_equal(z["t_ms"], np.arange(300.0))
    assert "spike_times_ms" in z.files and np.isfinite(z["v_mV"]).all()


def test_clipped_voltage_model_trains_and_predicts_both_voltages(tiny, tmp_path):
    """``v_clip_mV``: the encoding records the ceiling and the training data's spike shape; predict
    writes the clipped model voltage as v_mV and the same with spikes put back as v_spiking_mV."""
    cfg = tmp_path / "clip.toml"
    cfg.write_text((tiny / "cfg.toml").read_text().replace('out_dir = "run"', f'out_dir = "{tmp_path / "run"}"')
                   .replace('train_data = ["train.h5"]', f'train_data = ["{tiny / "train.h5"}"]')
                   .replace('val_data = ["val.h5"]', f'val_data = ["{tiny / "val.h5"}"]')
                   .replace("[arch_params]", "v_clip_mV = -55.0\n[arch_params]"))
    r = cli("train", "--config", str(cfg), "--quiet")
    assert r.returncode == 0, r.stderr
    enc = json.loads((tmp_path / "run" / "model" / "model.json").read_text())["encoding"]
    shape = np.asarray(enc["spike_shape_mV"])
    assert enc["v_clip_mV"] == -55.0 and shape.shape == (10, 4) and shape.max() > 0  # a spike's peak sample
    ev = tmp_path / "events.npz"
    assert cli("events", "--duration-ms", "300", "--seed", "5", "--out", str(ev)).returncode == 0
    r = cli("predict", "--model", str(tmp_path / "run" / "model"), "--events", str(ev), "--duration-ms", "300",
            "--out", str(tmp_path / "p.npz"))
    assert r.returncode == 0, r.stderr
    z = np.load(tmp_path / "p.npz")
    assert z["v_spiking_mV"].shape == z["v_mV"].shape == (300,) and (z["v_spiking_mV"] >= z["v_mV"]).all()
    near = np.zeros(300, bool)
    for t in z["spike_times_ms"]:
        near[int(t):int(t) + 4] = True
    assert np.array_equal(z["v_spiking_mV"][~near], z["v_mV"][~near])
    assert "v_spiking_mV" in json.loads(str(z["meta"]))["outputs"]


def test_predict_errors(tiny, tmp_path):
    np.savez(tmp_path / "ev.npz", t_ms=[1.0], synapse=[3], weight_nS=[1.0])
    r = cli("predict", "--model", "no-such-model", "--events", "ev.npz", "--out", "p.npz", cwd=tmp_path)
    assert r.returncode == 2 and "--model" in r.stderr and "Traceback" not in r.stderr
    r = cli("predict", "--model", str(tiny / "run" / "model"), "--events", "ev.npz", "--out", "p.npz", cwd=tmp_path)
    assert r.returncode == 2 and "synapse" in r.stderr and not (tmp_path / "p.npz").exists()
    r = cli("predict", "--events", "ev.npz", "--out", "p.txt", cwd=tmp_path)
    assert r.returncode == 2 and ".npz" in r.stderr


def test_evaluate_report(tiny, tmp_path):
    r = cli("evaluate", "--model", str(tiny / "run" / "model"), "--data", str(tiny / "test.h5"),
            "--long-run-s", "2", "--out-dir", str(tmp_path / "rep"))
    assert r.returncode == 0, r.stderr
    assert "| test |" in r.stdout
    for f in ("report.md", "metrics.json", "long_run.png", "traces_test.png", "scatter_test.png"):
        assert (tmp_path / "rep" / f).exists(), f
    m = json.loads((tmp_path / "rep" / "metrics.json").read_text())
    assert set(m["test"]) >= {"variance_explained", "precision_2ms", "recall_10ms", "median_abs_shift_ms"}
    conf = json.loads((tmp_path / "rep" / "spike_confidence.json").read_text())["test"]
    assert sum(r["n_pred"] for r in conf) == m["test"]["n_spikes_pred"]
    assert conf[0]["precision_at_least"] == pytest.approx(m["test"]["precision_10ms"])
    assert "Predicted spikes by confidence" in (tmp_path / "rep" / "report.md").read_text()
    assert (tmp_path / "rep" / "spike_confidence.png").exists() == (m["test"]["n_spikes_pred"] > 0)
    r = cli("evaluate", "--model", str(tiny / "run" / "model"))
    assert r.returncode == 2 and "--data" in r.stderr


def test_train_config_errors(tmp_path):
    r = cli("train", "--config", str(tmp_path / "missing.toml"))
    assert r.returncode == 2 and "no such file" in r.stderr
    (tmp_path / "c.toml").write_text('arch = "gru"\ntrain_data = ["nope.h5"]\nval_data = ["v.h5"]\n')
    r = cli("train", "--config", str(tmp_path / "c.toml"), cwd=tmp_path)
    assert r.returncode == 2 and "does not exist" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "runs").exists(), "no run folder is left behind by a failed start"


def test_compare_architectures_tiny(tiny, tmp_path):
    r = cli("compare-architectures", "--config", str(tiny / "cfg.toml"), "--archs", "gru,linear,cnn-lstm-windowed",
            "--test-data", str(tiny / "test.h5"), "--max-steps", "2", "--out-dir", str(tmp_path / "cmp"), "--quiet")
    assert r.returncode == 0, r.stderr
    rows = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    assert [row["arch"] for row in rows] == ["gru", "linear", "cnn-lstm-windowed"]
    by = {row["arch"]: row for row in rows}
    assert by["cnn-lstm-windowed"]["flops_per_step"] > by["linear"]["flops_per_step"] > 0
    assert "re-reads its whole 64 ms window" in (tmp_path / "cmp" / "compare.md").read_text()
    assert all(row["wall_s_per_sim_s_1000cells"] > 0 for row in rows)
    assert (tmp_path / "cmp" / "compare.md").exists() and (tmp_path / "cmp" / "compare.png").exists()
    r = cli("compare-architectures", "--config", str(tiny / "cfg.toml"), "--archs", "nope",
            "--test-data", str(tiny / "test.h5"))
    assert r.returncode == 2 and "unknown architecture" in r.stderr


def test_calibrate_and_card_rows(tiny, tmp_path):
    """calibrate sets a threshold from the 0.05-0.95 grid and records it; evaluate --update-card
    keeps the rows of earlier calls (each with its skip_ms); shipped models are not modified."""
    import shutil

    model = tmp_path / "model"
    shutil.copytree(tiny / "run" / "model", model)
    r = cli("calibrate", "--model", str(model), "--data", str(tiny / "val.h5"))
    assert r.returncode == 0, r.stderr
    meta = json.loads((model / "model.json").read_text())
    thr = meta["encoding"]["spike_threshold"]
    assert thr in np.round(np.arange(0.05, 0.96, 0.05), 2)
    cal = meta["card"]["spike_threshold_calibration"]
    assert cal["threshold"] == thr and cal["data"][0]["n_trials"] == 4 and 0 <= cal["val_f1_2ms"] <= 1
    r = cli("calibrate", "--model", "point-hh", "--data", str(tiny / "val.h5"))
    assert r.returncode == 2 and "shipped model" in r.stderr
    r = cli("calibrate", "--model", str(model), "--data", str(tmp_path / "none.h5"))
    assert r.returncode == 2 and "--data" in r.stderr and "Traceback" not in r.stderr
    for data, skip in (("test.h5", "0"), ("val.h5", "100")):
        r = cli("evaluate", "--model", str(model), "--data", str(tiny / data), "--skip-ms", skip, "--long-run-s", "0",
                "--out-dir", str(tmp_path / f"rep{skip}"), "--update-card")
        assert r.returncode == 0, r.stderr
    card = json.loads((model / "model.json").read_text())["card"]
    assert set(card["heldout_metrics"]) == {"test", "val"}
    assert card["heldout_data"]["test"]["skip_ms"] == 0 and card["heldout_data"]["val"]["skip_ms"] == 100
    assert "first 100 ms not scored" in (model / "MODEL_CARD.md").read_text()


def test_evaluate_selected_regimes(tiny, tmp_path):
    """--regime picks regimes of the cell's held-out set: only those are simulated and scored."""
    model = str(tiny / "run" / "model")
    r = cli("evaluate", "--model", model, "--regimes", "--regime", "strong", "--regime", "EI-2:1",
            "--trials", "2", "--long-run-s", "0", "--out-dir", str(tmp_path / "rep"))
    assert r.returncode == 0, r.stderr
    assert set(json.loads((tmp_path / "rep" / "metrics.json").read_text())) == {"strong", "EI-2:1"}
    assert sorted(p.name for p in (tmp_path / "rep" / "data").glob("*.h5")) == ["heldout_EI-2_1.h5",
                                                                               "heldout_strong.h5"]
    r = cli("evaluate", "--model", model, "--regimes", "--regime", "very-strong", "--out-dir", str(tmp_path / "x"))
    assert r.returncode == 2 and "--regime: unknown regime 'very-strong'" in r.stderr and "EI-1:2" in r.stderr
    r = cli("evaluate", "--model", model, "--data", str(tiny / "test.h5"), "--regime", "strong")
    assert r.returncode == 2 and "give --regimes too" in r.stderr
