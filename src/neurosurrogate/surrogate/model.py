"""A trained surrogate: network + input encoding + output normalisation + model card.

Input encoding (per 1 ms bin ``k`` and synapse ``j``, see
:func:`neurosurrogate.inputs.bin_events`)::

    x[k, 2j]   = drive[k, j]  / w_j      (summed onset weights in the bin / default weight)
    x[k, 2j+1] = offset[k, j] / w_j      (weight-weighted onset fraction within the bin)

so one default-weight event at ``t = k + f`` gives ``(1, f)``: sub-millisecond
onset times survive binning. Outputs (see :mod:`neurosurrogate.surrogate.base`)
are de-normalised as ``v_mV = v_rest + v_scale * y0``; a spike is called in
each run of consecutive bins with ``sigmoid(y1) > spike_threshold`` at the most probable
bin ``k``, at time ``k + sigmoid(y2[k])`` ms; currents ``= scale * y[3:5]``.

Files: a folder with ``model.safetensors`` (weights; cannot execute code on
load) and ``model.json`` (architecture, encoding, model card).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from neurosurrogate.data.trace import Trace
from neurosurrogate.inputs import EventTable, bin_events
from neurosurrogate.surrogate.base import Surrogate, build

SHIPPED_DIR = Path(__file__).resolve().parent.parent / "models"
FORMAT = "neurosurrogate-model/1"


class ModelError(ValueError):
    """A model name or file is unknown or malformed."""


@dataclass(frozen=True)
class Encoding:
    """Input encoding and output normalisation (stored with the model).

    Attributes:
        synapse_weights_nS: default weight of each synapse, nS (input scale).
        v_rest_mV: resting potential of the cell, mV (output offset).
        v_scale_mV: voltage scale, mV.
        current_scales: scale of (ina, ik) in mA/cm2, or empty if not predicted.
        cell_name: the cell the model imitates.
        spike_threshold: spike probability above which a spike is called; calibrated on
            validation data after training (the spike loss up-weights positives, which
            shifts the calibrated 50 % point above 0.5).
    """

    synapse_weights_nS: tuple[float, ...]
    v_rest_mV: float
    v_scale_mV: float = 20.0
    current_scales: tuple[float, ...] = ()
    cell_name: str = "point-hh"
    spike_threshold: float = 0.5

    @property
    def n_synapses(self) -> int:
        return len(self.synapse_weights_nS)

    @property
    def n_in(self) -> int:
        return 2 * self.n_synapses

    @property
    def n_out(self) -> int:
        return 3 + len(self.current_scales)

    def features(self, events: EventTable, duration_ms: float) -> np.ndarray:
        """(T, n_in) float32 input features of one event table."""
        drive, offset = bin_events(events, self.n_synapses, duration_ms)
        w = np.asarray(self.synapse_weights_nS, dtype=np.float32)
        x = np.empty((drive.shape[0], self.n_in), dtype=np.float32)
        x[:, 0::2] = drive / w
        x[:, 1::2] = offset / w
        return x

    def targets(self, v_mV: np.ndarray, spike_times_ms: Sequence[np.ndarray], ina=None, ik=None) -> np.ndarray:
        """(B, T, n_out) float32 training targets: [v_norm, spike flag, offset fraction, currents...]."""
        v_mV = np.atleast_2d(v_mV)
        B, T = v_mV.shape
        y = np.zeros((B, T, self.n_out), dtype=np.float32)
        y[..., 0] = (v_mV - self.v_rest_mV) / self.v_scale_mV
        for b, st in enumerate(spike_times_ms):
            st = np.asarray(st, dtype=float)
            k = np.floor(st).astype(int)
            ok = (k >= 0) & (k < T)
            y[b, k[ok], 1] = 1.0
            y[b, k[ok], 2] = st[ok] - k[ok]
        if self.current_scales:
            y[..., 3] = np.atleast_2d(ina) / self.current_scales[0]
            y[..., 4] = np.atleast_2d(ik) / self.current_scales[1]
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
        if e.current_scales:
            out["ina"] = e.current_scales[0] * y[:, 3].astype(np.float64)
            out["ik"] = e.current_scales[1] * y[:, 4].astype(np.float64)
        return out

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

        Returns:
            A :class:`Trace` (or a list): ``t_ms``, ``v_mV`` at 1 kHz,
            ``spike_times_ms``, and ``ina``/``ik`` if the model predicts them.
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
        for s in range(0, len(tables), batch_size):
            chunk = tables[s : s + batch_size]
            x = torch.from_numpy(np.stack([self.encoding.features(ev, duration_ms) for ev in chunk])).to(dev)
            y, _ = net(x)
            y = y.float().cpu().numpy()
            for b in range(len(chunk)):
                d = self.decode(y[b])
                traces.append(Trace(np.arange(int(duration_ms), dtype=float), d["v_mV"], d["spike_times_ms"],
                                    d.get("ina"), d.get("ik"),
                                    meta={"spike_prob": d["spike_prob"], "spike_offset": d["spike_offset"]}))
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
        enc = meta["encoding"]
        enc = Encoding(**{k: tuple(v) if isinstance(v, list) else v for k, v in enc.items()})
        net = build(meta["arch"], enc.n_in, enc.n_out, **meta["arch_params"])
        try:
            net.load_state_dict(load_file(str(folder / "model.safetensors")))
        except (OSError, RuntimeError) as exc:
            raise ModelError(f"model {folder}: weights do not load ({exc})") from None
        net.eval()
        return cls(net, enc, meta.get("card"))


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
