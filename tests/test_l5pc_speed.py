"""Argument checks of benchmarks/l5pc_speed.py (its timings are benchmarks, not tests)."""

import json
import sys

import pytest

from conftest import REPO, load_module

MORPH = REPO.parent / "shared" / "hay2011" / "cell1.asc"
speed = load_module("benchmarks/l5pc_speed.py")


def run(monkeypatch, *argv):
    monkeypatch.setattr(sys, "argv", ["l5pc_speed.py", "--morphology", str(MORPH), *argv])
    with pytest.raises(SystemExit) as exc:
        speed.main()
    return str(exc.value)


@pytest.mark.skipif(not MORPH.exists(), reason="needs ../shared/hay2011/cell1.asc")
def test_neuron_step_is_checked_and_recorded_runs_of_another_step_are_not_reused(monkeypatch, tmp_path):
    assert "--neuron-dt-ms 0.03" in run(monkeypatch, "--neuron-dt-ms", "0.03")
    assert "divide 1 ms" in run(monkeypatch, "--neuron-dt-ms", "0.03")
    old = tmp_path / "old.json"  # a record of the default step (before the option: no neuron_dt_ms)
    old.write_text(json.dumps({"sim_ms": 100.0, "seed": 2025, "neuron": []}))
    msg = run(monkeypatch, "--neuron-dt-ms", "0.1", "--reuse-neuron", str(old))
    assert "NEURON dt 0.025 ms" in msg and "0.1)" in msg
