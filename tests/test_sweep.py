"""Sweeps: batched equals one by one, resume, Dask, reports, config errors, the CLI."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import cli
from neurosurrogate.network.config import ConfigError
from neurosurrogate.sweep.config import load_sweep_config, sweep_from_dict
from neurosurrogate.sweep.report import ReportError, compare_settings, write_report
from neurosurrogate.sweep.runner import SweepError, run_sweep

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
MEASURE_COLS = ["instability", "immediate_response", "baseline_rate_Hz", "response_rate_Hz", "mean_rate_Hz"]


def small_network(tmp_path: Path) -> Path:
    """The example circuit shrunk to 40 cells x 120 ms (stimulus at 60 ms)."""
    text = (EXAMPLES / "paper_circuit.toml").read_text()
    text = re.sub(r"duration_ms = 250", "duration_ms = 120", text)
    text = re.sub(r"\nn = 150", "\nn = 40", text)
    text = text.replace("time_ms = 100.0", "time_ms = 60.0").replace("stimulus_ms = 100.0", "stimulus_ms = 60.0")
    p = tmp_path / "net.toml"
    p.write_text(text)
    return p


SWEEP = """
network = "net.toml"
[sweep]
repeats = 2
seed = 5
chunk_size = {chunk}
[sweep.grid]
"network.exc_scale" = [0.8, 1.2]
"projections.recurrent.p" = {{ start = 0.05, stop = 0.1, num = 2 }}
[report]
x = "network.exc_scale"
y = "projections.recurrent.p"
[[report.compare]]
name = "weak vs strong"
a = {{ "network.exc_scale" = 0.8, "projections.recurrent.p" = 0.05 }}
b = {{ "network.exc_scale" = 1.2, "projections.recurrent.p" = 0.1 }}
"""


def sweep_file(tmp_path: Path, chunk: int = 3) -> Path:
    small_network(tmp_path)
    p = tmp_path / f"sweep{chunk}.toml"
    p.write_text(SWEEP.format(chunk=chunk))
    return p


def test_runs_have_distinct_reproducible_seeds(tmp_path):
    sw = load_sweep_config(sweep_file(tmp_path))
    runs = sw.runs()
    assert len(runs) == 8 and [r.run for r in runs] == list(range(8))
    assert len({r.seed for r in runs}) == 8
    assert [r.seed for r in load_sweep_config(sweep_file(tmp_path)).runs()] == [r.seed for r in runs]
    assert runs[0].values == (("network.exc_scale", 0.8), ("projections.recurrent.p", 0.05))


def test_batched_sweep_equals_runs_one_by_one(tmp_path):
    sw = load_sweep_config(sweep_file(tmp_path))
    batched = run_sweep(sw, tmp_path / "a.parquet", chunk_size=8, dtype="float64", progress=False)
    single = run_sweep(sw, tmp_path / "b.parquet", chunk_size=1, dtype="float64", progress=False)
    assert len(batched) == 8
    pd.testing.assert_frame_equal(batched[["run", "seed"] + MEASURE_COLS], single[["run", "seed"] + MEASURE_COLS])
    assert batched["chunk_cells"].iloc[0] == 8 * 40 and single["chunk_cells"].iloc[0] == 40
    assert batched["instability"].std() > 0  # the settings really differ


def test_sweep_resumes_after_interruption(tmp_path):
    sw = load_sweep_config(sweep_file(tmp_path, chunk=3))
    out = tmp_path / "r.parquet"
    assert run_sweep(sw, out, stop_after_chunks=2, progress=False) is None
    parts = sorted(p.name for p in (tmp_path / "r.parquet.parts").glob("chunk-*.parquet"))
    assert parts == ["chunk-00000.parquet", "chunk-00001.parquet"] and not out.exists()
    logged = []
    done = run_sweep(sw, out, progress=False, log=logged.append)
    assert "resuming: 2 of 3 chunks" in logged[0]
    full = run_sweep(sw, tmp_path / "full.parquet", progress=False)
    pd.testing.assert_frame_equal(done[MEASURE_COLS], full[MEASURE_COLS])
    pd.testing.assert_frame_equal(pd.read_parquet(out)[MEASURE_COLS], full[MEASURE_COLS])
    # a different sweep must not resume from these chunks
    other = sweep_from_dict(_sweep_dict(**{"sweep/repeats": 3}), tmp_path)
    with pytest.raises(SweepError, match="another sweep"):
        run_sweep(other, out, progress=False)


def test_a_changed_model_under_the_same_name_does_not_resume(tmp_path):
    """The fingerprint covers the weights of the models a sweep uses, not only their names: chunks
    computed with other weights in the same model folder are refused, not silently reused."""
    import shutil

    from neurosurrogate.surrogate.model import resolve_model_path

    model = tmp_path / "model"
    shutil.copytree(resolve_model_path("point-hh"), model)
    path = sweep_file(tmp_path)  # writes net.toml beside it
    net = tmp_path / "net.toml"
    net.write_text(net.read_text().replace('model = "point-hh"', f'model = "{model}"'))
    assert str(model) in net.read_text()
    sw = load_sweep_config(path)
    out = tmp_path / "r.parquet"
    run_sweep(sw, out, stop_after_chunks=1, progress=False)
    before = sw.fingerprint()
    card = model / "model.json"
    card.write_text(card.read_text().replace('"point-hh"', '"point-hh" ', 1))  # other bytes, same name
    assert load_sweep_config(path).fingerprint() != before
    with pytest.raises(SweepError, match="another sweep"):
        run_sweep(load_sweep_config(path), out, progress=False)


def test_dask_scheduler_gives_the_same_table(tmp_path):
    from distributed import LocalCluster

    sw = load_sweep_config(sweep_file(tmp_path, chunk=4))
    local = run_sweep(sw, tmp_path / "local.parquet", progress=False)
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        remote = run_sweep(sw, tmp_path / "dask.parquet", scheduler=cluster.scheduler_address, progress=False)
    pd.testing.assert_frame_equal(local[["run", "seed"] + MEASURE_COLS], remote[["run", "seed"] + MEASURE_COLS])
    with pytest.raises(SweepError, match="cannot reach a Dask scheduler"):
        run_sweep(sw, tmp_path / "x.parquet", scheduler="tcp://127.0.0.1:1", progress=False)


def test_report_heatmaps_table_and_ttests(tmp_path):
    from scipy import stats

    sw = load_sweep_config(sweep_file(tmp_path, chunk=8))
    df = run_sweep(sw, tmp_path / "a.parquet", progress=False)
    paths = write_report(df, tmp_path / "rep", sw.report_x, sw.report_y, sw.compare, sw.params)
    assert paths["heatmaps"].stat().st_size > 10_000
    table = pd.read_csv(paths["settings"])
    assert len(table) == 4 and (table["instability_count"] == 2).all()
    row = compare_settings(df, *(sw.compare[0][k] for k in ("a", "b")))[0]
    a = df[(df["network.exc_scale"] == 0.8) & np.isclose(df["projections.recurrent.p"], 0.05)]["instability"]
    b = df[(df["network.exc_scale"] == 1.2) & np.isclose(df["projections.recurrent.p"], 0.1)]["instability"]
    assert row["a_mean"] == pytest.approx(a.mean()) and row["b_sd"] == pytest.approx(b.std(ddof=1))
    if a.std() > 0 or b.std() > 0:
        assert row["t"] == pytest.approx(stats.ttest_ind(a, b, equal_var=False).statistic)
    assert "weak vs strong" in paths["stats"].read_text()
    with pytest.raises(ReportError, match="no run has"):
        compare_settings(df, {"network.exc_scale": 0.9}, {"network.exc_scale": 1.2})


def _sweep_dict(**over):
    d = tomllib.loads(SWEEP.format(chunk=3))
    for path, v in over.items():
        cur = d
        parts = path.split("/")
        for p in parts[:-1]:
            cur = cur.setdefault(p, {})
        cur[parts[-1]] = v
    return d


BAD = [
    ({"network": 3}, r"'network' must name the network config file"),
    ({"network": "nope.toml"}, r"no such file"),
    ({"extra": 1}, r"unknown top-level key"),
    ({"sweep/mode": "latin"}, r"mode: expected 'grid' or 'random'"),
    ({"sweep/repeats": 0}, r"repeats: expected a whole number >= 1"),
    ({"sweep/chunk_size": 1.5}, r"chunk_size: expected a whole number >= 1"),
    ({"sweep/colour": 1}, r"\[sweep\] unknown key"),
    ({"sweep/grid/network.exc_scale": []}, r"expected a non-empty list of numbers"),
    ({"sweep/grid/network.exc_scale": {"start": 1, "stop": 2}}, r"expected a list or \{start, stop, num\}"),
    ({"sweep/grid/network.exc_scale": [-1.0, 1.0]}, r"exc_scale: expected a finite number >= 0"),
    ({"sweep/grid/projections.recurent.p": [0.1]}, r"no table \[projections.recurent\]"),
    ({"sweep/grid/network.exc_sale": [1.0]}, r"unknown key\(s\) \['exc_sale'\]"),
    ({"sweep/mode": "random", "sweep/random": {"n": 0}}, r"\[sweep.random\] n: expected a whole number >= 1"),
    ({"sweep/mode": "random", "sweep/random": {"n": 3, "network.exc_scale": [2, 1]}}, r"expected \[low, high\]"),
    ({"report/x": "network.inh_scale"}, r"\[report\] x: 'network.inh_scale' is not a swept parameter"),
    ({"report/compare": [{"a": {"network.seed": 1}, "b": {}}]}, r"are not swept parameters"),
]


@pytest.mark.parametrize("over,message", BAD, ids=[m for _, m in BAD])
def test_sweep_config_errors(tmp_path, over, message):
    small_network(tmp_path)
    with pytest.raises(ConfigError, match=message):
        sweep_from_dict(_sweep_dict(**over), tmp_path)


def test_random_mode_samples_within_bounds(tmp_path):
    small_network(tmp_path)
    d = _sweep_dict(**{"sweep/mode": "random", "sweep/random": {"n": 5, "network.exc_scale": [0.7, 1.3]}})
    del d["sweep"]["grid"]
    d["report"] = {}
    sw = sweep_from_dict(d, tmp_path)
    vals = [s[0] for s in sw.settings]
    assert len(vals) == 5 and all(0.7 <= v <= 1.3 for v in vals) and len(set(vals)) == 5


def test_cli_sweep_and_report(tmp_path):
    cfg = sweep_file(tmp_path, chunk=8)
    r = cli("sweep", "--config", str(cfg), "--out", str(tmp_path / "res.parquet"), "--quiet")
    assert r.returncode == 0, r.stderr
    assert "8 runs" in r.stdout and (tmp_path / "res_report" / "heatmaps.png").exists()
    r = cli("sweep-report", "--results", str(tmp_path / "res.parquet"), "--config", str(cfg),
            "--out-dir", str(tmp_path / "rep2"))
    assert r.returncode == 0, r.stderr and (tmp_path / "rep2" / "stats.md").exists()
    r = cli("sweep", "--config", str(cfg), "--out", str(tmp_path / "res.csv"))
    assert r.returncode == 2 and "expected a .parquet file name" in r.stderr and "Traceback" not in r.stderr
    r = cli("network", "--config", str(tmp_path / "net.toml"), "--out", str(tmp_path / "one.npz"),
            "--set", "network.exc_scale=0.9", "--plot", str(tmp_path / "one.png"))
    assert r.returncode == 0, r.stderr
    z = np.load(tmp_path / "one.npz")
    assert z["v_mV"].shape == (4, 120) and "immediate_response" in str(z["measures"])
    r = cli("network", "--config", str(tmp_path / "net.toml"), "--out", str(tmp_path / "one.npz"),
            "--set", "projections.recurrent.p=2")
    assert r.returncode == 2 and "p: expected a finite number" in r.stderr
