"""GRU surrogate with an excitable soma: the network predicts the drive, a spiking unit makes the spikes.

The model of :mod:`.gru` computes, from the input alone, a somatic *drive* D_t (its voltage output,
mV) and everything else as before (sub-ms spike offset, dendritic voltages, currents). The soma
voltage and the spikes come from an exponential integrate-and-fire unit driven by D, integrated with
``soma_substeps`` Euler steps per millisecond::

    dV/dt = (D - V + Delta * exp((V - V_T) / Delta)) / tau_m - w        (mV, ms)
    dw/dt = -w / tau_w
    V >= V_peak:  spike; V <- V_reset; w <- w + b

V_T, Delta, tau_m, V_reset, tau_w and b are learned (initialised at a cortical cell's values);
V_peak is fixed (``soma_v_peak_mV``, -30 mV). The voltage output is V at the end of each
millisecond (clipped at the encoding's ``v_clip_mV``, as the target is); the spike logit is
(max V within the millisecond - theta) / kappa (theta, kappa learned), so a bin where the unit
fired scores (V_peak - theta) / kappa and a near miss less (a fired bin's gradient is that of its
crossing substep's V, straight through the cap at V_peak, so the spike loss can also remove a false
spike); the spike offset stays the GRU's.

Why: trained by squared error, every network so far shrinks the cell's excursions toward their mean
where it cannot tell where the cell is going, and the error of that form costs spikes (README, the
detailed cell, items 4 and 12): the real cell with an independent noise current that errs as much
near threshold keeps spike F1 0.84 against the network's 0.76, because its membrane is excitable:
an input near threshold is amplified, a spike is all-or-none, and after it the voltage is reset.
Here the network's error lands in the drive of such a membrane. The unit's reset and spike are
decided by comparisons (no gradient through them); training is free-running (the unit's own spikes
reset it, as in use), and the voltage and spike losses reach D and the unit's parameters through
the integration.

The network's part runs as one ``nn.GRU`` call (training) or the compiled kernel (CPU inference);
the unit is a loop over the milliseconds and substeps of (B, 1) tensors. Streaming cost over the
GRU: ~12 flops per substep.
"""

from __future__ import annotations

import math
import warnings

import torch
from torch import Tensor, nn

from neurosurrogate.surrogate.architectures.gru import GRUSurrogate
from neurosurrogate.surrogate.base import State, register


def _inv_softplus(x: float) -> float:
    return math.log(math.expm1(x))


