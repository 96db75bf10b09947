"""GRU surrogate that feeds back its own spikes, free-running in training as in use.

The model of :mod:`.gru` plus one input: whether the model itself called a spike in the previous
millisecond (spike probability above ``fb_threshold``),

    z_t = ReLU(u_t + b_in + sum_k m_k * s^k_t + w_fb * f_{t-1}),  f_t = 1[sigmoid(y_t[1]) > theta]

A model without it hedges where the real cell ramps slowly to threshold: its state after such an
event is a blend of "spiked" and "did not", and so is everything it predicts after (a shallow
afterhyperpolarisation, uncertain timing of the next spike). Fed its own decision, the state
commits to one branch. Unlike teacher forcing with the true spikes (which failed: the model
learned to rely on spikes it never sees in use), the fed-back spikes here are the model's own in
training too, so training and use see the same input. The threshold is a hard decision (no
gradient through it); the spike output is trained by its loss as before.

The sequence is run step by step (the feedback makes it sequential), so training is slower than
with :mod:`.gru`'s one ``nn.GRU`` call, and there is no compiled streaming kernel.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from neurosurrogate.surrogate.architectures.gru import GRUSurrogate
from neurosurrogate.surrogate.base import State, register


@register("gru_fb")
class GRUSpikeFeedbackSurrogate(GRUSurrogate):
    """Args: those of :class:`GRUSurrogate` (hidden, layers, dropout, traces, ...), and fb_threshold
    (spike probability above which the model's own spike is fed back, default 0.3).

    State: (h, s, f) with traces, else (h, f): f (B, 1) is the model's own spike of the last step."""

    def __init__(self, n_in: int, n_out: int, fb_threshold: float = 0.3, **gru_params) -> None:
        super().__init__(n_in, n_out, **gru_params)
        if not 0.0 < fb_threshold < 1.0:
            raise ValueError(f"fb_threshold must be in (0, 1), got {fb_threshold}")
        self.config["fb_threshold"] = float(fb_threshold)
        self.fb_logit = float(torch.logit(torch.tensor(float(fb_threshold))))
        self.w_fb = nn.Parameter(torch.zeros(self.hidden))

    def init_state(self, batch: int, device=None, dtype=None) -> State:
        state = super().init_state(batch, device, dtype)
        return (*state, torch.zeros(batch, 1, device=state[0].device, dtype=state[0].dtype))

    def _kernel(self, x: Tensor, state: State):
        return None  # no compiled kernel for the feedback model

    def _split(self, state: State):
        return state[0], (state[1] if self.traces else None), state[-1]

    def _tick(self, pre_t: Tensor, h: Tensor, f: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """One step from the input stage's pre-activation (B, H): (output, new h, own spike flag)."""
        z, h = self._cells(self.drop(torch.relu(pre_t + f * self.w_fb)), h)
        y = self.head(z)
        return y, h, (y[:, 1:2] > self.fb_logit).to(y.dtype)  # a comparison: no gradient flows through it

    def step(self, x_t: Tensor, state: State) -> tuple[Tensor, State]:
        h, s, f = self._split(state)
        pre, s = self._pre(x_t, s)
        y, h, f = self._tick(pre, h, f)
        return y, ((h, s, f) if self.traces else (h, f))

    def forward(self, x_seq: Tensor, state: State | None = None, v_teacher: Tensor | None = None):
        if state is None:
            state = self.init_state(x_seq.shape[0], x_seq.device, x_seq.dtype)
        h, s, f = self._split(state)
        pre, s = self._pre(x_seq, s)
        ys = []
        for t in range(x_seq.shape[1]):
            y, h, f = self._tick(pre[:, t], h, f)
            ys.append(y)
        return torch.stack(ys, 1), ((h, s, f) if self.traces else (h, f))

    def flops_per_step(self) -> int:
        return super().flops_per_step() + 2 * self.hidden
