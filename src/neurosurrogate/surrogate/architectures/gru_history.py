"""GRU surrogate with a spike-history kernel: refractoriness and adaptation after its own spikes.

The model of :mod:`.gru` whose outputs are corrected, after every spike the model itself calls,
by a learned post-spike kernel (the spike-history term of a generalised linear model, or the
after-spike currents of a spike-response model)::

    y_t = y^GRU_t + W a_t                       W: (n_out, K), initialised 0 (the plain GRU)
    a^k_t = d_k a^k_{t-1} + f_{t-1}              d_k = exp(-1 ms / tau_k), tau_k learned (ms)
    f_t = 1 if the model's own spike, in bin t-1, is confirmed at t

so every output (spike logit, soma and dendritic voltage, currents) gets a sum of K exponentials
after each of the model's own spikes: a refractory dip and an after-hyperpolarisation of the spike
logit and the voltage, and adaptation across a burst. The GRU does not see its spikes; its state
is a function of the input alone, and so is its hedging where it cannot tell whether the cell
spiked. The kernel commits the outputs to the branch the model's own spike decision chose. (Built
because the shipped ``gru`` fires again too soon after its own spikes, README, the detailed cell,
item 7; on the same data it did not score better than ``gru``, item 8.)

A spike is the bin where the spike probability sigmoid(y[1]) peaks above the threshold theta, as
the decoder calls it (one spike per run of bins above theta); the peak is known one step later,
when the probability stops rising (the first peak of a run). So the kernel acts from two bins after
the spike's bin, and does not cut the probability's rise short: a decision at the first bin above
theta (tried first) moved the spikes ~1 ms early, to that bin.

Training, ``history_train``:

* ``"true"`` (default): the kernel is driven by the cell's recorded spikes (``s_teacher`` in
  :meth:`forward`; a spike in bin k enters f at k + 1, as the model's own would), as a GLM's history
  term is fitted: the kernel learns how the cell's spike
  probability and voltage change after the cell's own spikes, given what the GRU predicts from the
  input. Acting only through W on the outputs, it cannot become an input the GRU relies on (what
  made teacher forcing of spikes into the GRU fail).
* ``"own"``: free-running in training too: the kernel is driven by the model's own spike
  decisions (a comparison: no gradient through the decision; W and tau_k are trained through the
  later outputs).

Validation and use are always free-running (own spikes). The decision threshold theta
(``history_threshold``) is also the model's spike-decoding threshold (spikes the kernel did not see
would have no after-spike dynamics): after training it is calibrated by running the model at each
candidate threshold (:func:`neurosurrogate.train.loop.calibrate_spike_threshold`).

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

    State: the GRU's state, then a (B, K) (the kernel's traces for the next step), y1 (B, 1) (the
    last step's spike logit), fired (B, 1) (a spike was called in the current run above the
    threshold) and s (B, 1) (the last step's recorded spike, training with s_teacher)."""

    def __init__(self, n_in: int, n_out: int, history_taus_ms=(2.0, 8.0, 30.0, 120.0),
                 history_threshold: float = 0.5, history_train: str = "true", **gru_params) -> None:
        super().__init__(n_in, n_out, **gru_params)
        try:
            taus = [float(t) for t in history_taus_ms]
        except (TypeError, ValueError):
            raise ValueError(f"history_taus_ms must be a list of time constants in ms, got {history_taus_ms!r}") from None
        if not taus or not all(0.5 <= t <= 1e4 for t in taus):
            raise ValueError(f"history_taus_ms must be 1 or more time constants in [0.5, 10000] ms, got {taus}")
        if history_train not in HISTORY_TRAIN:
            raise ValueError(f"history_train must be one of {HISTORY_TRAIN}, got {history_train!r}")
        self.config.update(history_taus_ms=taus, history_train=history_train)
        self.history_train = history_train
        self.set_history_threshold(history_threshold)  # checks it and stores it in the config
        self.log_htau = nn.Parameter(torch.tensor(taus).log())  # (K,), tau in ms
        self.w_hist = nn.Parameter(torch.zeros(n_out, len(taus)))  # (n_out, K)

    def set_history_threshold(self, p: float) -> None:
        """Spike probability of the model's own spike decision (and decoding); stored in its config."""
        if not 0.0 < p < 1.0:
            raise ValueError(f"history_threshold must be in (0, 1), got {p}")
        self.history_threshold = float(p)
        self.config["history_threshold"] = float(p)
        self.thr_logit = math.log(p / (1.0 - p))

    @torch.no_grad()
    def history_kernel(self, lags_ms) -> Tensor:
        """(len(lags), n_out): what one spike of the model adds to each (normalised) output at each
        lag after its bin, ms (0 before 2 ms: the kernel acts from two bins after the spike's)."""
        lags = torch.as_tensor(lags_ms, dtype=self.w_hist.dtype)
        a = torch.exp(-(lags[:, None] - 2.0).clamp(min=0.0) / self.log_htau.exp())  # (L, K)
        return torch.where(lags[:, None] >= 2, a @ self.w_hist.T, torch.zeros(()))

    @property
    def spike_teacher(self) -> bool:
        """True if training drives the kernel with the recorded spikes (``s_teacher``)."""
        return self.history_train == "true"

    N_HIST_STATE = 4  # a, y1, fired, s: the entries after the GRU's state

    def init_state(self, batch: int, device=None, dtype=None) -> State:
        state = super().init_state(batch, device, dtype)
        kw = dict(device=state[0].device, dtype=state[0].dtype)
        a = torch.zeros(batch, self.log_htau.shape[0], **kw)
        y1 = torch.full((batch, 1), -1e4, **kw)  # far below any threshold
        return (*state, a, y1, torch.zeros(batch, 1, device=kw["device"], dtype=torch.bool), torch.zeros(batch, 1, **kw))

    def _run(self, y: Tensor, hist: State, s_teacher: Tensor | None) -> tuple[Tensor, State]:
        """The history over y (B, T, n_out) of the GRU: the corrected outputs and the new history state."""
        a, y1, fired, s_prev = hist
        d = torch.exp(-1.0 / self.log_htau.exp())  # (K,)
        ys = []
        for t in range(y.shape[1]):
            yt = y[:, t] + a @ self.w_hist.T
            now = yt[:, 1:2].detach()  # decisions are comparisons: no gradient through them
            peak = (y1 > self.thr_logit) & (now <= y1) & ~fired  # the run's first peak was the last bin
            fired = (fired | peak) & (now > self.thr_logit)
            if s_teacher is None:
                f = peak.to(a.dtype)
            else:  # the recorded spike of the last bin, as the model's own would be confirmed now
                f, s_prev = s_prev, s_teacher[:, t : t + 1]
            a = d * a + f
            y1 = now
            ys.append(yt)
        return torch.stack(ys, 1), (a, y1, fired, s_prev)

    def step(self, x_t: Tensor, state: State) -> tuple[Tensor, State]:
        k = self.N_HIST_STATE
        y, gs = super().step(x_t, state[:-k])
        y, hist = self._run(y[:, None], state[-k:], None)
        return y[:, 0], (*gs, *hist)

    def forward(self, x_seq: Tensor, state: State | None = None, v_teacher: Tensor | None = None,
                s_teacher: Tensor | None = None):
        """As :meth:`GRUSurrogate.forward`; ``s_teacher`` (B, T): the recorded spike onsets (1 in
        the millisecond a spike starts) that drive the kernel instead of the model's own (training
        with ``history_train="true"``)."""
        if state is None:
            state = self.init_state(x_seq.shape[0], x_seq.device, x_seq.dtype)
        if s_teacher is not None and s_teacher.shape != x_seq.shape[:2]:
            raise ValueError(f"s_teacher must have shape {tuple(x_seq.shape[:2])}, got {tuple(s_teacher.shape)}")
        k = self.N_HIST_STATE
        y, gs = super().forward(x_seq, state[:-k])
        y, hist = self._run(y, state[-k:], s_teacher)
        return y, (*gs, *hist)

    def flops_per_step(self) -> int:
        return super().flops_per_step() + 2 * self.log_htau.shape[0] * (self.n_out + 1)
