"""Temporal convolutional network surrogate (no voltage feedback), streaming.

Inputs only (``feedback = False``): errors cannot feed back. With C channels,
kernel k and dilations d_l = 2^l, l = 0..L-1 (default k = 2, L = 6)::

    h^0_t = W_in x_t + b_in                                              (1x1, C channels)
    r^l_t = ReLU(conv^l_2(ReLU(conv^l_1(h^l))))_t                        (two causal dilated convs, dilation d_l)
    h^{l+1}_t = ReLU(h^l_t + r^l_t)                                      (residual block)
    y_t = W_o h^L_t + b_o

``conv(h)_t = b + sum_{j=0}^{k-1} W_j h_{t-(k-1-j) d}``. Receptive field
``1 + 2 (k - 1) (2^L - 1)`` steps (127 ms by default). Streaming: each
convolution keeps its last ``(k - 1) d`` inputs (zeros at rest); state = these
2L buffers. ``forward`` is always parallel (one ``conv1d`` per layer, left-padded
by the buffers); ``step`` is a matrix-vector product per layer.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from neurosurrogate.surrogate.architectures._layers import CausalConv1d, check_positive
from neurosurrogate.surrogate.base import State, Surrogate, register


@register("tcn")
class TCNSurrogate(Surrogate):
    """Residual dilated causal convolutions over the inputs only.

    Args:
        n_in: input features per step.
        n_out: outputs per step (>= 3).
        channels: channels C per layer, default 32.
        kernel: kernel size k, default 2.
        levels: residual blocks L (dilations 1, 2, ..., 2^(L-1)), default 6.
    """

    def __init__(self, n_in: int, n_out: int, channels: int = 32, kernel: int = 2, levels: int = 6) -> None:
        super().__init__(n_in, n_out, channels=channels, kernel=kernel, levels=levels)
        check_positive(channels=channels, kernel=kernel, levels=levels)
        C, k, L = int(channels), int(kernel), int(levels)
        self.channels, self.kernel, self.levels = C, k, L
        self.inp = CausalConv1d(self.n_in, C)
        self.convs = nn.ModuleList(CausalConv1d(C, C, k, 2 ** (i // 2)) for i in range(2 * L))
        self.head = CausalConv1d(C, n_out)

    @property
    def receptive_field(self) -> int:
        """Steps of input that influence an output."""
        return 1 + sum(c.span for c in self.convs)

    def init_state(self, batch: int, device=None, dtype=None) -> State:
        ref = self._ref()
        device, dtype = device or ref.device, dtype or ref.dtype
        if self.kernel == 1:  # no memory; keep a placeholder so the state is never empty
            return (torch.zeros(batch, 0, device=device, dtype=dtype),)
        return tuple(c.init_buffer(batch, device, dtype) for c in self.convs)

    def _net(self, z: Tensor, bufs: State, mode: str) -> tuple[Tensor, State]:
        h, _ = getattr(self.inp, mode)(z, None)
        new = []
        for l in range(self.levels):
            c1, c2 = self.convs[2 * l], self.convs[2 * l + 1]
            b1 = bufs[2 * l] if c1.span else None
            b2 = bufs[2 * l + 1] if c2.span else None
            r, b1 = getattr(c1, mode)(h, b1)
            r, b2 = getattr(c2, mode)(torch.relu(r), b2)
            h = torch.relu(h + torch.relu(r))
            new += [b1, b2]
        y = getattr(self.head, mode)(h, None)[0]
        return y, (tuple(new) if self.kernel > 1 else bufs)

    def step(self, x_t: Tensor, state: State) -> tuple[Tensor, State]:
        return self._net(x_t, state, "step")

    def forward(self, x_seq: Tensor, state: State | None = None, v_teacher: Tensor | None = None):
        """Parallel over time (v_teacher is ignored: no feedback)."""
        if state is None:
            state = self.init_state(x_seq.shape[0], x_seq.device, x_seq.dtype)
        y, state = self._net(x_seq.transpose(1, 2), state, "run")
        return y.transpose(1, 2), state

    def flops_per_step(self) -> int:
        return sum(c.flops() for c in [self.inp, *self.convs, self.head])
