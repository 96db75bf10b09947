"""The Hay et al. 2011 layer-5 pyramidal cell (``hay-l5pc``) against the original model's output.

The reference material lives outside the repository, in ``../shared/hay2011`` relative to the
repository root (README.md there describes every file); the tests skip without it.
"""

from __future__ import annotations

import numpy as np
import pytest

import _hay_cases as cases
from conftest import SHARED, in_fresh_process

HAY = SHARED / "hay2011"
REF = HAY / "reference"
MORPH = HAY / "cell1.asc"

pytestmark = [
    pytest.mark.neuron,
    pytest.mark.skipif(not (REF / "channel_curves.npz").exists(), reason=f"no Hay 2011 reference in {HAY}"),
]


def test_channel_gates_match_reference_curves(run_neuron):
    """Every gate's x_inf(v) and tau_x(v) on the reference grid (-120..60 mV, singular points
    included) and SK's z_inf(cai) equal the original mechanisms' values to 1e-9 relative
    (measured: x_inf bit-identical, tau within 1e-11, the reference's own precision)."""
    ref = np.load(REF / "channel_curves.npz")
    ours = run_neuron(cases.channel_curves, ref["v_mV"].tolist(), ref["cai_mM"].tolist())
    expected = {k for k in ref.files if k not in ("v_mV", "cai_mM")}
    assert set(ours) == expected
    for key in sorted(expected):
        np.testing.assert_allclose(ours[key], ref[key], rtol=1e-9, atol=0, err_msg=key)


@pytest.fixture(scope="module")
def built():
    """Our instantiated cell1 (one NEURON worker for the three table tests)."""
    return in_fresh_process(cases.instantiated_cell, str(MORPH))


def test_morphology_matches_reference_sections(built):
    """196 sections in Import3d's numbering with the same parents, lengths, nseg (the
    1 + 2 floor(L/40) rule), path distances and 3-D points; the replaced axon."""
    import json

    ref = json.loads((REF / "cell1_sections.json").read_text())["sections"]
    ours = built["sections"]
    assert [s["name"] for s in ours] == [s["name"] for s in ref]
    for a, b in zip(ours, ref):
        assert (a["parent"], a["parent_x"], a["nseg"]) == (b["parent"], b["parent_x"], b["nseg"]), b["name"]
        for key in ("L_um", "Ra_ohm_cm", "dist_um_x0", "dist_um_x1"):
            assert a[key] == pytest.approx(b[key], rel=1e-12, abs=1e-9), (b["name"], key)
        if b.get("pt3d"):
            np.testing.assert_allclose(a["pt3d"], b["pt3d"], rtol=0, atol=1e-9, err_msg=b["name"])
        else:
            assert a["pt3d"] is None and b["name"].startswith("axon")
    assert built["d_max_um"] == pytest.approx(1300.5335016, abs=1e-6)


def test_compartments_match_reference_segments(built):
    """642 compartments: position, distance, area, diameter, axial resistance, cm, passive
    parameters, every gbar (0 = not inserted; the apical Ih/Ca rules including the
    last-segment rule, to the reference's 1e-10 S/cm2 rounding), Ca-pool constants, ena/ek."""
    import json

    ref = json.loads((REF / "cell1_segments.json").read_text())["segments"]
    ours = built["segments"]
    assert len(ours) == len(ref) == 642
    total = 0.0
    for a, b in zip(ours, ref):
        where = f"{b['section']}[{b['seg_index']}]"
        assert (a["section"], a["seg_index"]) == (b["section"], b["seg_index"])
        assert set(a) == set(b), (where, set(a) ^ set(b))
        for key, val in b.items():
            if key in ("section", "seg_index") or val is None:
                assert a[key] == val, (where, key)
            elif key == "xyz_um":
                np.testing.assert_allclose(a[key], val, rtol=0, atol=1e-9, err_msg=where)
            elif key.startswith("g"):
                assert a[key] == pytest.approx(val, rel=0, abs=2e-10), (where, key)
            else:
                assert a[key] == pytest.approx(val, rel=1e-12, abs=1e-12), (where, key)
        total += a["area_um2"]
    assert total == pytest.approx(31192.17, abs=0.01)
    hot = [a for a in ours if a["gCa_LVAstbar_Ca_LVAst"] == 0.0187]
    assert len(hot) == 29