@register("gru_soma")
class GRUSomaSurrogate(GRUSurrogate):
    """Args: those of :class:`GRUSurrogate` (hidden, layers, dropout, traces, ...); the encoding's
    voltage scale (``v_rest_mV``, ``v_scale_mV``, ``v_clip_mV``; filled in by
    :meth:`SurrogateModel.create`); ``soma_substeps`` (Euler steps per ms, default 4);
    ``soma_v_peak_mV`` (spike cut-off, default -30 mV); initial values of the learned ``soma_vt_mV``
    (-52), ``soma_delta_mV`` (2), ``soma_tau_ms`` (2), ``soma_v_reset_mV`` (-60), ``soma_tau_w_ms``
    (30) and ``soma_b_mV_per_ms`` (0.5).

    State: the GRU's state, then V (B, 1) mV and w (B, 1) mV/ms."""

    uses_voltage_encoding = True  # SurrogateModel.create passes v_rest_mV, v_scale_mV, v_clip_mV
    N_SOMA_STATE = 2

    def __init__(self, n_in: int, n_out: int, v_rest_mV: float = -70.0, v_scale_mV: float = 20.0,
                 v_clip_mV: float | None = None, soma_substeps: int = 4, soma_v_peak_mV: float = -30.0,
                 soma_vt_mV: float = -52.0, soma_delta_mV: float = 2.0, soma_tau_ms: float = 2.0,
                 soma_v_reset_mV: float = -60.0, soma_tau_w_ms: float = 30.0, soma_b_mV_per_ms: float = 0.5,
                 **gru_params) -> None:
        super().__init__(n_in, n_out, **gru_params)
        vals = dict(v_rest_mV=v_rest_mV, v_scale_mV=v_scale_mV, soma_v_peak_mV=soma_v_peak_mV,
                    soma_vt_mV=soma_vt_mV, soma_delta_mV=soma_delta_mV, soma_tau_ms=soma_tau_ms,
                    soma_v_reset_mV=soma_v_reset_mV, soma_tau_w_ms=soma_tau_w_ms, soma_b_mV_per_ms=soma_b_mV_per_ms)
        for k, v in vals.items():
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ValueError(f"{k} must be a finite number, got {v!r}")
        for k in ("v_scale_mV", "soma_delta_mV", "soma_tau_ms", "soma_tau_w_ms", "soma_b_mV_per_ms"):
            if not vals[k] > 0:
                raise ValueError(f"{k} must be > 0, got {vals[k]}")
        if not (isinstance(soma_substeps, int) and 1 <= soma_substeps <= 40):
            raise ValueError(f"soma_substeps must be an integer in [1, 40], got {soma_substeps!r}")
        if not soma_v_reset_mV < soma_vt_mV < soma_v_peak_mV:
            raise ValueError(f"need soma_v_reset_mV < soma_vt_mV < soma_v_peak_mV, got {soma_v_reset_mV}, "
                             f"{soma_vt_mV}, {soma_v_peak_mV}")
        if v_clip_mV is not None and (isinstance(v_clip_mV, bool) or not isinstance(v_clip_mV, (int, float))):
            raise ValueError(f"v_clip_mV must be a voltage (mV) or None, got {v_clip_mV!r}")
        self.config.update({k: float(v) for k, v in vals.items()}, v_clip_mV=None if v_clip_mV is None else
                           float(v_clip_mV), soma_substeps=int(soma_substeps))
        self.v_rest, self.v_scale = float(v_rest_mV), float(v_scale_mV)
        self.v_clip = None if v_clip_mV is None else float(v_clip_mV)
        self.n_sub, self.v_peak = int(soma_substeps), float(soma_v_peak_mV)
        self.vt = nn.Parameter(torch.tensor(float(soma_vt_mV)))
        self.log_delta = nn.Parameter(torch.tensor(math.log(soma_delta_mV)))
        self.log_tau_m = nn.Parameter(torch.tensor(math.log(soma_tau_ms)))
        self.v_reset = nn.Parameter(torch.tensor(float(soma_v_reset_mV)))
        self.log_tau_w = nn.Parameter(torch.tensor(math.log(soma_tau_w_ms)))
        self.b_raw = nn.Parameter(torch.tensor(_inv_softplus(soma_b_mV_per_ms)))
        # the spike logit's zero and scale: between V_T and V_peak, so that at the start a bin where the
        # unit fired scores (V_peak - theta) / kappa = +5 and one spent near V_T about -5
        self.theta = nn.Parameter(torch.tensor(0.5 * (float(soma_vt_mV) + float(soma_v_peak_mV))))
        self.log_kappa = nn.Parameter(torch.tensor(math.log(0.1 * (float(soma_v_peak_mV) - float(soma_vt_mV)))))
        self._soma_rest: tuple[float, float] | None = None  # (V mV, w) at the warmed-up rest

    def init_state(self, batch: int, device=None, dtype=None) -> State:
        state = super().init_state(batch, device, dtype)
        kw = dict(device=state[0].device, dtype=state[0].dtype)
        v0, w0 = (self.v_rest, 0.0) if self._soma_rest is None or self.training else self._soma_rest
        return (*state, torch.full((batch, 1), v0, **kw), torch.full((batch, 1), w0, **kw))

    @torch.no_grad()
    def set_rest_from_silence(self, ms: int) -> None:
        """As :meth:`GRUSurrogate.set_rest_from_silence`, and the unit's V and w at that rest too."""
        self._soma_rest = None
        super().set_rest_from_silence(ms)
        training = self.training
        self.eval()
        ref = self._ref()
        state = self(torch.zeros(1, int(ms), self.n_in, device=ref.device, dtype=ref.dtype))[1]
        self._soma_rest = (float(state[-2]), float(state[-1]))
        self.train(training)

    def soma_parameters(self) -> dict[str, float]:
        """The unit's learned constants in physical units."""
        with torch.no_grad():
            return {"V_T_mV": float(self.vt), "Delta_mV": float(self.log_delta.exp()),
                    "tau_m_ms": float(self.log_tau_m.exp()), "V_reset_mV": float(self.v_reset),
                    "tau_w_ms": float(self.log_tau_w.exp()), "b_mV_per_ms": float(nn.functional.softplus(self.b_raw)),
                    "theta_mV": float(self.theta), "kappa_mV": float(self.log_kappa.exp())}

    def _soma(self, y: Tensor, soma: State) -> tuple[Tensor, State]:
        """The unit over the GRU's outputs y (B, T, n_out): outputs with the unit's voltage and spike
        logit, and the unit's new state."""
        v, w = soma
        dt = 1.0 / self.n_sub
        drive = self.v_rest + self.v_scale * y[..., 0]  # (B, T) mV
        params = (self.vt, self.log_delta.exp(), dt / self.log_tau_m.exp(), torch.exp(-dt / self.log_tau_w.exp()),
                  nn.functional.softplus(self.b_raw), self.v_reset)
        v_end, v_max, v, w = _Unit.apply(drive, v[:, 0], w[:, 0], self.n_sub, self.v_peak, GRAD_CAP, *params)
        if self.v_clip is not None:
            v_end = v_end.clamp(max=self.v_clip)
        # a bin where the unit fired scores as if its maximum were V_peak (the crossing substep's value can
        # be far above), with the gradient of the unclipped maximum (straight through): the spike loss
        # then reaches the drive of a spike the cell did not fire, and can remove it
        v_top = v_max + (v_max.clamp(max=self.v_peak) - v_max).detach()
        logit = (v_top - self.theta) / self.log_kappa.exp()
        out = torch.cat([((v_end - self.v_rest) / self.v_scale)[..., None], logit[..., None], y[..., 2:]], -1)
        return out, (v[:, None], w[:, None])

    def step(self, x_t: Tensor, state: State) -> tuple[Tensor, State]:
        k = self.N_SOMA_STATE
        y, gs = super().step(x_t, state[:-k])
        y, soma = self._soma(y[:, None], state[-k:])
        return y[:, 0], (*gs, *soma)

    def forward(self, x_seq: Tensor, state: State | None = None, v_teacher: Tensor | None = None):
        if state is None:
            state = self.init_state(x_seq.shape[0], x_seq.device, x_seq.dtype)
        k = self.N_SOMA_STATE
        y, gs = super().forward(x_seq, state[:-k])
        y, soma = self._soma(y, state[-k:])
        return y, (*gs, *soma)

    def flops_per_step(self) -> int:
        return super().flops_per_step() + 12 * self.n_sub + 6


