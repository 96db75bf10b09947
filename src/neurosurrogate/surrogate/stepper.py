"""One streaming stepper per population: the fastest way this machine has to step a surrogate.

A network steps each population's surrogate once per millisecond for the whole simulation, with
the same batch, weights and device throughout. :func:`make_stepper` picks, for that use:

* on a CUDA device, the step replayed from a CUDA graph (:class:`~neurosurrogate.surrogate.graph.GraphStepper`),
  unless ``cuda_graph`` is False or ``NEUROSURROGATE_CUDA_GRAPH=0``;
* on the CPU, for a GRU surrogate in float32, the compiled kernel with preallocated buffers
  (:class:`~neurosurrogate.surrogate.fast.FusedStepper`), unless the kernel is unavailable or
  ``NEUROSURROGATE_FAST_STEP=0``;
* otherwise the model's own ``step`` (:class:`TorchStepper`).

All three have the same interface and compute the same arithmetic as ``net.step``:

    stepper = make_stepper(model.net, batch=150, device="cpu")
    for x_t in x:                     # (T, batch, n_in)
        y = stepper.step(x_t)         # (batch, n_out): read before the next step
    stepper.state                     # the state after the last step
    stepper.reset()                   # back to the model's rest
"""

from __future__ import annotations

import torch
from torch import Tensor

from neurosurrogate.surrogate import fast
from neurosurrogate.surrogate.base import State, Surrogate
from neurosurrogate.surrogate.graph import GraphStepper
from neurosurrogate.surrogate.graph import enabled as graph_enabled


class TorchStepper:
    """Streaming steps with the model's own :meth:`~Surrogate.step` (without autograd), keeping the state.

    Args: as :func:`make_stepper`.
    """

    def __init__(self, net: Surrogate, batch: int, device=None, dtype: torch.dtype | None = None,
                 state: State | None = None) -> None:
        if int(batch) < 1:
            raise ValueError(f"TorchStepper: batch must be >= 1 cells, got {batch}")
        ref = next(net.parameters())
        self.net, self.batch = net, int(batch)
        self.device, self.dtype = torch.device(device) if device is not None else ref.device, dtype or ref.dtype
        self.state: State = ()
        self.reset(state)

    def reset(self, state: State | None = None) -> None:
        """Start again from ``state`` (default: the model's rest, ``net.init_state``)."""
        self.state = tuple(state) if state is not None else self.net.init_state(self.batch, self.device, self.dtype)

    def step(self, x_t: Tensor) -> Tensor:
        """One 1 ms step. x_t: (batch, n_in); returns y (batch, n_out)."""
        with torch.no_grad():
            y, self.state = self.net.step(x_t, self.state)
        return y


def make_stepper(net: Surrogate, batch: int, device=None, dtype: torch.dtype | None = None,
                 state: State | None = None, cuda_graph: bool | None = None):
    """The stepper for ``batch`` cells of ``net`` on ``device`` (see the module's docstring).

    Args:
        net: a surrogate in eval mode, its parameters on ``device``.
        batch: cells per step (fixed).
        device: default: the parameters' device.
        dtype: the state's and input's float type (default: the parameters').
        state: the starting state (default: the model's rest).
        cuda_graph: on CUDA, replay from a graph (None: unless ``NEUROSURROGATE_CUDA_GRAPH=0``).

    Returns a :class:`GraphStepper`, :class:`~neurosurrogate.surrogate.fast.FusedStepper` or
    :class:`TorchStepper`; the weights are read when it is made (make a new one after changing them).
    """
    ref = next(net.parameters())
    dev = torch.device(device) if device is not None else ref.device
    dtype = dtype or ref.dtype
    if dev.type == "cuda":
        if graph_enabled() if cuda_graph is None else cuda_graph:
            return GraphStepper(net, batch, dev, dtype, state)
    elif dev.type == "cpu" and dtype == torch.float32 and fast.applies(net):
        return fast.FusedStepper(net, batch, state)
    return TorchStepper(net, batch, dev, dtype, state)