def test_synapse_table_and_recording_sites_match_reference(built):
    """The default 200-site table (seed 2011 rule) and the 400/700 um trunk sites."""
    import json

    ref = json.loads((REF / "synapses.json").read_text())
    assert len(built["synapses"]) == len(ref["synapses"]) == 200
    for a, b in zip(built["synapses"], ref["synapses"]):
        for key, val in b.items():
            if isinstance(val, float):
                assert a[key] == pytest.approx(val, rel=1e-12, abs=1e-9), (b["index"], key)
            elif key == "xyz_um":
                np.testing.assert_allclose(a[key], val, rtol=0, atol=1e-9)
            else:
                assert a[key] == val, (b["index"], key)
    for site, key in zip(built["sites"], ("apic400", "apic700")):
        b = ref["recording_sites"][key]
        assert site["section"] == b["section"] and site["nseg"] == b["nseg"]
        for k in ("x", "x_node", "dist_um", "diam_um"):
            assert site[k] == pytest.approx(b[k], rel=1e-12), (key, k)


# ----------------------------------------------------------------------------------------
# Validation against the original model's output (reference protocol: finitialize(-80),
# no pre-run, fixed dt 0.025 ms, AlphaSynapse-like 10-tau cut-off of the alpha synapses)
# ----------------------------------------------------------------------------------------
def _ref_spikes(z, k: int, t_max: float = np.inf) -> np.ndarray:
    o = z["spike_offsets"]
    s = z["spike_times_ms"][o[k] : o[k + 1]]
    return s[s < t_max]


def _check_step(ours: np.ndarray, ref: np.ndarray, delay_ms: float = 700.0) -> None:
    from neurosurrogate.evaluate.metrics import match_spikes

    assert abs(len(ours) - len(ref)) <= 1, (len(ours), len(ref))
    if len(ref):
        assert len(ours) and abs((ours[0] - delay_ms) - (ref[0] - delay_ms)) < 2.0, (ours[:1], ref[:1])
        i, _ = match_spikes(ref, ours, 2.0)
        assert len(i) >= 0.9 * len(ref)


def test_step_current_short(run_neuron):
    """1.0 nA soma step, first 100 ms of it (CI-sized): spikes and voltage as the reference.
    Measured: spike times within 1e-6 ms, voltage within 1e-4 mV."""
    z = np.load(REF / "step_current.npz")
    k = int(np.flatnonzero(z["amps_nA"] == 1.0)[0])
    out = run_neuron(cases.step_currents, str(MORPH), [1.0], 800.0)
    ours, ref = out["spikes"][0], _ref_spikes(z, k, 800.0)
    assert len(ref) >= 3
    _check_step(ours, ref)
    assert len(ours) == len(ref) and np.abs(ours - ref).max() < 0.01
    v = out["v01"][0]
    assert np.abs(v[:7000] - z["v_soma"][k][:7000]).max() < 1e-3, "pre-step drift from -80 mV"
    assert abs(v[6990] - (-77.19)) < 0.01


@pytest.mark.slow
def test_step_currents_all_amplitudes(run_neuron):
    """All eight amplitudes of step_current.npz, 3 s each: spike count within +-1, first-spike
    latency within 2 ms, >= 90 % of spikes within 2 ms."""
    z = np.load(REF / "step_current.npz")
    amps = z["amps_nA"].tolist()
    out = run_neuron(cases.step_currents, str(MORPH), amps, float(z["tstop_ms"]))
    for k, amp in enumerate(amps):
        ours, ref = out["spikes"][k], _ref_spikes(z, k)
        assert len(ref) == z["spike_counts"][k]
        _check_step(ours, ref)


def _check_bombardment(z, k: int, spikes, v_1k, v_dend, duration_ms: float) -> dict:
    from neurosurrogate.evaluate.metrics import match_spikes

    n = int(duration_ms)
    ref = _ref_spikes(z, k, duration_ms)
    assert abs(len(spikes) - len(ref)) <= 0.1 * len(ref), (k, len(spikes), len(ref))
    i, j = match_spikes(ref, spikes, 2.0)
    if len(ref):
        assert len(i) >= 0.9 * len(ref) and len(j) >= 0.9 * len(spikes), (k, len(i), len(ref))
    vr = z["v_soma_1k"][k][:n]
    keep = np.ones(n, bool)
    for s in np.concatenate([ref, spikes]):  # leave out every AP: [t - 2, t + 10) ms
        keep[max(0, int(s) - 2) : int(s) + 10] = False
    r = np.corrcoef(v_1k[keep], vr[keep])[0, 1]
    assert r >= 0.98, (k, r)
    r_dend = [np.corrcoef(v_dend[s], z[key][k][:n])[0, 1] for s, key in enumerate(("v_apic400_1k", "v_apic700_1k"))]
    assert min(r_dend) >= 0.98, (k, r_dend)
    return {"n": len(spikes), "n_ref": len(ref), "matched": len(i), "r": r,
            "max_dt": float(np.abs(spikes[j] - ref[i]).max()) if len(i) else 0.0}


