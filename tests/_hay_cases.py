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
