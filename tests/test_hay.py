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