def test_bombardment_short(run_neuron):
    """The first 500 ms of bombardment trial 10 (1207 events; CI-sized), same synapse table
    and events as the reference. Measured: every spike within 1e-7 ms, r = 1.0000."""
    z = np.load(REF / "synaptic_bombardment.npz")
    out = run_neuron(cases.bombardment, str(MORPH), [10], 500.0, str(REF / "synaptic_bombardment.npz"))
    res = _check_bombardment(z, 10, out["spikes"][0], out["v_1k"][0], out["v_dend"][0], 500.0)
    assert res["n_ref"] >= 5 and res["matched"] == res["n_ref"] == res["n"]
    assert res["max_dt"] < 0.01
    assert np.abs(out["v01"][0] - z["v_soma_01"][10][:5001]).max() < 0.01


@pytest.mark.slow
def test_bombardment_all_trials(run_neuron):
    """All 20 trials x 2 s: spike counts within 10 %, >= 90 % of spikes within 2 ms, subthreshold
    soma voltage r >= 0.98 (and both dendritic sites)."""
    z = np.load(REF / "synaptic_bombardment.npz")
    trials = list(range(20))
    out = run_neuron(cases.bombardment, str(MORPH), trials, 2000.0, str(REF / "synaptic_bombardment.npz"))
    for k in trials:
        _check_bombardment(z, k, out["spikes"][k], out["v_1k"][k], out["v_dend"][k], 2000.0)


@pytest.mark.slow
def test_bombardment_exact_alpha_still_matches(run_neuron):
    """Without the 10-tau cut-off (exact alpha conductances) the strongest trial still passes
    the validation bounds (measured: 47 of 48 spikes within 2 ms, r = 0.9998)."""
    z = np.load(REF / "synaptic_bombardment.npz")
    out = run_neuron(cases.bombardment, str(MORPH), [19], 2000.0, str(REF / "synaptic_bombardment.npz"),
                     alpha_cutoff_tau=0.0)
    _check_bombardment(z, 19, out["spikes"][0], out["v_1k"][0], out["v_dend"][0], 2000.0)


def test_initialisation_modes(run_neuron):
    """Default: every trial starts at the steady state (flat without input, soma near the
    reference's late resting value -77.25 mV). prerun=False: finitialize(-80) and a drift."""
    out = run_neuron(cases.init_modes, str(MORPH), 200.0)
    steady, raw = out[True], out[False]
    assert np.ptp(steady["v"]) < 1e-5 and np.ptp(steady["v_dend"], axis=1).max() < 1e-5
    assert steady["v"][0] == pytest.approx(out["rest"]) and out["rest"] == pytest.approx(-77.25, abs=0.02)
    assert raw["v"][0] == -80.0 and raw["v"][-1] > -79.0
    assert len(steady["spikes"]) == len(raw["spikes"]) == 0


def test_somatic_current_waveform(run_neuron):
    """``i_soma_nA`` (a current waveform, one sample per ms, linearly interpolated) injects what an
    ``iclamp`` step of the same amplitude does; a ramp depolarises progressively; afterwards the cell
    is back at rest (the waveform does not stay attached)."""
    out = run_neuron(cases.current_waveform, str(MORPH), 0.3, 300.0)
    # a step from t = 0 and a constant waveform inject the same current at every time step
    np.testing.assert_allclose(out["wave"][1:], out["step"][1:], atol=1e-6)
    assert out["wave"][-1] > out["rest"][-1] + 5.0  # 0.3 nA depolarises by several mV
    ramp_rise = out["ramp"] - out["rest"]
    assert 0 < ramp_rise[100] < ramp_rise[200] < ramp_rise[299]
    assert np.ptp(out["rest"]) < 1e-5


def test_somatic_current_waveform_bad_input_is_refused():
    from neurosurrogate.biophys.hay import HayCell, simulate_hay
    from neurosurrogate.inputs import EventTable

    spec = HayCell(morphology=str(MORPH))
    for bad, what in [(np.zeros(50), "at least 100"), (np.full(100, np.nan), "finite"),
                      (np.zeros((100, 2)), "1-D")]:
        with pytest.raises(ValueError, match=what):
            simulate_hay(spec, EventTable.empty(), 100.0, i_soma_nA=bad)
    with pytest.raises(ValueError, match="not both"):
        simulate_hay(spec, EventTable.empty(), 100.0, iclamp=(0.1, 0, 10), i_soma_nA=np.zeros(100))


