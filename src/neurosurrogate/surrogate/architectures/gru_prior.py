"""GRU surrogate with a physics prior on its input: every synapse's PSP, measured in NEURON.

The model of :mod:`.gru`, whose input features are extended by the cell's linear response to them::

    q^c_t = a_c q^c_{t-1} + sum_s M[s, c] d_{t,s}      c = (kind, site, j): 2 x S x J states
    p^{kind,site}_t = sum_j q^{kind,site,j}_t           2 x S prior channels
    x'_t = [x_t, p_t]                                  -> the GRU of :mod:`.gru` (input n_in + 2 S)

d_{t,s} is synapse s's drive in the millisecond (in units of its default weight: the even input
features), a_c = exp(-1 ms / tau_j), and M[s, (kind, site, j)] = c_{s,site,j} / 20 mV for a synapse of
that kind (0 otherwise), where sum_j c_{s,site,j} exp(-lag / tau_j) is the change one default-weight
event at s makes at the recording site (soma, dendritic sites) ``lag`` ms after its bin, measured in
NEURON on the cell at rest and fitted with fixed time constants
(:mod:`neurosurrogate.biophys.psp`, ``scripts/hay_psp_kernels.py``). So p^{kind,site} is the linear
(superposed-PSP) prediction of that site's voltage change from that kind of input, in units of 20 mV;
the GRU still sees the raw input and learns the nonlinear rest (conductance shunting under strong input
shrinks and shortens the PSPs; spikes). The prior is fixed (buffers, not trained). Why: learned from
bombardment alone, the per-synapse efficacies of the plain GRU were off by tens of percent (README, the
detailed cell, item 9); the measured kernels are exact at rest. (The per-time-constant components are
not handed over: with a delayed distal PSP they cancel each other with coefficients of tens of mV.)

The kernels are read from ``prior_file`` (an NPZ of ``scripts/hay_psp_kernels.py``) when the model is
built for training; the model file then holds M and a (buffers) and the config ``prior_taus_ms`` and
``prior_sites`` (shapes), so a saved model loads without the NPZ. Streaming cost over the GRU, with
C = 2 S J states: 2 n_syn C + 3 C + 4 S H flops per cell-step (the mixing is sparse in the drive in practice).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from neurosurrogate.surrogate.architectures.gru import GRUSurrogate
from neurosurrogate.surrogate.base import State, register

PRIOR_V_SCALE_MV = 20.0  # the voltage normalisation of the outputs


def read_prior(path: str | Path, n_synapses: int) -> dict:
    """(M (n_syn, C), taus (J,), n_sites, source info) from a kernels NPZ.

    Raises:
        ValueError: unreadable file, missing arrays, or kernels for another number of synapses.
    """
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as f:
            coef, taus, kind = f["coef_mV"], f["taus_ms"], f["kind"]
            meta = json.loads(str(f["meta"])) if "meta" in f.files else {}
    except (OSError, KeyError, ValueError) as exc:
        raise ValueError(f"prior_file {path}: not a PSP-kernel NPZ of scripts/hay_psp_kernels.py ({exc})") from None
    if coef.ndim != 3 or coef.shape[0] != n_synapses or coef.shape[2] != len(taus) or len(kind) != n_synapses:
        raise ValueError(f"prior_file {path}: kernels of shape {coef.shape} do not fit {n_synapses} synapses")
    if not np.all(np.isfinite(coef)):
        raise ValueError(f"prior_file {path}: non-finite kernel coefficients")
    n_sites, J = coef.shape[1], coef.shape[2]
    M = np.zeros((n_synapses, 2, n_sites, J), dtype=np.float64)
    for k, name in enumerate(("exc", "inh")):
        m = np.asarray(kind) == name
        M[m, k] = coef[m] / PRIOR_V_SCALE_MV
    source = {"file": path.name, "sha256": _sha256(path)}
    if "args" in meta:
        source.update({k: meta["args"][k] for k in ("t0_ms", "window_ms", "data", "trial") if k in meta["args"]})
    return {"M": M.reshape(n_synapses, -1), "taus": [float(t) for t in taus], "n_sites": int(n_sites), "source": source}


def _sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


@register("gru_prior")
class GRUPriorSurrogate(GRUSurrogate):
    """Args: those of :class:`GRUSurrogate` (hidden, layers, dropout, traces, ...), and either
    ``prior_file`` (kernels NPZ, read now) or ``prior_taus_ms`` and ``prior_sites`` (the shapes; the
    buffers come from a model file). ``prior_source`` (stored): where the kernels came from.

    State: the GRU's, then q (B, 2 S J), the prior's states after the last step."""

    def __init__(self, n_in: int, n_out: int, prior_file: str | None = None, prior_taus_ms=None,
                 prior_sites: int | None = None, prior_source: dict | None = None, **gru_params) -> None:
        if n_in % 2:
            raise ValueError(f"gru_prior needs the synapse encoding (2 features per synapse), got n_in = {n_in}")
        n_syn = n_in // 2
        if prior_file is not None:
            p = read_prior(prior_file, n_syn)
            M, taus, n_sites, source = p["M"], p["taus"], p["n_sites"], p["source"]
        else:
            if prior_taus_ms is None or prior_sites is None:
                raise ValueError("gru_prior needs prior_file (PSP kernels, scripts/hay_psp_kernels.py), "
                                 "or prior_taus_ms and prior_sites with weights from a model file")
            taus, n_sites, source = [float(t) for t in prior_taus_ms], int(prior_sites), prior_source
            M = np.zeros((n_syn, 2 * n_sites * len(taus)))
        if not taus or not all(t > 0 and math.isfinite(t) for t in taus) or n_sites < 1:
            raise ValueError(f"gru_prior: bad prior shapes (taus {taus} ms, {n_sites} sites)")
        C = M.shape[1]
        super().__init__(n_in + 2 * n_sites, n_out, **gru_params)
        self.n_in = int(n_in)  # the encoding's features; the GRU's input stage sees n_in + 2 S
        self.n_prior, self.n_taus = 2 * n_sites, len(taus)
        self.config.update(prior_taus_ms=taus, prior_sites=n_sites)
        if source:
            self.config["prior_source"] = source
        tau = torch.tensor(taus, dtype=torch.float32).repeat(2 * n_sites)  # channel order (kind, site, j)
        self.register_buffer("prior_mix", torch.as_tensor(M, dtype=torch.float32))  # (n_syn, C)
        self.register_buffer("prior_decay", torch.exp(-1.0 / tau))  # (C,)

    def init_state(self, batch: int, device=None, dtype=None) -> State:
        state = super().init_state(batch, device, dtype)
        return (*state, torch.zeros(batch, self.prior_mix.shape[1], device=state[0].device, dtype=state[0].dtype))

    def channels(self, q: Tensor) -> Tensor:
        """(..., 2 S) prior channels from the states (..., 2 S J): the sum over the time constants."""
        return q.unflatten(-1, (self.n_prior, self.n_taus)).sum(-1)

    def _prior_seq(self, x: Tensor, q: Tensor) -> Tensor:
        """(B, T, 2 S J) prior states over x (B, T, n_in), from q (B, 2 S J) before the sequence."""
        u = x[..., 0::2] @ self.prior_mix.to(x.dtype)  # (B, T, C)
        T = x.shape[1]
        a = self.prior_decay.to(x.dtype)
        t = torch.arange(T, device=x.device, dtype=x.dtype)
        kern = a[None, :] ** t[:, None]  # (T, C)
        n = 1 << (2 * T - 1).bit_length()
        qs = torch.fft.irfft(torch.fft.rfft(u, n, dim=1) * torch.fft.rfft(kern, n, dim=0)[None], n, dim=1)[:, :T]
        return qs + (a[None, :] ** (t[:, None] + 1))[None] * q[:, None, :]

    def step(self, x_t: Tensor, state: State) -> tuple[Tensor, State]:
        q = self.prior_decay.to(x_t.dtype) * state[-1] + x_t[:, 0::2] @ self.prior_mix.to(x_t.dtype)
        y, gs = super().step(torch.cat([x_t, self.channels(q)], 1), state[:-1])
        return y, (*gs, q)

    def forward(self, x_seq: Tensor, state: State | None = None, v_teacher: Tensor | None = None):
        if state is None:
            state = self.init_state(x_seq.shape[0], x_seq.device, x_seq.dtype)
        with torch.no_grad():  # fixed buffers: nothing to learn through the prior
            qs = self._prior_seq(x_seq, state[-1])
        y, gs = super().forward(torch.cat([x_seq, self.channels(qs)], 2), state[:-1])
        return y, (*gs, qs[:, -1])

    def flops_per_step(self) -> int:
        C = self.prior_mix.shape[1]
        return super().flops_per_step() + 2 * self.n_prior * self.hidden + 2 * (self.n_in // 2) * C + 3 * C
