"""Linear feedback surrogate (Oláh, Pedersen & Rowan, eLife 2022: "linear").

At step t the model reads the last H (default 64) input vectors and its own
last H voltage outputs::

    f_t = [x_{t-H+1}, v_{t-H}, x_{t-H+2}, v_{t-H+1}, ..., x_t, v_{t-1}]   (H (n_in + 1) features)
    y_t = W f_t + b                                                       (n_out outputs)
    v_t = y_t[0]                                                          (fed back)

The voltage history starts at ``v_init`` (0.0: rest in normalised units), the
input history at 0. State: ``(x_buf (B, H, n_in), v_buf (B, H))``. With
``v_teacher`` the true previous voltage replaces the fed-back one and all T
outputs are one ``conv1d`` (kernel H); free-running ``forward`` loops ``step``.
"""

from __future__ import annotations

from neurosurrogate.surrogate.architectures._layers import FilteredWindowSurrogate
from neurosurrogate.surrogate.base import register


@register("linear")
class LinearSurrogate(FilteredWindowSurrogate):
    """Linear filter over a window of inputs and own past voltages.

    Args:
        n_in: input features per step.
        n_out: outputs per step (>= 3).
        history: window length H in steps (ms), default 64.
        v_init: fed-back voltage at rest (normalised), default 0.0.
    """

    def __init__(self, n_in: int, n_out: int, history: int = 64, v_init: float = 0.0) -> None:
        super().__init__(n_in, n_out, history, v_init, units=n_out)

    def flops_per_step(self) -> int:
        return self._filter_flops()
