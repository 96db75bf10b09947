"""The streaming surrogate protocol.

A surrogate maps, one 1 ms step at a time, the synaptic input features of a
cell to its outputs, carrying its own state::

    state = model.init_state(batch)                 # the model's resting state
    y_t, state = model.step(x_t, state)             # x_t: (B, n_in) -> y_t: (B, n_out)
    y_seq, state = model(x_seq, state)              # x_seq: (B, T, n_in) -> (B, T, n_out)

``forward`` equals repeated ``step`` (tested for every architecture), and a
surrogate starts from ``init_state``: no ground-truth window is needed.

Inputs and outputs are normalised (see :mod:`neurosurrogate.surrogate.model`
for the encoding). Output channels, in order:

* ``0``: membrane potential (normalised);
* ``1``: spike logit (a spike starts in this millisecond);
* ``2``: spike sub-millisecond offset logit (sigmoid -> fraction of the ms);
* ``3..``: optional extra targets (INa, IK, normalised).

Models with voltage feedback (the paper's architectures) feed their own
previous voltage output back as an input; they keep it in their state. For
training they accept ``v_teacher`` (B, T) in ``forward``: the true previous
voltage is then used instead (teacher forcing), which is how the paper
trained them.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import Tensor, nn

State = tuple[Tensor, ...]

REGISTRY: dict[str, Callable[..., "Surrogate"]] = {}


def register(name: str):
    """Class decorator: make an architecture available by name to configs and the CLI."""

    def deco(cls):
        if name in REGISTRY:
            raise ValueError(f"architecture {name!r} registered twice")
        REGISTRY[name] = cls
        cls.arch_name = name
        return cls

    return deco


def build(name: str, n_in: int, n_out: int, **params: Any) -> "Surrogate":
    """Instantiate a registered architecture."""
    from neurosurrogate.surrogate import architectures  # noqa: F401  (fills the registry)

    if name not in REGISTRY:
        raise ValueError(f"unknown architecture {name!r}; expected one of {sorted(REGISTRY)}")
    try:
        return REGISTRY[name](n_in=n_in, n_out=n_out, **params)
    except TypeError as exc:
        raise ValueError(f"architecture {name!r}: {exc}") from None


class Surrogate(nn.Module):
    """Base class. Subclasses implement ``init_state`` and ``step``; may override ``forward``.

    Attributes:
        n_in: input features per step.
        n_out: outputs per step.
        feedback: True if the model feeds back its own voltage output.
        config: the keyword arguments the model was built with (stored in model files).
    """

    arch_name = "base"
    feedback = False

    def __init__(self, n_in: int, n_out: int, **config: Any) -> None:
        super().__init__()
        if n_in < 1 or n_out < 3:
            raise ValueError(f"need n_in >= 1 and n_out >= 3, got {n_in}, {n_out}")
        self.n_in, self.n_out = int(n_in), int(n_out)
        self.config = dict(config)

    def _ref(self) -> Tensor:
        return next(self.parameters())

    def init_state(self, batch: int, device=None, dtype=None) -> State:
        """The model's resting state for ``batch`` cells."""
        raise NotImplementedError

    def step(self, x_t: Tensor, state: State) -> tuple[Tensor, State]:
        """One 1 ms step. x_t: (B, n_in) float; returns y_t (B, n_out) and the new state."""
        raise NotImplementedError

    def forward(self, x_seq: Tensor, state: State | None = None, v_teacher: Tensor | None = None):
        """Run over a sequence. x_seq: (B, T, n_in); v_teacher: (B, T) or None.

        The default loops over :meth:`step`; architectures override it with a
        parallel implementation where one exists.
        """
        if state is None:
            state = self.init_state(x_seq.shape[0], x_seq.device, x_seq.dtype)
        ys = []
        for t in range(x_seq.shape[1]):
            if v_teacher is not None and self.feedback:
                state = self.teacher_state(state, v_teacher[:, t - 1] if t > 0 else None)
            y, state = self.step(x_seq[:, t], state)
            ys.append(y)
        return torch.stack(ys, 1), state

    def teacher_state(self, state: State, v_prev: Tensor | None) -> State:
        """Replace the fed-back previous voltage in ``state`` by ``v_prev`` (feedback models)."""
        return state

    def flops_per_step(self) -> int:
        """Multiply-adds x 2 per cell per 1 ms step (streaming), counted from layer shapes."""
        raise NotImplementedError