def _unit_forward(drive: Tensor, v: Tensor, w: Tensor, n_sub: int, v_peak: float, grad_cap: float, vt: Tensor,
                  delta: Tensor, k_m: Tensor, dec_w: Tensor, b: Tensor, v_reset: Tensor):
    """Euler steps of the unit (module doc) over drive (B, T) from v, w (B,); returns V at the end of
    each ms, its maximum within each ms (from the ms's start value on), the final v, w, and what the
    backward pass needs (per substep: v and w before it, fired, whether the exponential passes a
    gradient ((V - V_T) / Delta < ``grad_cap``), the exponential; per ms: the substep of the maximum,
    -1 for the start value)."""
    B, T = drive.shape[0], drive.shape[1]
    S = T * n_sub
    dt = 1.0 / n_sub
    v_pre = torch.empty(B, S, dtype=v.dtype, device=v.device)
    w_pre = torch.empty_like(v_pre)
    ex_all = torch.empty_like(v_pre)
    lin = torch.empty(B, S, dtype=torch.bool, device=v.device)
    fired_all = torch.empty_like(lin)
    v_end = torch.empty(B, T, dtype=v.dtype, device=v.device)
    v_max = torch.empty_like(v_end)
    arg = torch.empty(B, T, dtype=torch.long, device=v.device)
    for t in range(T):
        d = drive[:, t]
        vm = v
        am = torch.full_like(arg[:, 0], -1)
        for j in range(n_sub):
            i = t * n_sub + j
            a = (v - vt) / delta
            c = a < grad_cap
            ex = torch.exp(a.clamp(max=10.0))  # capped: V_peak is reached anyway
            v_pre[:, i] = v
            w_pre[:, i] = w
            ex_all[:, i] = ex
            lin[:, i] = c
            v1 = v + k_m * (d - v + delta * ex) - dt * w
            up = v1 > vm
            vm = torch.where(up, v1, vm)
            am = torch.where(up, torch.full_like(am, j), am)
            f = v1 >= v_peak
            fired_all[:, i] = f
            v = torch.where(f, v_reset.expand_as(v1), v1)
            w = dec_w * w + b * f.to(w.dtype)
        v_end[:, t] = v
        v_max[:, t] = vm
        arg[:, t] = am
    return v_end, v_max, v, w, v_pre, w_pre, ex_all, lin, fired_all, arg


