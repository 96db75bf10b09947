"""GRU surrogate with a spike-history kernel: refractoriness and adaptation after its own spikes.

The model of :mod:`.gru` whose outputs are corrected, after every spike the model itself calls,
by a learned post-spike kernel (the spike-history term of a generalised linear model, or the
after-spike currents of a spike-response model)::

    y_t = y^GRU_t + W a_t                       W: (n_out, K), initialised 0 (the plain GRU)
    a^k_t = d_k a^k_{t-1} + f_{t-1}              d_k = exp(-1 ms / tau_k), tau_k learned (ms)
    f_t = 1[sigmoid(y_t[1]) > theta and not so at t-1]   the model's own spike onset

so every output (spike logit, soma and dendritic voltage, currents) gets a sum of K exponentials
after each of the model's own spikes: a refractory dip and an after-hyperpolarisation of the spike
logit and the voltage, and adaptation across a burst. The GRU does not see its spikes; its state
is a function of the input alone, and so is its hedging where it cannot tell whether the cell
spiked. The kernel commits the outputs to the branch the model's own spike decision chose.
The plain GRU (``gru``) fires again too soon after its own spikes (more intervals under 50 ms
than the cell; README, the detailed cell, item 7): this is the mechanism that cell has and the
GRU lacks.

Training, ``history_train``:

* ``"true"`` (default): the kernel is driven by the cell's recorded spikes (``s_teacher`` in
  :meth:`forward`), as a GLM's history term is fitted: the kernel learns how the cell's spike
  probability and voltage change after the cell's own spikes, given what the GRU predicts from the
  input. Acting only through W on the outputs, it cannot become an input the GRU relies on (what
  made teacher forcing of spikes into the GRU fail).
* ``"own"``: free-running in training too: the kernel is driven by the model's own spike
  decisions (a comparison: no gradient through the decision; W and tau_k are trained through the
  later outputs).

Validation and use are always free-running (own spikes). The decision threshold theta
(``history_threshold``) is also the model's spike-decoding threshold (the training loop does not
calibrate another one: spikes the kernel did not see would have no after-spike dynamics).

Streaming cost over the GRU: 2 K (n_out + 1) flops per cell-step. The GRU part runs as one
``nn.GRU`` call (training) or the compiled kernel (CPU inference); the history is a short loop
over the steps of small (B, K) tensors.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from neurosurrogate.surrogate.architectures.gru import GRUSurrogate
from neurosurrogate.surrogate.base import State, register

HISTORY_TRAIN = ("true", "own")


@register("gru_history")
class GRUHistorySurrogate(GRUSurrogate):
    """Args: those of :class:`GRUSurrogate` (hidden, layers, dropout, traces, ...), and
    history_taus_ms (initial time constants of the kernel's exponentials, ms, learned; default
    2, 8, 30, 120), history_threshold (spike probability of the model's own spike decision and
    decoding, default 0.5), history_train ("true" or "own": which spikes drive the kernel in
    training, default "true").

    State: the GRU's state, then a (B, K) (the kernel's traces for the next step) and above (B, 1)
    (whether the last step's spike probability was above the threshold)."""

    def __init__(self, n_in: int, n_out: int, history_taus_ms=(2.0, 8.0, 30.0, 120.0),
                 history_threshold: float = 0.5, history_train: str = "true", **gru_params) -> None:
        super().__init__(n_in, n_out, **gru_params)
        try:
            taus = [float(t) for t in history_taus_ms]
        except (TypeError, ValueError):
            raise ValueError(f"history_taus_ms must be a list of time constants in ms, got {history_taus_ms!r}") from None
        if not taus or not all(0.5 <= t <= 1e4 for t in taus):
            raise ValueError(f"history_taus_ms must be 1 or more time constants in [0.5, 10000] ms, got {taus}")
        if not 0.0 < history_threshold < 1.0:
            raise ValueError(f"history_threshold must be in (0, 1), got {history_threshold}")
        if history_train not in HISTORY_TRAIN:
            raise ValueError(f"history_train must be one of {HISTORY_TRAIN}, got {history_train!r}")
        self.config.update(history_taus_ms=taus, history_threshold=float(history_threshold),
                           history_train=history_train)
        self.history_threshold = float(history_threshold)
        self.history_train = history_train
        self.thr_logit = math.log(history_threshold / (1.0 - history_threshold))
        self.log_htau = nn.Parameter(torch.tensor(taus).log())  # (K,), tau in ms
        self.w_hist = nn.Parameter(torch.zeros(n_out, len(taus)))  # (n_out, K)

    @property
    def spike_teacher(self) -> bool:
        """True if training drives the kernel with the recorded spikes (``s_teacher``)."""
        return self.history_train == "true"

    def init_state(self, batch: int, device=None, dtype=None) -> State:
        state = super().init_state(batch, device, dtype)
        z = torch.zeros(batch, self.log_htau.shape[0], device=state[0].device, dtype=state[0].dtype)
        return (*state, z, torch.zeros(batch, 1, device=state[0].device, dtype=torch.bool))

    def _run(self, y: Tensor, a: Tensor, above: Tensor, s_teacher: Tensor | None):
        """The history over y (B, T, n_out) of the GRU: corrected outputs and the new (a, above)."""
        d = torch.exp(-1.0 / self.log_htau.exp())  # (K,)
        ys = []
        for t in range(y.shape[1]):
            yt = y[:, t] + a @ self.w_hist.T
            now = yt[:, 1:2] > self.thr_logit  # a comparison: no gradient through the decision
            f = s_teacher[:, t : t + 1] if s_teacher is not None else (now & ~above).to(a.dtype)
            a = d * a + f
            above = now
            ys.append(yt)
        return torch.stack(ys, 1), a, above

    def step(self, x_t: Tensor, state: State) -> tuple[Tensor, State]:
        y, gs = super().step(x_t, state[:-2])
        y, a, above = self._run(y[:, None], state[-2], state[-1], None)
        return y[:, 0], (*gs, a, above)

    def forward(self, x_seq: Tensor, state: State | None = None, v_teacher: Tensor | None = None,
                s_teacher: Tensor | None = None):
        """As :meth:`GRUSurrogate.forward`; ``s_teacher`` (B, T): the recorded spike onsets (1 in
        the millisecond a spike starts) that drive the kernel instead of the model's own (training
        with ``history_train="true"``)."""
        if state is None:
            state = self.init_state(x_seq.shape[0], x_seq.device, x_seq.dtype)
        if s_teacher is not None and s_teacher.shape != x_seq.shape[:2]:
            raise ValueError(f"s_teacher must have shape {tuple(x_seq.shape[:2])}, got {tuple(s_teacher.shape)}")
        y, gs = super().forward(x_seq, state[:-2])
        y, a, above = self._run(y, state[-2], state[-1], s_teacher)
        return y, (*gs, a, above)

    def flops_per_step(self) -> int:
        return super().flops_per_step() + 2 * self.log_htau.shape[0] * (self.n_out + 1)
