"""Datasets of simulated trials in HDF5, with provenance.

Layout of a dataset file (``FORMAT = 'neurosurrogate-dataset/1'``)::

    /                      attrs: format, config (JSON), cell (JSON),
                           synapses (JSON), provenance (JSON), n_trials,
                           duration_ms, complete
    /trials/<i:06d>/       one group per trial, attrs: trial index
        events/t_ms        (n_events,) float64, ms
        events/synapse     (n_events,) int64
        events/weight_nS   (n_events,) float64, nS
        v_mV               (T,) float32, 1 kHz soma voltage, AP peaks kept
        ina, ik            (T,) float32, mA/cm2, 1 ms bin means
        spike_times_ms     (k,) float64
        v_dend_mV          (n_sites, T) float32, mV   } only for cells that record
        ica                (T,) float32, mA/cm2       } them (hay-l5pc)
        states             (n_states, T) float32      } hay-l5pc with record_states

Cells with extra records (``hay-l5pc``) add root attributes (JSON) given to
:func:`assemble` as ``extra_attrs``: ``sites`` (the dendritic recording sites,
row k of ``v_dend_mV``), ``ica_site`` (the compartment of ``ica``: section, x,
path distance in um, Ca channel densities), ``v_rest_mV``, ``units``,
``init`` and, with ``states``, ``state_names``; their ``synapses`` attribute
is the placed synapse table (section, x, x_node, dist_um, xyz_um, kind,
region, tau_ms, e_rev_mV, weight_nS).

While a dataset is generated, every finished trial is written atomically to
``<out>.parts/trial_<i>.npz``; the HDF5 file is assembled from the parts at
the end, written to a temporary name and renamed. An interrupted run leaves
only whole trials behind, and the next run with the same configuration
skips them.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from neurosurrogate.data.io import atomic_path
from neurosurrogate.inputs import EventTable

FORMAT = "neurosurrogate-dataset/1"
TRACE_KEYS = ("v_mV", "ina", "ik")
#: per-trial arrays stored when the parts hold them (every part must then hold them)
OPTIONAL_TRACE_KEYS = ("v_dend_mV", "ica", "states")
#: root attributes read into :attr:`Dataset.extra` when present (JSON)
EXTRA_ATTRS = ("sites", "ica_site", "v_rest_mV", "units", "init", "state_names")


class DatasetError(ValueError):
    """A dataset file is missing, malformed, or does not match the requested configuration."""


def parts_dir(out: Path) -> Path:
    return out.with_name(out.name + ".parts")


def write_part(out: Path, index: int, events: EventTable, trace_arrays: dict[str, np.ndarray]) -> Path:
    """Atomically write one finished trial to the parts folder."""
    d = parts_dir(out)
    d.mkdir(parents=True, exist_ok=True)
    path = d / f"trial_{index:06d}.npz"
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **{f"events_{k}": v for k, v in events.to_dict().items()}, **trace_arrays)
    return path


def finished_parts(out: Path) -> dict[int, Path]:
    """Trial index -> part file for every complete part (temporary files are ignored)."""
    d = parts_dir(out)
    if not d.is_dir():
        return {}
    found = {}
    for p in d.glob("trial_*.npz"):
        try:
            found[int(p.stem.split("_")[1])] = p
        except ValueError:
            continue
    return found


def config_hash(config: dict) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]


def write_meta(out: Path, config: dict) -> None:
    """Record the configuration beside the parts so a resumed run can check it matches."""
    d = parts_dir(out)
    d.mkdir(parents=True, exist_ok=True)
    meta = d / "config.json"
    if meta.exists():
        old = json.loads(meta.read_text())
        if old != config:
            raise DatasetError(
                f"{d} holds trials of a different configuration; delete it or choose another --out "
                f"(differs in {sorted(k for k in set(old) | set(config) if old.get(k) != config.get(k))})"
            )
        return
    with atomic_path(meta) as tmp:
        tmp.write_text(json.dumps(config, sort_keys=True, indent=1))


def assemble(out: Path, config: dict, cell: dict, synapses: list[dict], provenance: dict, n_trials: int,
             extra_attrs: dict | None = None) -> Path:
    """Write the HDF5 file from all parts (atomically) and remove the parts folder.

    ``extra_attrs`` (JSON-serialisable values, keys from :data:`EXTRA_ATTRS`) become
    root attributes. The arrays of :data:`OPTIONAL_TRACE_KEYS` are stored when the
    first part holds them; every part must then hold them.
    """
    import shutil

    import h5py

    parts = finished_parts(out)
    missing = [i for i in range(n_trials) if i not in parts]
    if missing:
        raise DatasetError(f"cannot assemble {out}: trials {missing[:5]}... are not finished")
    extra_attrs = dict(extra_attrs or {})
    unknown = set(extra_attrs) - set(EXTRA_ATTRS)
    if unknown:
        raise ValueError(f"assemble: unknown extra_attrs {sorted(unknown)}; expected some of {list(EXTRA_ATTRS)}")
    with np.load(parts[0]) as z:
        optional = [k for k in OPTIONAL_TRACE_KEYS if k in z.files]
    with atomic_path(out) as tmp:
        with h5py.File(tmp, "w") as f:
            f.attrs["format"] = FORMAT
            f.attrs["config"] = json.dumps(config, sort_keys=True)
            f.attrs["config_hash"] = config_hash(config)
            f.attrs["cell"] = json.dumps(cell, sort_keys=True)
            f.attrs["synapses"] = json.dumps(synapses)
            f.attrs["provenance"] = json.dumps(provenance, sort_keys=True)
            f.attrs["n_trials"] = n_trials
            f.attrs["duration_ms"] = float(config["duration_ms"])
            for k, v in extra_attrs.items():
                f.attrs[k] = json.dumps(v, sort_keys=True)
            g = f.create_group("trials")
            for i in range(n_trials):
                with np.load(parts[i]) as z:
                    tg = g.create_group(f"{i:06d}")
                    tg.attrs["index"] = i
                    eg = tg.create_group("events")
                    for k in ("t_ms", "synapse", "weight_nS"):
                        eg.create_dataset(k, data=z[f"events_{k}"])
                    for k in TRACE_KEYS:
                        tg.create_dataset(k, data=z[k].astype(np.float32), compression="gzip", compression_opts=4)
                    for k in optional:
                        if k not in z.files:
                            raise DatasetError(f"cannot assemble {out}: part {parts[i].name} lacks array {k!r}")
                        tg.create_dataset(k, data=z[k].astype(np.float32), compression="gzip", compression_opts=4)
                    tg.create_dataset("spike_times_ms", data=z["spike_times_ms"])
            f.attrs["complete"] = True
    shutil.rmtree(parts_dir(out), ignore_errors=True)
    return out


@dataclass
class Dataset:
    """A dataset loaded into memory.

    Attributes:
        events: one :class:`EventTable` per trial.
        v_mV: (n_trials, T) float32 soma voltage at 1 kHz, mV.
        ina, ik: (n_trials, T) float32 current densities, mA/cm2.
        spike_times_ms: one (k,) array per trial.
        config, cell, provenance: dicts read from the file's attributes.
        synapses: the cell's synapse table (list of dicts; for ``hay-l5pc`` the placed
            sites: section, x, x_node, dist_um (um), kind, tau_ms, e_rev_mV, weight_nS, ...).
        path: the file it was read from.
        v_dend_mV: (n_trials, n_sites, T) float32 dendritic voltages at 1 kHz, mV (row k
            = ``extra['sites'][k]``), or None for cells without them (point cells).
        ica: (n_trials, T) float32 calcium current density at the compartment
            ``extra['ica_site']``, mA/cm2 (1 ms bin means, negative = inward), or None.
        extra: further metadata (``sites``, ``ica_site``, ``v_rest_mV``, ``units``,
            ``init``, ``state_names``); empty for point cells.
        states: (n_trials, n_states, T) float32 state variables (row k = ``extra['state_names'][k]``;
            hay-l5pc generated with ``record_states``), or None.
    """

    events: list[EventTable]
    v_mV: np.ndarray
    ina: np.ndarray
    ik: np.ndarray
    spike_times_ms: list[np.ndarray]
    config: dict
    cell: dict
    synapses: list[dict]
    provenance: dict
    path: Path | None = None
    v_dend_mV: np.ndarray | None = None
    ica: np.ndarray | None = None
    extra: dict = field(default_factory=dict)
    states: np.ndarray | None = None

    @property
    def sites(self) -> list[dict] | None:
        """Dendritic recording sites (row k of ``v_dend_mV``), or None."""
        return self.extra.get("sites")

    @property
    def ica_site(self) -> dict | None:
        """The compartment of ``ica`` (section, x, dist_um, ...), or None."""
        return self.extra.get("ica_site")

    @property
    def n_trials(self) -> int:
        return len(self.events)

    @property
    def duration_ms(self) -> float:
        return float(self.v_mV.shape[1])

    @property
    def content_hash(self) -> str:
        """SHA-256 (16 hex) over configuration and voltages: identifies the data a model saw."""
        h = hashlib.sha256(json.dumps(self.config, sort_keys=True).encode())
        h.update(np.ascontiguousarray(self.v_mV).tobytes())
        return h.hexdigest()[:16]

    def subset(self, idx) -> "Dataset":
        idx = np.asarray(idx, dtype=int)
        return Dataset(
            [self.events[i] for i in idx], self.v_mV[idx], self.ina[idx], self.ik[idx],
            [self.spike_times_ms[i] for i in idx], self.config, self.cell, self.synapses, self.provenance, self.path,
            None if self.v_dend_mV is None else self.v_dend_mV[idx], None if self.ica is None else self.ica[idx],
            dict(self.extra), None if self.states is None else self.states[idx],
        )


def load_dataset(path: str | Path) -> Dataset:
    """Read a complete dataset file written by ``neurosurrogate simulate``."""
    import h5py

    path = Path(path)
    if not path.exists():
        raise DatasetError(f"dataset {path} does not exist (generate it with 'neurosurrogate simulate')")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise DatasetError(f"dataset {path}: not a readable HDF5 file ({exc})") from None
    with f:
        if f.attrs.get("format") != FORMAT or not f.attrs.get("complete", False):
            raise DatasetError(f"dataset {path}: not a complete {FORMAT} file")
        n = int(f.attrs["n_trials"])
        g = f["trials"]
        events, vs, nas, ks, spikes = [], [], [], [], []
        optional: dict[str, list] = {k: [] for k in OPTIONAL_TRACE_KEYS if n and k in g[f"{0:06d}"]}
        for i in range(n):
            tg = g[f"{i:06d}"]
            e = tg["events"]
            events.append(EventTable(e["t_ms"][()], e["synapse"][()], e["weight_nS"][()]))
            vs.append(tg["v_mV"][()])
            nas.append(tg["ina"][()])
            ks.append(tg["ik"][()])
            spikes.append(tg["spike_times_ms"][()])
            for k, lst in optional.items():
                if k not in tg:
                    raise DatasetError(f"dataset {path}: trial {i} lacks {k!r} (trial 0 has it)")
                lst.append(tg[k][()])
        extra = {k: json.loads(f.attrs[k]) for k in EXTRA_ATTRS if k in f.attrs}
        opt = {k: np.stack(v) for k, v in optional.items()}
        return Dataset(
            events, np.stack(vs), np.stack(nas), np.stack(ks), spikes,
            json.loads(f.attrs["config"]), json.loads(f.attrs["cell"]), json.loads(f.attrs["synapses"]),
            json.loads(f.attrs["provenance"]), path, opt.get("v_dend_mV"), opt.get("ica"), extra,
            opt.get("states"),
        )
