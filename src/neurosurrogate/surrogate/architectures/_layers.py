"""Building blocks shared by the architectures (not registered).

* :class:`CausalConv1d`: a dilated causal convolution that runs either over a
  whole sequence (``run``, one ``conv1d`` call) or one step at a time
  (``step``, one matrix-vector product), carrying the last ``span`` inputs
  in a buffer so that both modes give the same outputs.
* :class:`WindowFeedbackSurrogate`: base of the models that, like Oláh et al.
  (eLife 2022), read at every step a window of the last ``history`` inputs and
  of their own last ``history`` voltage outputs.
"""

from __future__ import annotations

import operator
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from neurosurrogate.surrogate.base import State, Surrogate


def check_positive(**sizes: Any) -> None:
    """Raise ValueError unless every given size is an int >= 1."""
    for name, value in sizes.items():
        try:
            ok = not isinstance(value, bool) and operator.index(value) >= 1
        except TypeError:
            ok = False
        if not ok:
            raise ValueError(f"{name} must be an int >= 1, got {value!r}")


class CausalConv1d(nn.Conv1d):
    """Causal dilated 1-D convolution, channels first.

    ``y_t = b + sum_{j=0}^{k-1} W[:, :, j] x_{t-(k-1-j) d}``; the buffer holds the
    ``span = (k - 1) d`` most recent inputs (zeros at rest). With ``k = 1`` it is
    a pointwise (1x1) layer and has no buffer (``None``).

    Args:
        c_in: input channels.
        c_out: output channels.
        kernel: kernel size k.
        dilation: dilation d.
    """

    def __init__(self, c_in: int, c_out: int, kernel: int = 1, dilation: int = 1) -> None:
        super().__init__(c_in, c_out, kernel, dilation=dilation)
        self.span = (kernel - 1) * dilation

    def init_buffer(self, batch: int, device=None, dtype=None) -> Tensor | None:
        """Zero buffer (B, c_in, span), or None for a pointwise layer."""
        if self.span == 0:
            return None
        return torch.zeros(batch, self.in_channels, self.span, device=device, dtype=dtype)

    def run(self, x: Tensor, buf: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """Sequence mode: x (B, c_in, T) -> y (B, c_out, T), new buffer."""
        if self.span == 0:
            return F.conv1d(x, self.weight, self.bias), None
        full = torch.cat([buf, x], -1)
        y = F.conv1d(full, self.weight, self.bias, dilation=self.dilation)
        return y, full[..., full.shape[-1] - self.span :]

    def step(self, x_t: Tensor, buf: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """Step mode: x_t (B, c_in) -> y_t (B, c_out), new buffer."""
        w = self.weight.reshape(self.out_channels, -1)
        if self.span == 0:
            return F.linear(x_t, w, self.bias), None
        full = torch.cat([buf, x_t[..., None]], -1)  # (B, c_in, span + 1)
        taps = full[..., :: self.dilation[0]]  # (B, c_in, k), oldest first
        return F.linear(taps.reshape(x_t.shape[0], -1), w, self.bias), full[..., 1:]

    def flops(self) -> int:
        """2 x multiply-adds per output step."""
        return 2 * self.in_channels * self.out_channels * self.kernel_size[0]


def teacher_features(x_seq: Tensor, v_last: Tensor, v_teacher: Tensor) -> Tensor:
    """Per-step features ``[x_t, v_{t-1}]`` of a teacher-forced sequence, channels first.

    Args:
        x_seq: (B, T, n_in) inputs.
        v_last: (B,) the voltage fed back at the first step (from the state).
        v_teacher: (B, T) true voltages; ``v_teacher[:, t-1]`` is fed at step t.

    Returns:
        (B, n_in + 1, T).
    """
    T = x_seq.shape[1]
    v_seq = torch.cat([v_last[:, None], v_teacher[:, : T - 1].to(v_last.dtype)], 1)
    return torch.cat([x_seq, v_seq[..., None]], 2).transpose(1, 2)


class WindowFeedbackSurrogate(Surrogate):
    """Base for models that re-read a window of inputs and of their own past voltage.

    At step t the window holds, for tau = t-H+1 .. t, the feature vector
    ``[x_tau, v_{tau-1}]`` (``C = n_in + 1`` channels, oldest first), where
    ``v`` is the model's own voltage output (channel 0), or the teacher
    voltage during teacher forcing. State: ``(x_buf (B, H, n_in), v_buf (B, H))``
    = the last H inputs and the last H voltages; at rest ``x_buf = 0`` and
    ``v_buf = v_init``.

    Subclasses implement :meth:`_apply_window`, and may override
    :meth:`_apply_seq` with a cheaper parallel version.
    """

    feedback = True

    def __init__(self, n_in: int, n_out: int, history: int, v_init: float, **config: Any) -> None:
        super().__init__(n_in, n_out, history=history, v_init=v_init, **config)
        check_positive(history=history)
        self.history, self.v_init = int(history), float(v_init)
        self.n_feat = self.n_in + 1

    def init_state(self, batch: int, device=None, dtype=None) -> State:
        ref = self._ref()
        device, dtype = device or ref.device, dtype or ref.dtype
        x_buf = torch.zeros(batch, self.history, self.n_in, device=device, dtype=dtype)
        v_buf = torch.full((batch, self.history), self.v_init, device=device, dtype=dtype)
        return x_buf, v_buf

    def teacher_state(self, state: State, v_prev: Tensor | None) -> State:
        if v_prev is None:
            return state
        x_buf, v_buf = state
        return x_buf, torch.cat([v_buf[:, :-1], v_prev[:, None].to(v_buf.dtype)], 1)

    def step(self, x_t: Tensor, state: State) -> tuple[Tensor, State]:
        x_buf, v_buf = state
        xw = torch.cat([x_buf[:, 1:], x_t[:, None]], 1)  # (B, H, n_in)
        win = torch.cat([xw, v_buf[..., None]], 2).transpose(1, 2)  # (B, C, H)
        y = self._apply_window(win)
        return y, (xw, torch.cat([v_buf[:, 1:], y[:, :1]], 1))

    def forward(self, x_seq: Tensor, state: State | None = None, v_teacher: Tensor | None = None):
        """Teacher-forced: all windows at once; free-running: the step loop."""
        if v_teacher is None or x_seq.shape[1] == 0:
            return super().forward(x_seq, state)
        if state is None:
            state = self.init_state(x_seq.shape[0], x_seq.device, x_seq.dtype)
        x_buf, v_buf = state
        T, H = x_seq.shape[1], self.history
        xs = torch.cat([x_buf[:, 1:], x_seq], 1)  # (B, H-1+T, n_in)
        vs = torch.cat([v_buf, v_teacher[:, : T - 1].to(v_buf.dtype)], 1)  # (B, H-1+T)
        z = torch.cat([xs, vs[..., None]], 2).transpose(1, 2)  # (B, C, H-1+T)
        y = self._apply_seq(z)  # (B, T, n_out)
        return y, (xs[:, -H:], torch.cat([vs[:, T:], y[:, -1, :1]], 1))

    def _apply_window(self, win: Tensor) -> Tensor:
        """One window per row: win (N, C, H) -> (N, n_out)."""
        raise NotImplementedError

    def _apply_seq(self, z: Tensor) -> Tensor:
        """All T windows of z (B, C, H-1+T) -> (B, T, n_out). Default: unfold + _apply_window."""
        B, C, _ = z.shape
        wins = z.unfold(2, self.history, 1)  # (B, C, T, H)
        T = wins.shape[2]
        y = self._apply_window(wins.permute(0, 2, 1, 3).reshape(B * T, C, self.history))
        return y.reshape(B, T, -1)


class FilteredWindowSurrogate(WindowFeedbackSurrogate):
    """Window model whose first layer is a linear filter over the whole window.

    ``h_t = b + sum_{c, j} W[:, c, j] window_t[c, j]`` (``units`` outputs), then a
    pointwise map :meth:`_post` (identity for the linear model). The filter is a
    ``conv1d`` of kernel H, so teacher-forced sequences cost one convolution.
    """

    def __init__(self, n_in: int, n_out: int, history: int, v_init: float, units: int, **config: Any) -> None:
        super().__init__(n_in, n_out, history, v_init, **config)
        self.filt = nn.Conv1d(self.n_feat, units, history)

    def _post(self, h: Tensor) -> Tensor:
        return h

    def _apply_window(self, win: Tensor) -> Tensor:
        w = self.filt.weight.reshape(self.filt.out_channels, -1)
        return self._post(F.linear(win.reshape(win.shape[0], -1), w, self.filt.bias))

    def _apply_seq(self, z: Tensor) -> Tensor:
        return self._post(self.filt(z).transpose(1, 2))

    def _filter_flops(self) -> int:
        return 2 * self.filt.out_channels * self.n_feat * self.history
