"""NEURON cases of the Hay et al. 2011 L5PC tests, run in fresh processes (importable by name)."""

from __future__ import annotations

import numpy as np

# reference name in channel_curves.npz -> our mechanism suffix
CHANNELS = {
    "NaTa_t": "HayNaTa",
    "NaTs2_t": "HayNaTs2",
    "Nap_Et2": "HayNap",
    "K_Pst": "HayKPst",
    "K_Tst": "HayKTst",
    "SKv3_1": "HaySKv31",
    "Im": "HayIm",
    "Ih": "HayIh",
    "Ca_HVA": "HayCaHVA",
    "Ca_LVAst": "HayCaLVA",
}


def channel_curves(v_mV: list[float], cai_mM: list[float]) -> dict[str, np.ndarray]:
    """x_inf and tau_x of every gate of our mechanisms, keyed like ``channel_curves.npz``.

    x_inf is the gate's state after ``finitialize(v)`` (as in the reference), tau_x the
    mechanism's RANGE variable set by the same initialisation; SK's z_inf comes from
    calling the mechanism's ``rates(cai)`` procedure.
    """
    import os

    os.environ.setdefault("NEURON_MODULE_OPTIONS", "-nogui")
    from neuron import h

    from neurosurrogate.biophys.build import load_mechanisms

    load_mechanisms()
    h.celsius = 34.0
    sec = h.Section(name="chan")
    sec.insert("pas")
    sec(0.5).pas.g = 0.0
    for mech in CHANNELS.values():
        sec.insert(mech)
        getattr(sec(0.5), mech).gbar = 0.0
    out: dict[str, list[float]] = {}
    for v in v_mV:
        h.finitialize(float(v))
        seg = sec(0.5)
        assert seg.v == v
        for ref, mech in CHANNELS.items():
            mo = getattr(seg, mech)
            for gate in ("m", "h"):
                if not hasattr(mo, gate + "Inf"):
                    continue
                out.setdefault(f"{ref}_{gate}Inf", []).append(getattr(mo, gate))
                out.setdefault(f"{ref}_{gate}Tau_ms", []).append(getattr(mo, gate + "Tau"))
    sk = h.Section(name="sk")
    sk.insert("HaySK")
    h.finitialize(-80.0)
    z = []
    for c in cai_mM:
        sk(0.5).HaySK.rates(float(c))
        z.append(sk(0.5).HaySK.zInf)
    out["SK_E2_zInf"] = z
    return {k: np.asarray(v, dtype=float) for k, v in out.items()}


# reference column of cell1_segments.json -> our mechanism suffix
GBAR_COLUMNS = {
    "gNaTa_tbar_NaTa_t": "HayNaTa",
    "gNaTs2_tbar_NaTs2_t": "HayNaTs2",
    "gNap_Et2bar_Nap_Et2": "HayNap",
    "gK_Pstbar_K_Pst": "HayKPst",
    "gK_Tstbar_K_Tst": "HayKTst",
    "gSKv3_1bar_SKv3_1": "HaySKv31",
    "gSK_E2bar_SK_E2": "HaySK",
    "gImbar_Im": "HayIm",
    "gIhbar_Ih": "HayIh",
    "gCa_HVAbar_Ca_HVA": "HayCaHVA",
    "gCa_LVAstbar_Ca_LVAst": "HayCaLVA",
}


def instantiated_cell(morphology: str) -> dict:
    """Sections, compartments, synapse table and recording sites of our hay-l5pc, in the
    layout of the reference's cell1_sections.json / cell1_segments.json / synapses.json."""
    from neurosurrogate.biophys.hay import HayCell, _xyz_at, hay_model, short_name

    model = hay_model(HayCell(morphology=morphology))
    h = model.h
    origin = model.soma(0.5)
    sections, segments = [], []
    for sec in model.cell.all:
        par = sec.parentseg()
        n3d = int(sec.n3d())
        sections.append({
            "name": short_name(sec),
            "parent": short_name(par.sec) if par is not None else None,
            "parent_x": par.x if par is not None else None,
            "L_um": sec.L,
            "nseg": int(sec.nseg),
            "Ra_ohm_cm": sec.Ra,
            "dist_um_x0": h.distance(origin, sec(0.0)),
            "dist_um_x1": h.distance(origin, sec(1.0)),
            "pt3d": [[sec.x3d(i), sec.y3d(i), sec.z3d(i), sec.diam3d(i)] for i in range(n3d)] if n3d else None,
        })
        for k, seg in enumerate(sec):
            row = {
                "section": short_name(sec), "seg_index": k, "x": seg.x,
                "dist_um": h.distance(origin, seg), "area_um2": seg.area(), "diam_um": seg.diam,
                "ri_Mohm": seg.ri(), "cm_uF_cm2": seg.cm, "g_pas": seg.pas.g, "e_pas": seg.pas.e,
                "xyz_um": _xyz_at(sec, seg.x) if n3d else None,
            }
            for col, mech in GBAR_COLUMNS.items():
                row[col] = getattr(seg, mech).gbar if hasattr(seg, mech) else 0.0
            if hasattr(seg, "HayCaDyn"):
                for c in ("decay", "gamma", "depth", "minCai"):
                    row[f"{c}_CaDynamics_E2"] = getattr(seg.HayCaDyn, c)
            if hasattr(seg, "ena"):
                row["ena"], row["ek"] = seg.ena, seg.ek
            segments.append(row)
    return {"sections": sections, "segments": segments, "synapses": model.synapse_rows,
            "sites": model.sites, "d_max_um": model.d_max_um}