def _unit_backward(g_end: Tensor, g_max: Tensor, drive: Tensor, n_sub: int, vt: Tensor, delta: Tensor, k_m: Tensor,
                   dec_w: Tensor, b: Tensor, v_pre: Tensor, w_pre: Tensor, ex_all: Tensor, lin: Tensor,
                   fired_all: Tensor, arg: Tensor):
    """Adjoints of :func:`_unit_forward` (the final state's are 0: it is carried on detached). Where the
    exponential's argument exceeds the forward pass's ``grad_cap`` (on a spike's upstroke) it is
    treated as a constant: its exact derivative there multiplies the adjoint by up to ~k_m e^10 per
    substep, and a few substeps make the gradient explode (a surrogate gradient, as spiking networks
    are trained)."""
    B, T = drive.shape[0], drive.shape[1]
    dt = 1.0 / n_sub
    g_drive = torch.zeros_like(drive)
    gv = torch.zeros_like(drive[:, 0])
    gw = torch.zeros_like(gv)
    g_vt = torch.zeros_like(gv)
    g_delta = torch.zeros_like(gv)
    g_km = torch.zeros_like(gv)
    g_decw = torch.zeros_like(gv)
    g_b = torch.zeros_like(gv)
    g_reset = torch.zeros_like(gv)
    for t in range(T - 1, -1, -1):
        gv = gv + g_end[:, t]
        gm = g_max[:, t]
        at = arg[:, t]
        d = drive[:, t]
        for j in range(n_sub - 1, -1, -1):
            i = t * n_sub + j
            f = fired_all[:, i].to(gv.dtype)
            v, w, ex = v_pre[:, i], w_pre[:, i], ex_all[:, i]
            c = lin[:, i].to(gv.dtype)
            g1 = (1.0 - f) * gv + torch.where(at == j, gm, torch.zeros_like(gm))  # adjoint of v before the reset
            g_reset = g_reset + f * gv
            g_decw = g_decw + gw * w
            g_b = g_b + gw * f
            g_drive[:, t] += k_m * g1
            g_km = g_km + g1 * (d - v + delta * ex)
            g_vt = g_vt - g1 * k_m * c * ex
            g_delta = g_delta + g1 * k_m * ex * (1.0 - c * (v - vt) / delta)
            gw = dec_w * gw - dt * g1
            gv = g1 * (1.0 - k_m + k_m * c * ex)
        gv = gv + torch.where(at == -1, gm, torch.zeros_like(gm))  # the ms's start value was its maximum
    return g_drive, g_vt.sum(), g_delta.sum(), g_km.sum(), g_decw.sum(), g_b.sum(), g_reset.sum()


#: (V - V_T) / Delta above which the exponential passes no gradient (see _unit_backward)
GRAD_CAP = 2.0
_SCRIPTED: dict = {}


def _scripted(fn):
    """``fn`` compiled by TorchScript on first use (a loop of small operations: several times faster
    than the interpreter); the plain function if scripting is unavailable."""
    if fn.__name__ not in _SCRIPTED:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                _SCRIPTED[fn.__name__] = torch.jit.script(fn)
        except Exception:  # noqa: BLE001  (TorchScript is deprecated in newer torch; fall back)
            _SCRIPTED[fn.__name__] = fn
    return _SCRIPTED[fn.__name__]


class _Unit(torch.autograd.Function):
    """The unit's integration with a hand-written backward pass (a loop of scripted (B,) operations
    each way, ~10x faster than autograd recording every substep)."""

    @staticmethod
    def forward(ctx, drive, v, w, n_sub, v_peak, grad_cap, vt, delta, k_m, dec_w, b, v_reset):
        v_end, v_max, v, w, *saved = _scripted(_unit_forward)(drive, v, w, n_sub, v_peak, grad_cap, vt, delta, k_m,
                                                              dec_w, b, v_reset)
        ctx.n_sub = n_sub
        ctx.save_for_backward(drive, vt, delta, k_m, dec_w, b, *saved)
        ctx.mark_non_differentiable(v, w)
        return v_end, v_max, v, w

    @staticmethod
    def backward(ctx, g_end, g_max, _gv, _gw):
        drive, vt, delta, k_m, dec_w, b, *saved = ctx.saved_tensors
        g_end = torch.zeros_like(drive) if g_end is None else g_end
        g_max = torch.zeros_like(drive) if g_max is None else g_max
        g_drive, *g = _scripted(_unit_backward)(g_end.contiguous(), g_max.contiguous(), drive, ctx.n_sub, vt, delta, k_m, dec_w,
                                     b, *saved)
        return (g_drive, None, None, None, None, None, *g)
