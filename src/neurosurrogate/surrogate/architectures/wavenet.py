"""WaveNet feedback surrogate (Oláh, Pedersen & Rowan, eLife 2022: "WaveNet"), streaming.

Per-step features ``z_t = [x_t, v_{t-1}]`` (n_in + 1 channels; ``v`` is the
model's own voltage output, ``v_{-1} = v_init``). With R residual and S skip
channels and dilations d_l = 2^l, l = 0..L-1 (default L = 6: 1, 2, ..., 32)::

    h^0_t = W_in z_t + b_in                                   (1x1, R channels)
    [a, g] = A_l h^{l}_{t-d_l} + B_l h^{l}_t + c_l            (kernel-2 dilated causal conv, 2R channels)
    u^l_t = tanh(a) * sigmoid(g)                              (gated activation)
    h^{l+1}_t = h^l_t + W_res,l u^l_t + b_res,l               (residual, l < L-1)
    s_t = sum_l (W_skip,l u^l_t + b_skip,l)                   (skip connections, S channels)
    y_t = W_o ReLU(W_p ReLU(s_t) + b_p) + b_o,   v_t = y_t[0]

The receptive field is ``2^L`` steps (64 ms by default). Streaming: layer l
keeps its last d_l inputs; state ``(v_prev (B,), buf_0 (B, R, 1), ...,
buf_{L-1} (B, R, 2^{L-1}))``, buffers zero and ``v_prev = v_init`` at rest.
Teacher-forced ``forward`` is one dilated ``conv1d`` per layer over the whole
sequence (left-padded by the buffers); free-running ``forward`` loops ``step``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from neurosurrogate.surrogate.architectures._layers import CausalConv1d, check_positive, teacher_features
from neurosurrogate.surrogate.base import State, Surrogate, register


@register("wavenet")
class WaveNetSurrogate(Surrogate):
    """Gated dilated causal convolutions over inputs and own previous voltage.

    Args:
        n_in: input features per step.
        n_out: outputs per step (>= 3).
        channels: residual channels R, default 32.
        skip_channels: skip channels S, default 32.
        layers: dilated layers L (dilations 1, 2, ..., 2^(L-1)), default 6.
        v_init: fed-back voltage at rest (normalised), default 0.0.
    """

    feedback = True

    def __init__(
        self, n_in: int, n_out: int, channels: int = 32, skip_channels: int = 32, layers: int = 6, v_init: float = 0.0
    ) -> None:
        super().__init__(n_in, n_out, channels=channels, skip_channels=skip_channels, layers=layers, v_init=v_init)
        check_positive(channels=channels, skip_channels=skip_channels, layers=layers)
        R, S, L = int(channels), int(skip_channels), int(layers)
        self.channels, self.skip_channels, self.layers, self.v_init = R, S, L, float(v_init)
        self.inp = CausalConv1d(self.n_in + 1, R)
        self.gate = nn.ModuleList(CausalConv1d(R, 2 * R, 2, 2**l) for l in range(L))
        self.res = nn.ModuleList(CausalConv1d(R, R) for _ in range(L - 1))
        self.skip = nn.ModuleList(CausalConv1d(R, S) for _ in range(L))
        self.post = CausalConv1d(S, S)
        self.head = CausalConv1d(S, n_out)

    @property
    def receptive_field(self) -> int:
        """Steps of input that influence an output (through the convolutions)."""
        return 2**self.layers

    def init_state(self, batch: int, device=None, dtype=None) -> State:
        ref = self._ref()
        device, dtype = device or ref.device, dtype or ref.dtype
        v_prev = torch.full((batch,), self.v_init, device=device, dtype=dtype)
        return (v_prev, *(g.init_buffer(batch, device, dtype) for g in self.gate))

    def teacher_state(self, state: State, v_prev: Tensor | None) -> State:
        if v_prev is None:
            return state
        return (v_prev.to(state[0].dtype), *state[1:])

    def _net(self, z: Tensor, bufs: tuple[Tensor, ...], mode: str) -> tuple[Tensor, list[Tensor]]:
        """z: (B, C, T) with mode 'run', or (B, C) with mode 'step'."""
        h, _ = getattr(self.inp, mode)(z, None)
        skip, new = 0.0, []
        for l in range(self.layers):
            a, buf = getattr(self.gate[l], mode)(h, bufs[l])
            new.append(buf)
            f, g = a.chunk(2, 1)
            u = torch.tanh(f) * torch.sigmoid(g)
            skip = skip + getattr(self.skip[l], mode)(u, None)[0]
            if l < self.layers - 1:
                h = h + getattr(self.res[l], mode)(u, None)[0]
        o = torch.relu(getattr(self.post, mode)(torch.relu(skip), None)[0])
        return getattr(self.head, mode)(o, None)[0], new

    def step(self, x_t: Tensor, state: State) -> tuple[Tensor, State]:
        z = torch.cat([x_t, state[0][:, None]], 1)
        y, bufs = self._net(z, state[1:], "step")
        return y, (y[:, 0], *bufs)

    def forward(self, x_seq: Tensor, state: State | None = None, v_teacher: Tensor | None = None):
        """Teacher-forced: parallel over time; free-running: the step loop."""
        if v_teacher is None or x_seq.shape[1] == 0:
            return super().forward(x_seq, state)
        if state is None:
            state = self.init_state(x_seq.shape[0], x_seq.device, x_seq.dtype)
        z = teacher_features(x_seq, state[0], v_teacher)
        y, bufs = self._net(z, state[1:], "run")
        y = y.transpose(1, 2)
        return y, (y[:, -1, 0], *bufs)

    def flops_per_step(self) -> int:
        convs = [self.inp, *self.gate, *self.res, *self.skip, self.post, self.head]
        return sum(c.flops() for c in convs)
