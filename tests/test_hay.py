"""The Hay et al. 2011 layer-5 pyramidal cell (``hay-l5pc``) against the original model's output.

The reference material lives outside the repository, in ``../shared/hay2011`` relative to the
repository root (README.md there describes every file); the tests skip without it.
"""

from __future__ import annotations

import numpy as np
import pytest

import _hay_cases as cases
from conftest import SHARED

HAY = SHARED / "hay2011"
REF = HAY / "reference"

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
