"""A trained surrogate: network + input encoding + output normalisation + model card.

Input encoding (per 1 ms bin ``k`` and synapse ``j``, see
:func:`neurosurrogate.inputs.bin_events`)::

    x[k, 2j]   = drive[k, j]  / w_j      (summed onset weights in the bin / default weight)
    x[k, 2j+1] = offset[k, j] / w_j      (weight-weighted onset fraction within the bin)

so one default-weight event at ``t = k + f`` gives ``(1, f)``: sub-millisecond
onset times survive binning. Outputs (see :mod:`neurosurrogate.surrogate.base`)
are de-normalised as ``v_mV = v_rest + v_scale * y0``; a spike is called in
each run of consecutive bins with ``sigmoid(y1) > spike_threshold`` at the most probable
bin ``k``, at time ``k + sigmoid(y2[k])`` ms.

Extra outputs (channels ``3, 4, ...``) are named :class:`ExtraOutput` records,
each de-normalised as ``value = offset + scale * y[3 + i]`` (and normalised for
training as ``(value - offset) / scale``). Names with a meaning:

* ``ina``, ``ik``: soma Na+ / K+ current densities, mA/cm2 (offset 0, scale = SD
  in the training data); :attr:`Trace.ina` / :attr:`Trace.ik` of a prediction;
* ``v_dend{k}_mV`` (k = 0, 1, ...): dendritic voltage at recording site k, mV
  (offset = the site's resting potential, scale = ``v_scale_mV`` like the soma);
  row k of ``v_dend_mV`` (n_sites, T) of the prediction;
* ``ica``: Ca2+ current density at the hot-zone compartment, mA/cm2 (offset =
  its resting value, scale = its SD); ``ica`` (T,) of the prediction.

Models with ``v_dend*`` or ``ica`` outputs predict a
:class:`~neurosurrogate.biophys.hay.HayTrace` (the type of the NEURON ground
truth of ``hay-l5pc``); any other extra name goes to ``trace.meta['extras']``.

Backward compatibility: files written before extra outputs had names store
``current_scales = [s_ina, s_ik]``; they load as the extras ``ina`` and ``ik``
(offset 0) and predict exactly what they predicted before.

Files: a folder with ``model.safetensors`` (weights; cannot execute code on
load) and ``model.json`` (architecture, encoding, model card).
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from neurosurrogate.data.trace import Trace
from neurosurrogate.inputs import EventTable, bin_events
from neurosurrogate.surrogate.base import Surrogate, build

SHIPPED_DIR = Path(__file__).resolve().parent.parent / "models"
#: largest input-feature array of one prediction batch, bytes (``SurrogateModel.predict``)
FEATURE_BATCH_BYTES = 512 * 2**20
FORMAT = "neurosurrogate-model/1"


class ModelError(ValueError):
    """A model name or file is unknown or malformed."""


#: names an extra output may not take (they are the fixed fields of a prediction)
RESERVED_NAMES = ("t_ms", "v_mV", "spike_times_ms", "spike_prob", "spike_offset", "v_dend_mV", "meta", "extras")
_DEND = re.compile(r"^v_dend(\d+)_mV$")


def dend_row(name: str) -> int | None:
    """Row k of ``v_dend_mV`` for an extra output named ``v_dend{k}_mV``, else None."""
    m = _DEND.match(name)
    return int(m.group(1)) if m else None


@dataclass(frozen=True)
class ExtraOutput:
    """One named extra output channel: ``value = offset + scale * y``.

    Attributes:
        name: e.g. ``ina``, ``ik``, ``ica`` (mA/cm2) or ``v_dend0_mV`` (mV); see the module doc.
        scale: physical units per network unit (finite, > 0), e.g. mV or mA/cm2.
        offset: physical value at network output 0 (finite), same unit.
        unit: the physical unit, for humans and file metadata (``mV``, ``mA/cm2``).
    """

    name: str
    scale: float
    offset: float = 0.0
    unit: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", self.name):
            raise ValueError(f"extra output name must be an identifier, got {self.name!r}")
        if self.name in RESERVED_NAMES:
            raise ValueError(f"extra output name {self.name!r} is reserved ({', '.join(RESERVED_NAMES)})")
        for field_name in ("scale", "offset"):
            val = getattr(self, field_name)
            if isinstance(val, bool) or not isinstance(val, (int, float)) or not math.isfinite(val):
                raise ValueError(f"extra output {self.name!r}: {field_name} must be a finite number, got {val!r}")
            object.__setattr__(self, field_name, float(val))
        if self.scale <= 0:
            raise ValueError(f"extra output {self.name!r}: scale must be > 0, got {self.scale}")


@dataclass(frozen=True)
class Encoding:
    """Input encoding and output normalisation (stored with the model).

    Attributes:
        synapse_weights_nS: default weight of each synapse, nS (input scale).
        v_rest_mV: resting potential of the cell, mV (output offset).
        v_scale_mV: voltage scale, mV.
        current_scales: legacy form of the extras ``ina`` and ``ik``: ``(s_ina, s_ik)`` in
            mA/cm2. Given (non-empty), it becomes ``extras = (ina, ik)`` with offset 0 and is
            then stored empty; it cannot be combined with ``extras``.
        cell_name: the cell the model imitates.
        spike_threshold: spike probability above which a spike is called; calibrated on
            validation data after training (the spike loss up-weights positives, which
            shifts the calibrated 50 % point above 0.5).
        extras: the extra output channels 3, 4, ... in order (:class:`ExtraOutput`; dicts
            with the same keys are accepted). Names are unique; ``v_dend{k}_mV`` rows must
            be 0..n-1.
        v_clip_mV: if set, the soma-voltage output learns ``min(v, v_clip_mV)``: the spike
            waveform is left to the spike outputs (at 1 kHz a spike's peak samples, which no
            model times to the sample, would otherwise dominate the voltage loss).
        spike_shape_mV: with ``v_clip_mV``, the soma voltage sampled in the 1 ms bins from a
            spike's onset on, mV: row i for spikes whose sub-ms offset lies in [i/n, (i+1)/n)
            (n rows), column j for the sample j bins after the spike's bin (the training data's
            mean, :func:`spike_shape`). Decoding keeps the model's clipped voltage as ``v_mV``
            and adds ``v_spiking_mV``: the same lifted to the spike shape at every predicted
            spike (:func:`paste_spikes`), a trace to look at. Scores use ``v_mV``: a spike put
            back 3 ms off would count as a 70 mV error of the voltage between spikes.
    """

    synapse_weights_nS: tuple[float, ...]
    v_rest_mV: float
    v_scale_mV: float = 20.0
    current_scales: tuple[float, ...] = ()
    cell_name: str = "point-hh"
    spike_threshold: float = 0.5
    extras: tuple[ExtraOutput, ...] = ()
    v_clip_mV: float | None = None
    spike_shape_mV: tuple[tuple[float, ...], ...] = ()

    def __post_init__(self) -> None:
        shape = tuple(tuple(float(v) for v in row) for row in self.spike_shape_mV)
        if shape and (len({len(r) for r in shape}) != 1 or not len(shape[0])
                      or not np.isfinite(np.asarray(shape)).all()):
            raise ValueError("spike_shape_mV must be a non-empty rectangular table of finite voltages (mV), "
                             f"got rows of lengths {[len(r) for r in shape]}")
        object.__setattr__(self, "spike_shape_mV", shape)
        if self.v_clip_mV is not None:
            if (isinstance(self.v_clip_mV, bool) or not isinstance(self.v_clip_mV, (int, float))
                    or not math.isfinite(self.v_clip_mV)):
                raise ValueError(f"v_clip_mV must be a finite voltage (mV) or None, got {self.v_clip_mV!r}")
            object.__setattr__(self, "v_clip_mV", float(self.v_clip_mV))
        object.__setattr__(self, "synapse_weights_nS", tuple(float(w) for w in self.synapse_weights_nS))
        if not self.synapse_weights_nS or min(self.synapse_weights_nS) <= 0:
            raise ValueError(f"synapse_weights_nS must be positive weights (nS), got {self.synapse_weights_nS}")
        if not self.v_scale_mV > 0:
            raise ValueError(f"v_scale_mV must be > 0, got {self.v_scale_mV}")
        extras = tuple(ExtraOutput(**e) if isinstance(e, dict) else e for e in self.extras)
        for e in extras:
            if not isinstance(e, ExtraOutput):
                raise ValueError(f"extras must hold ExtraOutput records or dicts, got {type(e).__name__}")
        cs = tuple(float(c) for c in self.current_scales)
        if cs:
            if extras:
                raise ValueError("give either current_scales (legacy ina/ik scales) or extras, not both")
            if len(cs) != 2:
                raise ValueError(f"current_scales must be (s_ina, s_ik), got {cs}")
            extras = (ExtraOutput("ina", cs[0], 0.0, "mA/cm2"), ExtraOutput("ik", cs[1], 0.0, "mA/cm2"))
        names = [e.name for e in extras]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"extras: duplicate output name(s) {dup}")
        rows = [dend_row(n) for n in names if dend_row(n) is not None]
        if rows != list(range(len(rows))):
            raise ValueError(f"extras: dendritic outputs must be v_dend0_mV, v_dend1_mV, ... in order, got rows {rows}")
        object.__setattr__(self, "extras", extras)
        object.__setattr__(self, "current_scales", ())

    @classmethod
    def from_dict(cls, d: dict) -> "Encoding":
        """An encoding from its ``model.json`` form (lists for tuples, dicts for extras; the legacy
        ``current_scales`` key is understood)."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"encoding: unknown key(s) {sorted(unknown)}; known: {sorted(known)}")
        kw = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}
        return cls(**kw)

    @property
    def n_synapses(self) -> int:
        return len(self.synapse_weights_nS)

    @property
    def n_in(self) -> int:
        return 2 * self.n_synapses

    @property
    def n_out(self) -> int:
        return 3 + len(self.extras)

    @property
    def extra_names(self) -> tuple[str, ...]:
        """Names of the extra outputs, channel 3 onwards."""
        return tuple(e.name for e in self.extras)

    @property
    def n_dend_sites(self) -> int:
        """Number of dendritic voltage outputs (rows of the predicted ``v_dend_mV``)."""
        return sum(dend_row(e.name) is not None for e in self.extras)

    def features(self, events: EventTable, duration_ms: float) -> np.ndarray:
        """(T, n_in) float32 input features of one event table."""
        drive, offset = bin_events(events, self.n_synapses, duration_ms)
        w = np.asarray(self.synapse_weights_nS, dtype=np.float32)
        x = np.empty((drive.shape[0], self.n_in), dtype=np.float32)
        x[:, 0::2] = drive / w
        x[:, 1::2] = offset / w
        return x

    def events(self, x: np.ndarray) -> EventTable:
        """The inverse of :meth:`features`: (T, n_in) features -> one event per non-zero (1 ms bin,
        synapse), at ``k + offset/drive`` with weight ``drive x default weight`` (nS). Exact where a
        bin holds one event per synapse; several merge into one event with their summed weight at
        their weight-weighted mean onset (what the surrogate saw of them)."""
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.n_in:
            raise ValueError(f"features must have shape (T, {self.n_in}), got {x.shape}")
        drive, off = x[:, 0::2], x[:, 1::2]
        k, s = np.nonzero(drive > 0)
        t = k + np.clip(off[k, s] / drive[k, s], 0.0, 1.0 - 1e-9)
        w = drive[k, s] * np.asarray(self.synapse_weights_nS, dtype=np.float64)[s]
        o = np.argsort(t, kind="stable")
        return EventTable(t[o], s[o].astype(np.int64), w[o])

    def targets(self, v_mV: np.ndarray, spike_times_ms: Sequence[np.ndarray], ina=None, ik=None, *,
                v_dend_mV=None, ica=None, values: dict | None = None) -> np.ndarray:
        """(B, T, n_out) float32 training targets: [v_norm, spike flag, offset fraction, extras...].

        Args:
            v_mV: (B, T) soma voltage, mV.
            spike_times_ms: B arrays of spike times, ms.
            ina, ik: (B, T) soma current densities, mA/cm2 (needed for the extras ``ina``, ``ik``).
            v_dend_mV: (B, n_sites, T) dendritic voltages, mV (for ``v_dend{k}_mV``).
            ica: (B, T) Ca2+ current density, mA/cm2 (for ``ica``).
            values: (B, T) arrays of any other extra output, by name.

        Raises:
            ValueError: an extra output has no data, or the data have the wrong shape.
        """
        v_mV = np.atleast_2d(v_mV)
        B, T = v_mV.shape
        y = np.zeros((B, T, self.n_out), dtype=np.float32)
        v = v_mV if self.v_clip_mV is None else np.minimum(v_mV, self.v_clip_mV)
        y[..., 0] = (v - self.v_rest_mV) / self.v_scale_mV
        for b, st in enumerate(spike_times_ms):
            st = np.asarray(st, dtype=float)
            k = np.floor(st).astype(int)
            ok = (k >= 0) & (k < T)
            y[b, k[ok], 1] = 1.0
            y[b, k[ok], 2] = st[ok] - k[ok]
        sources = dict(values or {})
        sources.update({k: v for k, v in (("ina", ina), ("ik", ik), ("ica", ica)) if v is not None})
        for i, e in enumerate(self.extras):
            row = dend_row(e.name)
            if row is not None:
                if v_dend_mV is None:
                    raise ValueError(f"extra output {e.name!r} needs v_dend_mV (B, n_sites, T); none given")
                vd = np.asarray(v_dend_mV)
                vd = vd[None] if vd.ndim == 2 and B == 1 else vd
                if vd.ndim != 3 or vd.shape[0] != B or vd.shape[2] != T or vd.shape[1] <= row:
                    raise ValueError(f"v_dend_mV must have shape ({B}, >{row}, {T}) for {e.name!r}, got {vd.shape}")
                val = vd[:, row]
            elif e.name in sources:
                val = np.atleast_2d(sources[e.name])
                if val.shape != (B, T):
                    raise ValueError(f"{e.name} must have shape ({B}, {T}), got {val.shape}")
            else:
                raise ValueError(f"extra output {e.name!r}: no data given (pass it as an argument or in values)")
            y[..., 3 + i] = (val - e.offset) / e.scale if e.offset else val / e.scale
        return y


