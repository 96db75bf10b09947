"""The Hay 2011 reference recordings as held-out test data (evaluate --data synaptic_bombardment.npz)."""

from __future__ import annotations


import numpy as np
import pytest

from conftest import SHARED
from neurosurrogate.data.dataset import DatasetError
from neurosurrogate.evaluate.reference import check_synapse_table, is_reference_file, load_reference_bombardment

REF = SHARED / "hay2011" / "reference" / "synaptic_bombardment.npz"
needs_ref = pytest.mark.skipif(not REF.exists(), reason=f"no reference data at {REF}")


@needs_ref
def test_reference_file_loads_as_a_dataset():
    z = np.load(REF)
    d = load_reference_bombardment(REF)
    assert is_reference_file(REF)
    assert d.n_trials == 20 and d.v_mV.shape == (20, 2000) and d.v_dend_mV.shape == (20, 2, 2000)
    assert d.ica is None and np.isnan(d.ina).all()  # not recorded: never scored as if it were
    k = 10
    sl = slice(z["ev_offsets"][k], z["ev_offsets"][k + 1])
    assert np.array_equal(d.events[k].t_ms, z["ev_time_ms"][sl][z["ev_time_ms"][sl] < 2000])
    assert np.array_equal(d.v_mV[k], z["v_soma_1k"][k, :2000].astype(np.float32))
    assert np.array_equal(d.v_dend_mV[k, 1], z["v_apic700_1k"][k, :2000].astype(np.float32))
    assert [len(s) for s in d.spike_times_ms] == [int(c) for c in z["spike_counts"]]
    assert [s["dist_um"] for s in d.sites] == pytest.approx(list(z["site_dist_um"]))
    # the synapse table as the model cards keep it: the same table passes, a moved site is caught
    table = [dict(s) for s in d.synapses]
    check_synapse_table(table, d)
    check_synapse_table(None, d)
    table[7]["section"] = "apic[0]"
    with pytest.raises(DatasetError, match="synapse 7"):
        check_synapse_table(table, d)
    assert len(load_reference_bombardment(REF, 500.0).v_mV[0]) == 500


def test_reference_errors(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        load_reference_bombardment(tmp_path / "none.npz")
    np.savez(tmp_path / "other.npz", v_soma_1k=np.zeros((2, 10)))
    assert not is_reference_file(tmp_path / "other.npz") and not is_reference_file(tmp_path / "none.npz")
    with pytest.raises(DatasetError, match="not a reference bombardment file"):
        load_reference_bombardment(tmp_path / "other.npz")
    (tmp_path / "junk.npz").write_bytes(b"junk")
    with pytest.raises(DatasetError, match="readable"):
        load_reference_bombardment(tmp_path / "junk.npz")


@needs_ref
def test_load_heldout_checks_the_models_table():
    """evaluate --data and the learning curve load held-out sets through load_heldout: the reference
    file is checked against the model card's synapse table; other paths are dataset files."""
    from types import SimpleNamespace

    from neurosurrogate.evaluate.reference import load_heldout

    d = load_heldout(REF)
    table = [dict(s) for s in d.synapses]
    assert load_heldout(REF, SimpleNamespace(card={"synapses": table})).n_trials == 20
    table[0]["kind"] = "inh"
    with pytest.raises(DatasetError, match="synapse 0"):
        load_heldout(REF, SimpleNamespace(card={"synapses": table}))
    with pytest.raises(DatasetError, match="does not exist"):
        load_heldout(REF.with_name("none.h5"))