def step_currents(morphology: str, amps_nA: list[float], tstop_ms: float, delay_ms: float = 700.0,
                  dur_ms: float = 2000.0) -> dict:
    """The reference's somatic step protocol (finitialize(-80), no pre-run): spike times per
    amplitude, the 0.1 ms soma voltage, and the process CPU time of the runs."""
    import time

    from neurosurrogate.biophys.hay import HayCell, simulate_hay
    from neurosurrogate.inputs import EventTable

    spec = HayCell(morphology=morphology, prerun=False, v_init_mV=-80.0)
    out = {"spikes": [], "v01": [], "cpu_s": 0.0, "sim_ms": 0.0}
    for amp in amps_nA:
        t = time.process_time()
        tr = simulate_hay(spec, EventTable.empty(), tstop_ms, iclamp=(float(amp), delay_ms, dur_ms), keep_full=True)
        out["cpu_s"] += time.process_time() - t
        out["sim_ms"] += tstop_ms
        out["spikes"].append(tr.spike_times_ms)
        out["v01"].append(tr.meta["v_full_mV"][::4])
    return out


def bombardment(morphology: str, trials: list[int], duration_ms: float, ref_file: str, **cell) -> dict:
    """Reference bombardment trials replayed through our cell (same synapse table and events,
    finitialize(-80), no pre-run): spikes, 1 kHz soma/dendrite traces, CPU time per trial."""
    import time

    from neurosurrogate.biophys.hay import HayCell, simulate_hay
    from neurosurrogate.inputs import EventTable

    z = np.load(ref_file)
    spec = HayCell(morphology=morphology, prerun=False, v_init_mV=-80.0, **cell)
    off = z["ev_offsets"]
    out = {"spikes": [], "v_1k": [], "v_dend": [], "v01": [], "cpu_s": [], "n_events": []}
    for k in trials:
        sl = slice(int(off[k]), int(off[k + 1]))
        ev = EventTable(z["ev_time_ms"][sl], z["ev_syn"][sl].astype(np.int64), z["ev_weight_nS"][sl])
        t = time.process_time()
        tr = simulate_hay(spec, ev, duration_ms, keep_full=True)
        out["cpu_s"].append(time.process_time() - t)
        out["n_events"].append(int((ev.t_ms < duration_ms).sum()))
        out["spikes"].append(tr.spike_times_ms)
        out["v_1k"].append(tr.v_mV)
        out["v_dend"].append(tr.v_dend_mV)
        out["v01"].append(tr.meta["v_full_mV"][::4])
    return out


def init_modes(morphology: str, duration_ms: float) -> dict:
    """No input: the default steady-state start vs finitialize(-80) without pre-run."""
    from neurosurrogate.biophys.hay import HayCell, simulate_hay
    from neurosurrogate.biophys.simulate import resting_potential
    from neurosurrogate.inputs import EventTable

    out = {}
    for prerun in (True, False):
        spec = HayCell(morphology=morphology, prerun=prerun)
        tr = simulate_hay(spec, EventTable.empty(), duration_ms, keep_full=True)
        out[prerun] = {"v": tr.meta["v_full_mV"], "v_dend": tr.meta["v_dend_full_mV"],
                       "spikes": tr.spike_times_ms}
    out["rest"] = resting_potential(HayCell(morphology=morphology))
    return out


def current_waveform(morphology: str, amp_nA: float, duration_ms: float) -> dict:
    """A somatic current given as a waveform (i_soma_nA) vs the same current as a step (iclamp), a
    ramp waveform, and no current after them: 1 kHz soma voltages."""
    from neurosurrogate.biophys.hay import HayCell, simulate_hay
    from neurosurrogate.inputs import EventTable

    spec = HayCell(morphology=morphology)  # from the steady state (the default)
    n = int(duration_ms)
    step = simulate_hay(spec, EventTable.empty(), duration_ms, iclamp=(amp_nA, 0.0, duration_ms))
    wave = simulate_hay(spec, EventTable.empty(), duration_ms, i_soma_nA=np.full(n, amp_nA))
    ramp = simulate_hay(spec, EventTable.empty(), duration_ms, i_soma_nA=np.linspace(0.0, amp_nA, n))
    rest = simulate_hay(spec, EventTable.empty(), duration_ms)  # nothing left over from the waveforms
    return {"step": step.v_mV, "wave": wave.v_mV, "ramp": ramp.v_mV, "rest": rest.v_mV}