def decode_spikes(p_spike: np.ndarray, offset_frac: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Spike times (ms) from per-bin spike probabilities and offsets, (T,) each.

    Each run of consecutive bins above ``threshold`` is one spike at its most
    probable bin ``k``, at ``k + offset_frac[k]``.
    """
    above = p_spike > threshold
    if not above.any():
        return np.zeros(0)
    idx = np.flatnonzero(above)
    breaks = np.flatnonzero(np.diff(idx) > 1) + 1
    times = []
    for run in np.split(idx, breaks):
        k = run[np.argmax(p_spike[run])]
        times.append(k + float(np.clip(offset_frac[k], 0.0, 1.0 - 1e-6)))
    return np.asarray(times)


def spike_confidence(p_spike: np.ndarray, spike_times_ms: np.ndarray) -> np.ndarray:
    """The spike probability of the bin each decoded spike came from, (k,).

    :func:`decode_spikes` puts a spike at ``k + offset`` for the most probable bin ``k`` of
    its run, so this is the run's peak probability: how sure the model was of that spike.
    On held-out data it is calibrated as a ranking, not as a probability (``evaluate``
    reports the fraction of spikes matched within ±10 ms per confidence bin).

    Args:
        p_spike: (T,) per-bin (1 ms) spike probabilities.
        spike_times_ms: (k,) spike times, ms, decoded from ``p_spike`` (0 <= t < T).

    Raises:
        ValueError: a spike time lies outside ``[0, T)``.
    """
    p = np.asarray(p_spike, dtype=float).reshape(-1)
    t = np.asarray(spike_times_ms, dtype=float).reshape(-1)
    if t.size and (not np.all(np.isfinite(t)) or t.min() < 0 or t.max() >= p.size):
        raise ValueError(f"spike_times_ms must lie in [0, {p.size}) ms, the span of p_spike; "
                         f"got {t.min():g} to {t.max():g}")
    return p[np.floor(t).astype(int)]


def spike_shape(v_mV: Sequence[np.ndarray], spike_times_ms: Sequence[np.ndarray], n_offsets: int = 10,
                n_bins: int = 4) -> np.ndarray:
    """Mean soma voltage sampled around spikes, by sub-ms spike offset: (n_offsets, n_bins), mV.

    Entry (i, j) averages ``v[k + j]`` over spikes at ``k + o`` (``k`` whole ms) with
    ``i / n_offsets <= o < (i + 1) / n_offsets``: at 1 kHz the samples of a spike depend on
    where in its bin it starts. Rows without spikes take the mean over all spikes.

    Args:
        v_mV: (T,) soma voltages sampled every 1 ms, one per trial.
        spike_times_ms: the trials' spike times, ms.

    Raises:
        ValueError: no trial has a spike with ``n_bins`` samples after it.
    """
    sums = np.zeros((n_offsets, n_bins))
    counts = np.zeros(n_offsets)
    for v, st in zip(v_mV, spike_times_ms):
        v, st = np.asarray(v, dtype=float), np.asarray(st, dtype=float)
        k = np.floor(st).astype(int)
        ok = (k >= 0) & (k + n_bins <= v.size)
        k, row = k[ok], np.minimum(((st[ok] - k[ok]) * n_offsets).astype(int), n_offsets - 1)
        np.add.at(sums, row, v[k[:, None] + np.arange(n_bins)])
        np.add.at(counts, row, 1)
    if not counts.sum():
        raise ValueError("spike_shape: no spike with enough samples after it in the data")
    mean_all = sums.sum(0) / counts.sum()
    return np.where(counts[:, None] > 0, sums / np.maximum(counts, 1)[:, None], mean_all)


def paste_spikes(v_mV: np.ndarray, spike_times_ms: np.ndarray, shape_mV, v_clip_mV: float) -> np.ndarray:
    """A copy of the clipped voltage ``v_mV`` (T,) raised to the spike shape (see
    :attr:`Encoding.spike_shape_mV`) in the bins of every spike; samples where the shape does not
    exceed ``v_clip_mV`` are left alone."""
    v = np.array(v_mV, dtype=float)
    shape = np.asarray(shape_mV, dtype=float)
    st = np.asarray(spike_times_ms, dtype=float)
    if not st.size or not shape.size:
        return v
    n_off, n_bins = shape.shape
    k = np.floor(st).astype(int)
    row = np.clip(((st - k) * n_off).astype(int), 0, n_off - 1)
    idx = k[:, None] + np.arange(n_bins)
    val = shape[row]
    ok = (idx >= 0) & (idx < v.size) & (val > v_clip_mV)
    np.maximum.at(v, idx[ok], val[ok])
    return v


class SurrogateModel:
    """A network with its encoding and model card; predicts traces from event tables."""

    def __init__(self, net: Surrogate, encoding: Encoding, card: dict | None = None) -> None:
        if net.n_in != encoding.n_in or net.n_out != encoding.n_out:
            raise ModelError(
                f"network ({net.n_in} in, {net.n_out} out) does not fit the encoding "
                f"({encoding.n_in} in, {encoding.n_out} out)"
            )
        self.net = net
        self.encoding = encoding
        self.card = dict(card or {})

    @classmethod
    def create(cls, arch: str, encoding: Encoding, **arch_params) -> "SurrogateModel":
        """A new model of architecture ``arch`` for ``encoding``. An architecture that works in mV
        (``uses_voltage_encoding``, e.g. ``gru_soma``) is handed the encoding's voltage scale."""
        from neurosurrogate.surrogate import architectures  # noqa: F401  (fills the registry)
        from neurosurrogate.surrogate.base import REGISTRY

        if getattr(REGISTRY.get(arch), "uses_voltage_encoding", False):
            arch_params = {"v_rest_mV": encoding.v_rest_mV, "v_scale_mV": encoding.v_scale_mV,
                           "v_clip_mV": encoding.v_clip_mV, **arch_params}
        return cls(build(arch, encoding.n_in, encoding.n_out, **arch_params), encoding)

    # -- prediction ----------------------------------------------------------------------
    def decode(self, y: np.ndarray) -> dict[str, np.ndarray]:
        """Network outputs (T, n_out) -> physical units."""
        e = self.encoding
        out = {"v_mV": e.v_rest_mV + e.v_scale_mV * y[:, 0].astype(np.float64)}
        p = 1.0 / (1.0 + np.exp(-y[:, 1].astype(np.float64)))
        off = 1.0 / (1.0 + np.exp(-y[:, 2].astype(np.float64)))
        out["spike_prob"] = p
        out["spike_offset"] = off
        out["spike_times_ms"] = decode_spikes(p, off, e.spike_threshold)
        out["spike_confidence"] = spike_confidence(p, out["spike_times_ms"])
        if e.v_clip_mV is not None and e.spike_shape_mV:
            out["v_spiking_mV"] = paste_spikes(out["v_mV"], out["spike_times_ms"], e.spike_shape_mV, e.v_clip_mV)
        for i, x in enumerate(e.extras):
            val = x.scale * y[:, 3 + i].astype(np.float64)
            out[x.name] = val + x.offset if x.offset else val
        if e.n_dend_sites:
            out["v_dend_mV"] = np.stack([out[f"v_dend{k}_mV"] for k in range(e.n_dend_sites)])
        return out

    def _trace(self, d: dict[str, np.ndarray], duration_ms: float) -> Trace:
        """A :class:`Trace` (or ``HayTrace`` for dendritic / Ca outputs) from decoded outputs."""
        t = np.arange(int(duration_ms), dtype=float)
        meta = {"spike_prob": d["spike_prob"], "spike_offset": d["spike_offset"],
                "spike_confidence": d["spike_confidence"], "spike_threshold": self.encoding.spike_threshold}
        if "v_spiking_mV" in d:
            meta["v_spiking_mV"] = d["v_spiking_mV"]
        known = {"ina", "ik", "ica"} | {f"v_dend{k}_mV" for k in range(self.encoding.n_dend_sites)}
        other = {n: d[n] for n in self.encoding.extra_names if n not in known}
        if other:
            meta["extras"] = other
        if "v_dend_mV" in d or "ica" in d:
            from neurosurrogate.biophys.hay import HayTrace

            for key in ("sites", "ica_site"):
                if key in self.card:
                    meta[key] = self.card[key]
            return HayTrace(t, d["v_mV"], d["spike_times_ms"], d.get("ina"), d.get("ik"), meta=meta,
                            v_dend_mV=d.get("v_dend_mV"), ica=d.get("ica"))
        return Trace(t, d["v_mV"], d["spike_times_ms"], d.get("ina"), d.get("ik"), meta=meta)

    @torch.no_grad()
    def predict(
        self, events: EventTable | Sequence[EventTable], duration_ms: float, device: str | None = None,
        batch_size: int = 4096,
    ) -> Trace | list[Trace]:
        """Free-running prediction from the model's resting state.

        Args:
            events: one event table or a list (simulated as a batch of cells).
            duration_ms: simulated time, ms (whole number >= 1).
            device: torch device (default: CUDA if available, else CPU).
            batch_size: cells per forward pass, at most; fewer when their input features would
                exceed ``FEATURE_BATCH_BYTES`` (at least one).

        Returns:
            A :class:`Trace` (or a list): ``t_ms`` (T,) ms, ``v_mV`` (T,) mV at 1 kHz,
            ``spike_times_ms`` (k,) ms, ``ina``/``ik`` (T,) mA/cm2 if the model predicts them;
            ``meta['spike_prob']``, ``meta['spike_offset']`` (T,) per-bin spike probability and
            sub-ms offset fraction, ``meta['spike_confidence']`` (k,) each spike's peak bin
            probability (:func:`spike_confidence`), ``meta['spike_threshold']`` the decoding
            threshold. Models with dendritic or Ca outputs give a
            :class:`~neurosurrogate.biophys.hay.HayTrace` with ``v_dend_mV`` (n_sites, T) mV
            and/or ``ica`` (T,) mA/cm2 (and ``meta['sites']``, ``meta['ica_site']`` from the
            model card when known); other extra outputs are in ``meta['extras']`` by name.

        Raises:
            EventTableError: an event's synapse index is not below the model's synapse count.
            ValueError: ``duration_ms`` is not a whole number of ms >= 1.
        """
        single = isinstance(events, EventTable)
        tables = [events] if single else list(events)
        if not np.isfinite(duration_ms) or duration_ms < 1 or duration_ms != int(duration_ms):
            raise ValueError(f"duration_ms must be a whole number of ms >= 1, got {duration_ms}")
        for ev in tables:
            ev.check_synapses(self.encoding.n_synapses)
        dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        net = self.net.to(dev).eval()
        traces = []
        # dense features of many synapses are large (hay-l5pc: 3.2 MB per 2 s trial): cap a batch at ~512 MB
        per_trial = int(duration_ms) * self.encoding.n_in * 4
        batch_size = max(1, min(int(batch_size), FEATURE_BATCH_BYTES // per_trial))
        for s in range(0, len(tables), batch_size):
            chunk = tables[s : s + batch_size]
            x = torch.from_numpy(np.stack([self.encoding.features(ev, duration_ms) for ev in chunk])).to(dev)
            y, _ = net(x)
            y = y.float().cpu().numpy()
            for b in range(len(chunk)):
                traces.append(self._trace(self.decode(y[b]), duration_ms))
        return traces[0] if single else traces

    # -- files ---------------------------------------------------------------------------
    def save(self, folder: str | Path) -> Path:
        """Write ``model.safetensors`` and ``model.json`` into ``folder`` (atomically each)."""
        from safetensors.torch import save_file

        from neurosurrogate.data.io import atomic_path

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        tensors = {k: v.detach().cpu().contiguous() for k, v in self.net.state_dict().items()}
        with atomic_path(folder / "model.safetensors") as tmp:
            save_file(tensors, str(tmp))
        meta = {"format": FORMAT, "arch": self.net.arch_name, "arch_params": self.net.config,
                "encoding": asdict(self.encoding), "card": self.card}
        with atomic_path(folder / "model.json") as tmp:
            tmp.write_text(json.dumps(meta, indent=1, default=float))
        return folder

    @classmethod
    def load(cls, name_or_path: str | Path) -> "SurrogateModel":
        """Load a shipped model by name (e.g. ``point-hh``) or a model folder path."""
        from safetensors.torch import load_file

        folder = resolve_model_path(name_or_path)
        try:
            meta = json.loads((folder / "model.json").read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ModelError(f"model {folder}: unreadable model.json ({exc})") from None
        if meta.get("format") != FORMAT:
            raise ModelError(f"model {folder}: not a {FORMAT} model")
        try:
            enc = Encoding.from_dict(meta["encoding"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"model {folder}: bad encoding in model.json ({exc})") from None
        net = build(meta["arch"], enc.n_in, enc.n_out, **meta["arch_params"])
        try:
            net.load_state_dict(load_file(str(folder / "model.safetensors")))
        except (OSError, RuntimeError) as exc:
            raise ModelError(f"model {folder}: weights do not load ({exc})") from None
        net.eval()
        model = cls(net, enc, meta.get("card"))
        model.warm_rest()
        return model

    def warm_rest(self) -> None:
        """Start from the resting state the card asks for: with ``card['rest_warmup_ms']`` > 0 (a
        ``gru`` model), the state after that long without input from zeros, for every later
        ``init_state`` in eval mode (predictions, networks); zeros otherwise."""
        ms = int(self.card.get("rest_warmup_ms", 0) or 0)
        if ms > 0:
            if not hasattr(self.net, "set_rest_from_silence"):
                raise ModelError(f"rest_warmup_ms: architecture {self.net.arch_name!r} has no warm rest state")
            self.net.set_rest_from_silence(ms)


def shipped_models() -> list[str]:
    """Names of the models shipped inside the package."""
    if not SHIPPED_DIR.is_dir():
        return []
    return sorted(p.name for p in SHIPPED_DIR.iterdir() if (p / "model.json").exists())


def resolve_model_path(name_or_path: str | Path) -> Path:
    p = Path(name_or_path)
    if (p / "model.json").exists():
        return p
    if str(name_or_path) in shipped_models():
        return SHIPPED_DIR / str(name_or_path)
    raise ModelError(
        f"model {name_or_path!r} is neither a shipped model ({shipped_models() or 'none shipped'}) "
        "nor a folder with model.json"
    )