# ----------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------
def _cli(*args: str, env_morphology: str | None = None, cwd=None):
    """The CLI with $NEUROSURROGATE_HAY_MORPHOLOGY set to ``env_morphology`` (or unset)."""
    import os
    import subprocess
    import sys

    env = dict(os.environ)
    env.pop("NEUROSURROGATE_HAY_MORPHOLOGY", None)
    if env_morphology is not None:
        env["NEUROSURROGATE_HAY_MORPHOLOGY"] = env_morphology
    return subprocess.run([sys.executable, "-m", "neurosurrogate.cli", *args], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=600)


def test_cli_simulate_contract(tmp_path):
    """``simulate --cell hay-l5pc --morphology PATH --events E --duration-ms T --v-init-mV -80
    --no-prerun --out gt.npz``: t_ms, v_mV (soma, 1 kHz), v_dend_mV (2, T), spike_times_ms; event
    synapse indices refer to the default table. First 300 ms of bombardment trial 19."""
    from neurosurrogate.inputs import EventTable

    z = np.load(REF / "synaptic_bombardment.npz")
    o, k, T = z["ev_offsets"], 19, 300
    sl = slice(int(o[k]), int(o[k + 1]))
    ev = EventTable(z["ev_time_ms"][sl], z["ev_syn"][sl].astype(np.int64), z["ev_weight_nS"][sl]).window(0, T)
    ev.save(tmp_path / "events.npz")
    out = tmp_path / "gt.npz"
    r = _cli("simulate", "--cell", "hay-l5pc", "--morphology", str(MORPH), "--events", str(tmp_path / "events.npz"),
             "--duration-ms", str(T), "--v-init-mV", "-80", "--no-prerun", "--out", str(out))
    assert r.returncode == 0, r.stderr
    g = np.load(out)
    assert {"t_ms", "v_mV", "v_dend_mV", "spike_times_ms"} <= set(g.files)
    assert np.array_equal(g["t_ms"], np.arange(float(T))) and g["v_mV"].shape == (T,)
    assert g["v_dend_mV"].shape == (2, T)
    ref = _ref_spikes(z, k, T)
    assert len(ref) >= 3 and len(g["spike_times_ms"]) == len(ref)
    assert np.abs(g["spike_times_ms"] - ref).max() < 0.01
    ref_dend = np.stack([z["v_apic400_1k"][k][:T], z["v_apic700_1k"][k][:T]])
    assert np.abs(g["v_dend_mV"] - ref_dend).max() < 0.01
    assert g["v_mV"][0] == -80.0


def test_cli_bad_input_gives_clear_errors(tmp_path):
    bad = tmp_path / "bad.asc"
    bad.write_text("this is not a morphology\n")
    ev = tmp_path / "ev.npz"
    from neurosurrogate.inputs import EventTable

    EventTable([1.0], [0], [3.0]).save(ev)
    EventTable([1.0], [200], [3.0]).save(tmp_path / "ev200.npz")
    sim = ["simulate", "--cell", "hay-l5pc", "--duration-ms", "10", "--out", str(tmp_path / "o.npz")]
    cases_ = [
        (sim + ["--events", str(ev)], "needs a morphology"),
        (sim + ["--events", str(ev), "--morphology", str(tmp_path / "missing.asc")], "does not exist"),
        (sim + ["--events", str(ev), "--morphology", str(ev)], "expected a Neurolucida .asc or an .swc"),
        (sim + ["--events", str(ev), "--morphology", str(bad)], "no somatic/basal/apical sections"),
        (sim + ["--events", str(tmp_path / "ev200.npz"), "--morphology", str(MORPH)], "expected 0..199"),
        (sim + ["--trials", "2", "--morphology", str(MORPH)], "use a .h5 suffix"),
        (["simulate", "--cell", "point-hh", "--events", str(ev), "--no-prerun", "--out", "x.npz"],
         "applies to --cell hay-l5pc only"),
        (["synapses", "--cell", "point-hh", "--morphology", str(MORPH)], "applies to --cell hay-l5pc only"),
    ]
    for args, msg in cases_:
        r = _cli(*args)
        assert r.returncode == 2, (args, r.stderr)
        assert "neurosurrogate: error:" in r.stderr and msg in r.stderr, (args, r.stderr)
        assert "Traceback" not in r.stderr


def test_cli_synapses_from_env_morphology():
    """The morphology can come from $NEUROSURROGATE_HAY_MORPHOLOGY; the table is the reference's."""
    import json

    r = _cli("synapses", "--cell", "hay-l5pc", env_morphology=str(MORPH))
    assert r.returncode == 0, r.stderr
    rows = [line.split() for line in r.stdout.splitlines()[1:]]
    ref = json.loads((REF / "synapses.json").read_text())["synapses"]
    assert len(rows) == 200
    assert [(row[1], row[5]) for row in rows] == [(s["kind"], s["section"]) for s in ref]
