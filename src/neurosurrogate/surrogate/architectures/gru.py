"""Stacked GRU surrogate without voltage feedback (the project's default).

    u_t = W_in x_t                                    (input projection, H channels)
    s^k_t = a_k * s^k_{t-1} + u_t,  k = 1..K          (optional input traces, a_k = exp(-1 ms / tau_k))
    z_t = ReLU(u_t + b_in + sum_k m_k * s^k_t)        (* elementwise per channel)
                                                      (trace_norm: m_k = (1 - a_k) * mix_k, leaky means)
    h^l_t = GRU^l(h^{l-1}_t, h^l_{t-1}),  l = 1..L   (h^0_t = z_t)
    y_t = W_out h^L_t + b_out                         (voltage, spike logit, offset, extras)

The traces (``traces`` = K > 0) are a linear filter bank in front of the GRU: each of the H
projected input channels is low-pass filtered with K learned time constants (initialised
log-spaced over 2 ms to ``trace_tau_max_ms``, default 60 ms) and mixed with learned weights m_k
(initialised 0, so training starts from the plain GRU). Synaptic input arrives as impulses (one bin
per event onset); the traces hand the GRU the postsynaptic potentials' smooth time course at several
scales instead of making it learn them, which a cell with hundreds of synapses at different
electrotonic distances needs. Slow traces (hundreds of ms) sum hundreds of inputs: with
``trace_norm`` each is mixed as a leaky mean (m_k = (1 - a_k) mix_k), so a step of the optimiser on
mix_k moves the pre-activation alike for every time constant.
Streaming they cost 4 K H flops per cell-step; over a sequence they are one FFT convolution.

With ``dropout`` > 0, training drops units of z and of the output of every GRU layer but the last
(inverted dropout; a regulariser when data are scarce); streaming inference (eval mode) is unchanged.

The recurrent state is the only memory: the model never sees its own
voltage output, so errors cannot feed back and compound, and training on
long sequences with backpropagation through time teaches it to run free
from its resting state.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from neurosurrogate.surrogate import fast
from neurosurrogate.surrogate.base import State, Surrogate, register


@register("gru")
class GRUSurrogate(Surrogate):
    """Args: n_in, n_out; hidden (units per layer, default 64); layers (default 2); dropout
    (training-time dropout probability of the input projection and between GRU layers, default 0);
    traces (input traces per channel, default 0: none); trace_tau_max_ms (the slowest trace's initial
    time constant, ms, default 60); trace_norm (mix the traces as leaky means, default False).

    On the CPU in eval mode without autograd, :meth:`step` and :meth:`forward` run the compiled
    fused kernel of :mod:`neurosurrogate.surrogate.fast` (same results to float32 rounding, several
    times faster for tens of cells); otherwise (training, autograd, GPU, float64) PyTorch."""

    def __init__(self, n_in: int, n_out: int, hidden: int = 64, layers: int = 2, dropout: float = 0.0,
                 traces: int = 0, trace_tau_max_ms: float = 60.0, trace_norm: bool = False) -> None:
        extra = {"dropout": float(dropout)} if dropout else {}  # model files without them load unchanged
        if traces:
            extra["traces"] = int(traces)
        if trace_tau_max_ms != 60.0:
            extra["trace_tau_max_ms"] = float(trace_tau_max_ms)
        if trace_norm:
            extra["trace_norm"] = True
        super().__init__(n_in, n_out, hidden=hidden, layers=layers, **extra)
        if hidden < 1 or layers < 1:
            raise ValueError(f"hidden and layers must be >= 1, got {hidden}, {layers}")
        if traces < 0 or int(traces) != traces:
            raise ValueError(f"traces must be a non-negative integer, got {traces}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        if not 2.0 < trace_tau_max_ms < 1e6:
            raise ValueError(f"trace_tau_max_ms must be in (2, 1e6) ms, got {trace_tau_max_ms}")
        if not isinstance(trace_norm, bool):
            raise ValueError(f"trace_norm must be true or false, got {trace_norm!r}")
        self.hidden, self.layers = hidden, layers
        self.inp = nn.Linear(n_in, hidden)
        self.traces = int(traces)
        if self.traces:
            tau0 = (torch.logspace(math.log10(2.0), math.log10(trace_tau_max_ms), self.traces) if traces > 1
                    else torch.tensor([10.0]))
            self.log_tau = nn.Parameter(tau0.log()[:, None].repeat(1, hidden))  # (K, H), tau in ms
            self.mix = nn.Parameter(torch.zeros(self.traces, hidden))  # (K, H)
        self.trace_norm = bool(trace_norm)
        self.drop = nn.Dropout(dropout)
        self.gru = nn.GRU(hidden, hidden, num_layers=layers, batch_first=True, dropout=dropout if layers > 1 else 0.0)
        self.head = nn.Linear(hidden, n_out)
        self._fused: fast.FusedGRU | None = None  # the compiled step's weights (built on first use)
        self._rest: Tensor | None = None  # warmed-up resting h (L, H), see set_rest_from_silence

    def __getstate__(self) -> dict:
        """Copies and pickles leave the compiled step's weight cache behind (rebuilt on use)."""
        state = dict(self.__dict__)
        state["_fused"] = None
        return state

    def init_state(self, batch: int, device=None, dtype=None) -> State:
        """(h,) of shape (L, B, H); with traces (h, s), s of shape (K, B, H): zeros, or in eval mode
        the warmed-up rest of :meth:`set_rest_from_silence` if one was set."""
        ref = self._ref()
        kw = dict(device=device or ref.device, dtype=dtype or ref.dtype)
        h = torch.zeros(self.layers, batch, self.hidden, **kw)
        if self._rest is not None and not self.training:
            h += self._rest.to(**kw)[:, None]  # the traces rest at zero (no input)
        return (h, torch.zeros(self.traces, batch, self.hidden, **kw)) if self.traces else (h,)

    @torch.no_grad()
    def set_rest_from_silence(self, ms: int) -> None:
        """Rest = the state after ``ms`` ms without input from zeros (in eval mode, float32 on the
        CPU); then ``init_state`` in eval mode starts there. The zero state is not exactly the
        model's rest (training starts every trial from zeros): without this, every prediction
        opens with a transient of a few mV that settles over tens of ms."""
        if ms < 1:
            raise ValueError(f"rest warm-up must be >= 1 ms, got {ms}")
        training = self.training
        self.eval()
        self._rest = None
        ref = self._ref()
        x = torch.zeros(1, int(ms), self.n_in, device=ref.device, dtype=ref.dtype)
        _, state = self(x)
        self._rest = state[0][:, 0].detach().clone()  # (L, H)
        self.train(training)

    def trace_mix(self) -> Tensor:
        """(K, H) weights m_k of the traces in the input stage (mix, or (1 - a_k) mix with trace_norm)."""
        if not self.trace_norm:
            return self.mix
        return -torch.expm1(-1.0 / self.log_tau.exp()) * self.mix

    def _pre(self, x: Tensor, s: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """The input stage before its ReLU, and the new traces. x: (B, n_in) with s (K, B, H), or
        (B, T, n_in) with s the traces before the sequence; returns the traces after its last step."""
        if not self.traces:
            return self.inp(x), None
        u = nn.functional.linear(x, self.inp.weight)
        tau = self.log_tau.exp()  # (K, H), ms
        if x.dim() == 2:
            s = torch.exp(-1.0 / tau)[:, None] * s + u
            return u + self.inp.bias + (self.trace_mix()[:, None] * s).sum(0), s
        T = x.shape[1]
        t = torch.arange(T, device=x.device, dtype=x.dtype)
        kern = torch.exp(-t[None, :, None] / tau[:, None, :])  # (K, T, H): impulse response a^t
        n = 1 << (2 * T - 1).bit_length()
        st = torch.fft.irfft(torch.fft.rfft(u, n, dim=1)[None] * torch.fft.rfft(kern, n, dim=1)[:, None], n, dim=2)
        st = st[:, :, :T] + torch.exp(-(t[None, :, None] + 1) / tau[:, None, :])[:, None] * s[:, :, None]  # (K,B,T,H)
        return u + self.inp.bias + (self.trace_mix()[:, None, None] * st).sum(0), st[:, :, -1]

    def _input(self, x: Tensor, s: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """z before dropout, and the new traces (see :meth:`_pre`)."""
        pre, s = self._pre(x, s)
        return torch.relu(pre), s

    def _cells(self, z: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
        """The GRU layers on one step's input z (B, H) from h (L, B, H): (top layer's output, new h).
        One GRU cell call per layer: the same arithmetic as nn.GRU on a sequence of length 1 without
        its per-call set-up (~30 % faster for one cell, ~10 % for tens of cells on CPU)."""
        hs = []
        for layer in range(self.layers):
            if layer and self.training and self.gru.dropout:
                z = nn.functional.dropout(z, self.gru.dropout, training=True)
            z = torch.gru_cell(z, h[layer], getattr(self.gru, f"weight_ih_l{layer}"),
                               getattr(self.gru, f"weight_hh_l{layer}"), getattr(self.gru, f"bias_ih_l{layer}"),
                               getattr(self.gru, f"bias_hh_l{layer}"))
            hs.append(z)
        return z, torch.stack(hs)

    def _kernel(self, x: Tensor, state: State):
        """The compiled kernel if it computes what PyTorch would here (eval, no autograd, float32 on
        the CPU), with the weights in its layout up to date; else None."""
        if (self.training or x.device.type != "cpu" or x.dtype != torch.float32 or state[0].dtype != torch.float32
                or torch.is_grad_enabled() or not fast.supported(self.hidden)):
            return None
        lib = fast.load_kernel()  # None if disabled or no compiler
        if lib is not None and (self._fused is None or not self._fused.matches()):
            self._fused = fast.FusedGRU(self)
        return lib

    def step(self, x_t: Tensor, state: State) -> tuple[Tensor, State]:
        lib = self._kernel(x_t, state)
        if lib is not None:
            return self._fused.step(lib, x_t, state)
        z, s = self._input(x_t, state[1] if self.traces else None)
        z, h = self._cells(self.drop(z), state[0])
        return self.head(z), ((h, s) if self.traces else (h,))

    def forward(self, x_seq: Tensor, state: State | None = None, v_teacher: Tensor | None = None):
        if state is None:
            state = self.init_state(x_seq.shape[0], x_seq.device, x_seq.dtype)
        lib = self._kernel(x_seq, state)
        if lib is not None:  # inference on the CPU: the fused steps in one call beat nn.GRU there
            return self._fused.sequence(lib, x_seq, state)
        out, state = self.top_layer(x_seq, state)
        return self.head(out), state

    def top_layer(self, x_seq: Tensor, state: State) -> tuple[Tensor, State]:
        """The top GRU layer's output (B, T, H) on a sequence from ``state`` (what the heads read; PyTorch's
        operations, so also for analyses of the hidden state), and the new state."""
        z, s = self._input(x_seq, state[1] if self.traces else None)
        out, h = self.gru(self.drop(z), state[0])
        return out, ((h, s) if self.traces else (h,))

    def flops_per_step(self) -> int:
        H, L, n_in = self.hidden, self.layers, self.n_in
        gru = L * 3 * (H * H + H * H)  # input and recurrent matrices of 3 gates
        return 2 * (n_in * H + gru + H * self.n_out + 2 * self.traces * H)
