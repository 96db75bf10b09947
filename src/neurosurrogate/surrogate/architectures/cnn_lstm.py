"""CNN-LSTM feedback surrogates (Oláh, Pedersen & Rowan, eLife 2022: "CNN-LSTM").

Both read the per-step features ``z_t = [x_t, v_{t-1}]`` (n_in + 1 channels;
``v`` is the model's own voltage output, or the teacher voltage in training).

``"cnn-lstm"`` (streaming; one cheap step per ms). With F conv channels,
kernel k, M conv layers and an LSTM of N units::

    c^0_t = z_t
    c^m_t = ReLU(b_m + sum_{j=0}^{k-1} W_{m,j} c^{m-1}_{t-k+1+j}),   m = 1..M   (causal convs)
    (h_t, s_t) = LSTM(c^M_t, (h_{t-1}, s_{t-1}))
    y_t = W_o h_t + b_o,   v_t = y_t[0]

State ``(v_prev (B,), conv buffers (B, ., k-1) x M, h (1, B, N), s (1, B, N))``,
zeros and ``v_prev = v_init`` at rest. Teacher-forced ``forward`` runs the
convolutions and the LSTM over the whole sequence; free-running loops ``step``.

``"cnn-lstm-windowed"`` (the paper's reference mode): at every step it re-reads
the whole window of the last H = 64 features ``Z_t = [z_{t-H+1}, ..., z_t]``::

    C^m = ReLU(CausalConv_m(C^{m-1})),  C^0 = Z_t          (over the H window positions)
    d = ReLU(W_d flatten(C^M) + b_d)                       (Dense, D units)
    (h_i, s_i) = LSTM(d, (h_{i-1}, s_{i-1})),  i = 1..H    (RepeatVector(H): the same d at every position)
    y_t = W_o h_H + b_o,   v_t = y_t[0]

Its state is only the two window buffers ``(x_buf (B, H, n_in), v_buf (B, H))``;
each step redoes the convolutions and the H LSTM steps, so it costs tens of
times more than the streaming version. Teacher-forced ``forward`` evaluates all
T windows as one batch; free-running ``forward`` loops ``step``. Default sizes
are small; the constructor takes the paper's larger ones.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from neurosurrogate.surrogate.architectures._layers import (
    CausalConv1d,
    WindowFeedbackSurrogate,
    check_positive,
    teacher_features,
)
from neurosurrogate.surrogate.base import State, Surrogate, register


def _lstm_flops(n_in: int, hidden: int, layers: int) -> int:
    """2 x multiply-adds of one step of a stacked LSTM (4 gates, input and recurrent matrices)."""
    return sum(2 * 4 * hidden * ((n_in if l == 0 else hidden) + hidden) for l in range(layers))


@register("cnn-lstm")
class CNNLSTMSurrogate(Surrogate):
    """Streaming causal convolutions over ``[x_t, v_{t-1}]``, then an LSTM and a linear head.

    Args:
        n_in: input features per step.
        n_out: outputs per step (>= 3).
        conv_channels: channels F per conv layer, default 32.
        kernel: conv kernel size k (steps), default 3.
        conv_layers: conv layers M, default 2.
        hidden: LSTM units N, default 64.
        lstm_layers: stacked LSTM layers, default 1.
        v_init: fed-back voltage at rest (normalised), default 0.0.
    """

    feedback = True

    def __init__(
        self,
        n_in: int,
        n_out: int,
        conv_channels: int = 32,
        kernel: int = 3,
        conv_layers: int = 2,
        hidden: int = 64,
        lstm_layers: int = 1,
        v_init: float = 0.0,
    ) -> None:
        super().__init__(
            n_in, n_out, conv_channels=conv_channels, kernel=kernel, conv_layers=conv_layers,
            hidden=hidden, lstm_layers=lstm_layers, v_init=v_init,
        )  # fmt: skip
        check_positive(
            conv_channels=conv_channels, kernel=kernel, conv_layers=conv_layers, hidden=hidden, lstm_layers=lstm_layers
        )
        self.conv_channels, self.kernel, self.conv_layers = int(conv_channels), int(kernel), int(conv_layers)
        self.hidden, self.lstm_layers, self.v_init = int(hidden), int(lstm_layers), float(v_init)
        Fc = self.conv_channels
        self.convs = nn.ModuleList(
            CausalConv1d(self.n_in + 1 if m == 0 else Fc, Fc, self.kernel) for m in range(self.conv_layers)
        )
        self.lstm = nn.LSTM(Fc, self.hidden, num_layers=self.lstm_layers, batch_first=True)
        self.head = nn.Linear(self.hidden, n_out)

    def init_state(self, batch: int, device=None, dtype=None) -> State:
        ref = self._ref()
        device, dtype = device or ref.device, dtype or ref.dtype
        v_prev = torch.full((batch,), self.v_init, device=device, dtype=dtype)
        bufs = [c.init_buffer(batch, device, dtype) for c in self.convs] if self.kernel > 1 else []
        h = torch.zeros(self.lstm_layers, batch, self.hidden, device=device, dtype=dtype)
        return (v_prev, *bufs, h, torch.zeros_like(h))

    def teacher_state(self, state: State, v_prev: Tensor | None) -> State:
        if v_prev is None:
            return state
        return (v_prev.to(state[0].dtype), *state[1:])

    def _convs(self, z: Tensor, bufs: State, mode: str) -> tuple[Tensor, list]:
        new = []
        for m, conv in enumerate(self.convs):
            z, b = getattr(conv, mode)(z, bufs[m] if self.kernel > 1 else None)
            z = torch.relu(z)
            if self.kernel > 1:
                new.append(b)
        return z, new

    def step(self, x_t: Tensor, state: State) -> tuple[Tensor, State]:
        z = torch.cat([x_t, state[0][:, None]], 1)
        c, bufs = self._convs(z, state[1:-2], "step")
        out, (h, s) = self.lstm(c[:, None], (state[-2], state[-1]))
        y = self.head(out[:, 0])
        return y, (y[:, 0], *bufs, h, s)

    def forward(self, x_seq: Tensor, state: State | None = None, v_teacher: Tensor | None = None):
        """Teacher-forced: parallel convolutions + one LSTM call; free-running: the step loop."""
        if v_teacher is None or x_seq.shape[1] == 0:
            return super().forward(x_seq, state)
        if state is None:
            state = self.init_state(x_seq.shape[0], x_seq.device, x_seq.dtype)
        z = teacher_features(x_seq, state[0], v_teacher)
        c, bufs = self._convs(z, state[1:-2], "run")
        out, (h, s) = self.lstm(c.transpose(1, 2), (state[-2], state[-1]))
        y = self.head(out)
        return y, (y[:, -1, 0], *bufs, h, s)

    def flops_per_step(self) -> int:
        convs = sum(c.flops() for c in self.convs)
        return convs + _lstm_flops(self.conv_channels, self.hidden, self.lstm_layers) + 2 * self.hidden * self.n_out


@register("cnn-lstm-windowed")
class WindowedCNNLSTMSurrogate(WindowFeedbackSurrogate):
    """The paper's CNN-LSTM: convs over the whole window, Dense, RepeatVector(H), LSTM, head.

    Args:
        n_in: input features per step.
        n_out: outputs per step (>= 3).
        history: window length H in steps (ms), default 64.
        conv_channels: channels F per conv layer, default 16.
        kernel: conv kernel size k, default 3.
        conv_layers: conv layers M, default 2.
        dense: units D of the Dense layer after flattening, default 32.
        hidden: LSTM units N, default 32.
        lstm_layers: stacked LSTM layers, default 1.
        v_init: fed-back voltage at rest (normalised), default 0.0.
    """

    def __init__(
        self,
        n_in: int,
        n_out: int,
        history: int = 64,
        conv_channels: int = 16,
        kernel: int = 3,
        conv_layers: int = 2,
        dense: int = 32,
        hidden: int = 32,
        lstm_layers: int = 1,
        v_init: float = 0.0,
    ) -> None:
        check_positive(
            conv_channels=conv_channels, kernel=kernel, conv_layers=conv_layers, dense=dense, hidden=hidden,
            lstm_layers=lstm_layers,
        )  # fmt: skip
        super().__init__(
            n_in, n_out, history, v_init, conv_channels=conv_channels, kernel=kernel, conv_layers=conv_layers,
            dense=dense, hidden=hidden, lstm_layers=lstm_layers,
        )  # fmt: skip
        self.conv_channels, self.kernel, self.conv_layers = int(conv_channels), int(kernel), int(conv_layers)
        self.dense, self.hidden, self.lstm_layers = int(dense), int(hidden), int(lstm_layers)
        Fc, H = self.conv_channels, self.history
        self.convs = nn.ModuleList(
            nn.Conv1d(self.n_feat if m == 0 else Fc, Fc, self.kernel) for m in range(self.conv_layers)
        )
        self.fc = nn.Linear(Fc * H, self.dense)
        self.lstm = nn.LSTM(self.dense, self.hidden, num_layers=self.lstm_layers, batch_first=True)
        self.head = nn.Linear(self.hidden, n_out)

    def _apply_window(self, win: Tensor) -> Tensor:
        c = win
        for conv in self.convs:  # causal ('causal' padding in Keras): length stays H
            c = torch.relu(conv(F.pad(c, (self.kernel - 1, 0))))
        d = torch.relu(self.fc(c.flatten(1)))  # (N, D)
        rep = d[:, None, :].expand(-1, self.history, -1).contiguous()  # RepeatVector(H)
        _, (h, _) = self.lstm(rep)
        return self.head(h[-1])

    def flops_per_step(self) -> int:
        H, Fc, k = self.history, self.conv_channels, self.kernel
        convs = sum(2 * H * c.in_channels * Fc * k for c in self.convs)
        return (
            convs
            + 2 * Fc * H * self.dense
            + H * _lstm_flops(self.dense, self.hidden, self.lstm_layers)
            + 2 * self.hidden * self.n_out
        )
