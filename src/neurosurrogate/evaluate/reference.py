"""Reference recordings of the original Hay et al. 2011 model as held-out test data.

``../shared/hay2011/reference/synaptic_bombardment.npz`` holds 20 trials of 2 s of Poisson
bombardment of the 200-site synapse table (rate factors 0.5-10, seeds 1000 + k) simulated by
the original model under NEURON: the events, the soma voltage and the voltages at the two
apical recording sites (400 and 700 um) at 1 kHz, and the soma spike times. The trials start
at ``finitialize(-80 mV)`` without a pre-run, so their first ~300 ms are a drift towards rest
(score with ``skip_ms = 300``).

:func:`load_reference_bombardment` turns the file into a :class:`~neurosurrogate.data.dataset.Dataset`
that :func:`~neurosurrogate.evaluate.rollout.evaluate_dataset` scores like our own data. The file
records no soma currents and no Ca current: ``ina``/``ik`` are NaN and ``ica`` is None (a model's
``ica`` output is then not scored).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from neurosurrogate.data.dataset import Dataset, DatasetError
from neurosurrogate.inputs import EventTable

#: arrays a reference bombardment file must hold
REQUIRED = ("ev_time_ms", "ev_syn", "ev_weight_nS", "ev_offsets", "v_soma_1k", "v_apic400_1k", "v_apic700_1k",
            "spike_times_ms", "spike_offsets", "syn_section", "syn_x", "syn_kind", "syn_region", "syn_dist_um",
            "syn_weight_nS", "site_section", "site_dist_um")


def is_reference_file(path: str | Path) -> bool:
    """True if ``path`` is an ``.npz`` with the arrays of a reference bombardment file."""
    path = Path(path)
    if path.suffix.lower() != ".npz" or not path.exists():
        return False
    try:
        with np.load(path) as z:
            return all(k in z.files for k in REQUIRED)
    except (OSError, ValueError):
        return False


def load_reference_bombardment(path: str | Path, duration_ms: float = 2000.0) -> Dataset:
    """The reference trials as a dataset (soma and dendritic voltage at 1 kHz, spikes, events).

    Args:
        path: ``synaptic_bombardment.npz`` of the Hay 2011 reference data.
        duration_ms: ms of each trial to keep (the file has 2000 ms; samples at t = 0 .. T-1).

    Raises:
        DatasetError: the file is missing, lacks arrays, or is shorter than ``duration_ms``.
    """
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"reference file {path} does not exist")
    try:
        z = dict(np.load(path))
    except (OSError, ValueError) as exc:
        raise DatasetError(f"reference file {path}: not a readable .npz ({exc})") from None
    missing = [k for k in REQUIRED if k not in z]
    if missing:
        raise DatasetError(f"reference file {path}: not a reference bombardment file (lacks {missing})")
    T = int(duration_ms)
    if T < 1 or z["v_soma_1k"].shape[1] < T:
        raise DatasetError(f"reference file {path}: trials have {z['v_soma_1k'].shape[1]} samples, need {T}")
    n = z["v_soma_1k"].shape[0]
    eo, so = z["ev_offsets"], z["spike_offsets"]
    events, spikes = [], []
    for k in range(n):
        sl = slice(int(eo[k]), int(eo[k + 1]))
        t = z["ev_time_ms"][sl]
        keep = t < T
        events.append(EventTable(t[keep], z["ev_syn"][sl][keep].astype(np.int64), z["ev_weight_nS"][sl][keep]))
        st = z["spike_times_ms"][int(so[k]) : int(so[k + 1])]
        spikes.append(st[st < T])
    v = z["v_soma_1k"][:, :T].astype(np.float32)
    v_dend = np.stack([z["v_apic400_1k"][:, :T], z["v_apic700_1k"][:, :T]], axis=1).astype(np.float32)
    synapses = [{"index": j, "section": str(z["syn_section"][j]), "x": float(z["syn_x"][j]),
                 "kind": str(z["syn_kind"][j]), "region": str(z["syn_region"][j]),
                 "dist_um": float(z["syn_dist_um"][j]), "weight_nS": float(z["syn_weight_nS"][j])}
                for j in range(len(z["syn_kind"]))]
    sites = [{"section": str(s), "dist_um": float(d)} for s, d in zip(z["site_section"], z["site_dist_um"])]
    nan = np.full(v.shape, np.nan, dtype=np.float32)
    config = {"source": "Hay et al. 2011 reference bombardment (original model under NEURON)", "file": str(path),
              "protocol": "reference-bombardment", "duration_ms": float(T), "n_trials": n,
              "init": "finitialize(-80 mV), no pre-run"}
    return Dataset(events, v, nan, nan.copy(), spikes, config, {"name": "hay-l5pc"}, synapses,
                   {"reference": str(path)}, path, v_dend, None, {"sites": sites})


def load_heldout(path: str | Path, model=None) -> Dataset:
    """A held-out set by path: the Hay 2011 reference recordings (checked against ``model``'s synapse
    table when given) or a dataset file written by ``neurosurrogate simulate``.

    Raises:
        DatasetError: unreadable file, or a synapse table that differs from the model's.
    """
    from neurosurrogate.data.dataset import load_dataset

    if is_reference_file(path):
        d = load_reference_bombardment(path)
        if model is not None:
            check_synapse_table(model.card.get("synapses"), d)
        return d
    return load_dataset(path)


UNSETTLED_SKIP_MS = 300.0  # hay-l5pc from finitialize(-80 mV) without a pre-run drifts for ~300 ms


def default_skip_ms(data: Dataset) -> float:
    """The unscored start of ``data``'s trials when the user gives none, ms: 300 for trials that
    start from ``finitialize`` without a pre-run (the Hay 2011 reference recordings, ``simulate
    --no-prerun`` data), which the surrogate (always from its rest) cannot match while the cell
    settles; 0 for trials that start from the steady state."""
    no_prerun = data.cell.get("prerun") is False or "no pre-run" in str(data.config.get("init", ""))
    return UNSETTLED_SKIP_MS if no_prerun else 0.0


def check_synapse_table(model_synapses: list[dict] | None, data: Dataset) -> None:
    """Raise DatasetError if the model's placed synapse table (model card) and the data's differ
    in section, position or kind (then event indices would mean other sites)."""
    if not model_synapses:
        return
    if len(model_synapses) != len(data.synapses):
        raise DatasetError(f"{data.path}: {len(data.synapses)} synapses, the model has {len(model_synapses)}")
    for j, (a, b) in enumerate(zip(model_synapses, data.synapses)):
        same = a.get("section") == b.get("section") and a.get("kind") == b.get("kind") and (
            "x" not in a or "x" not in b or abs(float(a["x"]) - float(b["x"])) < 1e-9)
        if not same:
            raise DatasetError(f"{data.path}: synapse {j} is {b.get('kind')} at {b.get('section')}({b.get('x')}), "
                               f"the model's is {a.get('kind')} at {a.get('section')}({a.get('x')})")
