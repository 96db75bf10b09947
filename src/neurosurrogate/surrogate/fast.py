"""A compiled, fused streaming step for the GRU surrogate on the CPU.

At the sizes a network simulation or a parameter sweep runs per process (tens of cells), one
PyTorch step of the 2 x 64 GRU is ~30 small operations, and their dispatch costs more than their
arithmetic (~115 us for 25 cells on an AMD EPYC, ~220 us on this machine's Intel Xeon, of which the
arithmetic is a fraction). The C kernel
``kernels/gru_step.c`` does the same step in one call: the input projection touches only the
non-zero inputs (synaptic input is sparse), cells are processed in blocks that share weight loads,
and exp/tanh are vectorised.

The kernel is compiled on first use with the system C compiler (``$CC``, default ``cc``;
``-O3 -march=native``, and 512-bit vectors where the CPU has AVX-512: :func:`compile_flags`) into
``$NEUROSURROGATE_CACHE/kernels/<key>/``, where the key hashes the source, the flags, the compiler's
version and this CPU's instruction-set flags; ``neurosurrogate
build-mechanisms`` builds it too. Without a compiler, or with ``NEUROSURROGATE_FAST_STEP=0``,
:meth:`GRUSurrogate.step` keeps using PyTorch (same results to float32 rounding, slower).

:meth:`GRUSurrogate.step` checks per call that the weights are unchanged and allocates the new state
(~13-19 us, a third of a 25-cell step); :class:`FusedStepper` does both once, for the streaming loop
of a network (``neurosurrogate.surrogate.stepper.make_stepper``).

Used only where it computes exactly what PyTorch would: eval mode, no autograd, float32,
contiguous CPU tensors.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import warnings
from pathlib import Path

import numpy as np
import torch

from neurosurrogate.cache import build_once
from neurosurrogate.data.io import cpuinfo_line

SOURCE = Path(__file__).parent / "kernels" / "gru_step.c"
MAX_HIDDEN = 256  # MAXH of the kernel; hidden must also be a multiple of 16 (JB = 48 divides 3 H)
_LIB: ctypes.CDLL | None = None
_FAILED: str | None = None  # why the kernel is unavailable (reported once)
_MALLOC_TUNED = False


class KernelBuildError(RuntimeError):
    """The C compiler failed or is missing."""


def enabled() -> bool:
    """False when ``NEUROSURROGATE_FAST_STEP`` is ``0``/``false``/``no``/``off``."""
    return os.environ.get("NEUROSURROGATE_FAST_STEP", "1").strip().lower() not in ("0", "false", "no", "off")


def _compiler() -> str:
    cc = os.environ.get("CC", "cc")
    found = shutil.which(cc)
    if not found:
        raise KernelBuildError(f"no C compiler: {cc!r} not found (set CC, or NEUROSURROGATE_FAST_STEP=0)")
    return found


def _cpu_flags() -> str:
    """This CPU's instruction-set flags line (x86 ``flags``, Arm ``Features``), else ``platform.processor()``."""
    return cpuinfo_line("flags", "Features") or platform.processor()


def compile_flags() -> list[str]:
    """The compiler's options for the kernel. The kernel's register tiles are sized for 512-bit
    vectors (``JB`` in gru_step.c); GCC's tuning for Intel AVX-512 CPUs prefers 256-bit ones, which
    spills those tiles: on an Intel Xeon with AVX-512 (2.6 GHz, this machine since 2026-12) forcing
    512 bits made the 2 x 64 GRU's step 1.45x faster (2.1 -> 1.4 us per cell-step at 2,500 cells),
    as ``-march=native`` alone gave on the AMD EPYC it was first tuned on."""
    flags = ["-O3", "-march=native", "-ffast-math", "-fPIC"]
    if "avx512f" in _cpu_flags().split():
        flags.append("-mprefer-vector-width=512")
    return flags


def kernel_key(cc: str) -> str:
    """Hash of the kernel source, compiler options and version, and CPU flags (16 hex chars):
    ``-march=native`` code must never run on another CPU sharing the cache."""
    h = hashlib.sha256(SOURCE.read_bytes())
    ver = subprocess.run([cc, "--version"], capture_output=True, text=True).stdout
    for part in (ver, " ".join(compile_flags()), _cpu_flags(), platform.machine()):
        h.update(part.encode())
    return h.hexdigest()[:16]


def build_kernel(force: bool = False) -> Path:
    """Compile the kernel into the cache unless it is there; returns the shared library's path.

    Concurrent callers wait on a file lock; the library is built in a temporary folder and renamed
    into place, so an interrupted build leaves nothing half-written.

    Raises:
        KernelBuildError: no compiler, or compilation failed (its output in the message).
    """
    cc = _compiler()
    name = "libnsgru.so"

    def build(tmp: Path) -> None:
        obj = tmp / "gru_step.o"
        # -ffast-math for the vectorised expf/tanhf (glibc libmvec) when compiling only: linking
        # with it would add crtfastmath, which switches the whole process to flush-to-zero
        for cmd in ([cc, *compile_flags(), "-c", str(SOURCE), "-o", str(obj)],
                    [cc, "-shared", str(obj), "-o", str(tmp / name), "-lm"]):
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                raise KernelBuildError(f"{' '.join(cmd)} failed (exit {proc.returncode}):\n"
                                       f"{(proc.stdout + proc.stderr)[-2000:]}")

    return build_once("kernels", kernel_key(cc), lambda f: (f / name).exists(), build, force) / name


def load_kernel() -> ctypes.CDLL | None:
    """The compiled kernel (built on first call), or None if disabled or unavailable (a warning
    says why, once per process)."""
    global _LIB, _FAILED
    if not enabled() or _FAILED is not None:
        return None
    if _LIB is not None:
        return _LIB
    try:
        lib = ctypes.CDLL(str(build_kernel()))
    except (KernelBuildError, OSError) as exc:
        _FAILED = str(exc)
        warnings.warn(f"fused GRU step unavailable, using PyTorch (slower): {exc}", RuntimeWarning, stacklevel=3)
        return None
    fn = lib.ns_gru_step
    fn.restype = ctypes.c_int
    fn.argtypes = [ctypes.c_void_p, ctypes.c_int] + [ctypes.c_void_p] * 6
    fn = lib.ns_gru_sequence
    fn.restype = ctypes.c_int
    fn.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int] + [ctypes.c_void_p] * 6
    _LIB = lib
    return lib


def supported(hidden: int) -> bool:
    """Whether the kernel handles GRU layers of ``hidden`` units."""
    return 1 <= hidden <= MAX_HIDDEN and hidden % 16 == 0


def _ptr(t: torch.Tensor | None) -> int | None:
    """The data pointer of a tensor, or NULL for the absent trace state of a model without traces."""
    return None if t is None else t.data_ptr()


class _Model(ctypes.Structure):
    _fields_ = [(k, ctypes.c_int) for k in ("n_in", "H", "L", "n_out", "K")] + [
        (k, ctypes.c_void_p) for k in ("win_t", "b_in", "wih_t", "whh_t", "bih", "bhh", "wout", "b_out", "a", "m")]


def tune_malloc() -> None:
    """Keep freed memory in glibc's heap instead of returning it to the OS at once.

    Each millisecond allocates and frees the same few temporaries (the new state: 256 kB for 500
    cells; multi-MB gate activations for thousands of cells in PyTorch). With glibc's defaults, and
    much more so under Dask's worker default ``MALLOC_TRIM_THRESHOLD_=65536``, every one of them is
    a fresh ``mmap`` whose pages fault in again: measured here, a 100-circuit chunk spent 2.1 s in
    the kernel (0.3 s after this call), and Dask workers ran 4x slower. Raising the mmap and trim
    thresholds (``mallopt``) fixes both; elsewhere this does nothing.
    """
    global _MALLOC_TUNED
    if _MALLOC_TUNED:
        return
    _MALLOC_TUNED = True
    try:
        import ctypes.util

        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
        libc.mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024)  # the largest value glibc accepts
        libc.mallopt(M_TRIM_THRESHOLD, 1024 * 1024 * 1024)
    except (OSError, AttributeError):  # not glibc: nothing to tune
        pass


class FusedGRU:
    """The weights of one GRU surrogate in the kernel's layouts, and its step.

    Built from the module's parameters; :meth:`matches` tells whether they changed since.
    """

    def __init__(self, net) -> None:
        gru = net.gru
        self.H, self.L, self.n_out = net.hidden, net.layers, net.n_out
        self.n_in = net.inp.weight.shape[1]  # the input stage's features (gru_prior adds its channels to n_in)
        self._params = list(net.parameters())
        self._versions = self._now()
        f32 = lambda t: np.ascontiguousarray(t.detach().cpu().numpy(), dtype=np.float32)  # noqa: E731
        self.win_t = f32(net.inp.weight.T)
        self.b_in = f32(net.inp.bias)
        self.wih_t = np.stack([f32(getattr(gru, f"weight_ih_l{k}").T) for k in range(self.L)])
        self.whh_t = np.stack([f32(getattr(gru, f"weight_hh_l{k}").T) for k in range(self.L)])
        self.bih = np.stack([f32(getattr(gru, f"bias_ih_l{k}")) for k in range(self.L)])
        self.bhh = np.stack([f32(getattr(gru, f"bias_hh_l{k}")) for k in range(self.L)])
        self.wout = f32(net.head.weight)
        self.b_out = f32(net.head.bias)
        self.K = net.traces
        if self.K:  # decay per ms and mixing weights of the input traces
            self.a = f32(torch.exp(-1.0 / net.log_tau.detach().exp()))
            self.m = f32(net.trace_mix())
        else:
            self.a = self.m = np.zeros((1, self.H), np.float32)  # not read
        arrays = (self.win_t, self.b_in, self.wih_t, self.whh_t, self.bih, self.bhh, self.wout, self.b_out, self.a,
                  self.m)
        self._model = _Model(self.n_in, self.H, self.L, self.n_out, self.K, *(a.ctypes.data for a in arrays))
        self._ref = ctypes.byref(self._model)
        tune_malloc()

    def _now(self) -> tuple:
        return tuple((p._version, p.data_ptr()) for p in self._params)

    def matches(self) -> bool:
        """Whether the module's parameters are unchanged since they were copied (in-place updates,
        ``load_state_dict`` and optimiser steps bump their version counters)."""
        return self._versions == self._now()

    def step(self, lib: ctypes.CDLL, x: torch.Tensor, state: tuple) -> tuple[torch.Tensor, tuple]:
        """x: (n, n_in) float32 CPU; state (h,) or, with traces, (h, s) as GRUSurrogate.init_state
        -> y (n, n_out), the new state."""
        x, h = x.contiguous(), state[0].contiguous()  # bound to names: alive during the call
        h_out = torch.empty_like(h)
        y = x.new_empty((x.shape[0], self.n_out))
        s = state[1].contiguous() if self.K else None
        s_out = torch.empty_like(s) if self.K else None
        if lib.ns_gru_step(self._ref, x.shape[0], x.data_ptr(), h.data_ptr(), h_out.data_ptr(), _ptr(s), _ptr(s_out),
                           y.data_ptr()):
            raise RuntimeError(f"ns_gru_step refused hidden = {self.H}")
        return y, ((h_out, s_out) if self.K else (h_out,))

    def sequence(self, lib: ctypes.CDLL, x: torch.Tensor, state: tuple) -> tuple[torch.Tensor, tuple]:
        """x: (n, T, n_in) float32 CPU -> y (n, T, n_out), the state after the last step: the steps
        of :meth:`step` in one call (no Python between milliseconds)."""
        x = x.contiguous()
        n, T = x.shape[0], x.shape[1]
        h = state[0].clone(memory_format=torch.contiguous_format)  # updated in place by the kernel
        s = state[1].clone(memory_format=torch.contiguous_format) if self.K else None
        y = x.new_empty((n, T, self.n_out))
        h_tmp = torch.empty_like(h)
        s_tmp = torch.empty_like(s) if self.K else None
        if lib.ns_gru_sequence(self._ref, n, T, x.data_ptr(), h.data_ptr(), _ptr(s), y.data_ptr(), h_tmp.data_ptr(),
                               _ptr(s_tmp)):
            raise RuntimeError(f"ns_gru_sequence refused hidden = {self.H}")
        return y, ((h, s) if self.K else (h,))


def applies(net) -> bool:
    """Whether :class:`FusedStepper` can step ``net``: a plain GRU surrogate (subclasses change the
    step) in eval mode with float32 CPU parameters and a hidden size the kernel handles, and the
    kernel available (compiled, not disabled)."""
    from neurosurrogate.surrogate.architectures.gru import GRUSurrogate

    if type(net) is not GRUSurrogate or net.training or not supported(net.hidden):
        return False
    if any(p.dtype != torch.float32 or p.device.type != "cpu" for p in net.parameters()):
        return False
    return load_kernel() is not None


class FusedStepper:
    """Streaming steps of a GRU surrogate for a fixed number of cells through the compiled kernel.

    What :meth:`GRUSurrogate.step` does with the kernel, without its per-call costs (~13-19 µs here,
    a third of a 25-cell step): the weights are copied into the kernel's layout once, here, and each
    step writes into the stepper's own state and output buffers (two state buffers, used in turn),
    so it allocates nothing and checks only the input. The network engine steps each population
    with one of these on the CPU (:func:`neurosurrogate.surrogate.stepper.make_stepper`).

    Args:
        net: a surrogate for which :func:`applies` holds.
        batch: cells per step.
        state: the starting state (default ``net.init_state(batch)``, the model's rest): copied.

    The weights are those of construction: a later change of ``net``'s parameters is not seen (make
    a new stepper). The output of :meth:`step` and :attr:`state` are the stepper's buffers: read (or
    clone) them before the next step.
    """

    def __init__(self, net, batch: int, state: tuple | None = None) -> None:
        if not applies(net):
            raise ValueError("FusedStepper: the surrogate must be a plain GRU in eval mode with float32 CPU "
                             "parameters, and the compiled kernel available (see neurosurrogate.surrogate.fast)")
        if int(batch) < 1:
            raise ValueError(f"FusedStepper: batch must be >= 1 cells, got {batch}")
        self.net, self.batch = net, int(batch)
        self._lib = load_kernel()
        self._fused = FusedGRU(net)
        self._shape = (self.batch, self._fused.n_in)
        rest = net.init_state(self.batch, torch.device("cpu"), torch.float32)
        self._bufs = [tuple(torch.empty_like(s, memory_format=torch.contiguous_format) for s in rest)
                      for _ in range(2)]
        self.y = torch.empty(self.batch, self._fused.n_out)
        k = self._fused.K
        p = [(b[0].data_ptr(), b[1].data_ptr() if k else None) for b in self._bufs]
        # the kernel's state arguments (h_in, h_out, s_in, s_out) for a step from buffer 0 or from 1
        self._args = [(p[0][0], p[1][0], p[0][1], p[1][1]), (p[1][0], p[0][0], p[1][1], p[0][1])]
        self._cur = 0
        self.reset(state if state is not None else rest)

    @property
    def state(self) -> tuple:
        """The current state (the stepper's buffer: overwritten by the step after next)."""
        return self._bufs[self._cur]

    def reset(self, state: tuple | None = None) -> None:
        """Start again from ``state`` (default: the model's rest, ``net.init_state``)."""
        if state is None:
            state = self.net.init_state(self.batch, torch.device("cpu"), torch.float32)
        mine = self._bufs[self._cur]
        if len(state) != len(mine) or any(tuple(s.shape) != tuple(t.shape) for s, t in zip(state, mine)):
            raise ValueError(f"FusedStepper.reset: state shapes {[tuple(s.shape) for s in state]} do not match "
                             f"{[tuple(s.shape) for s in mine]}")
        with torch.no_grad():
            for t, s in zip(mine, state):
                t.copy_(s)

    def step(self, x_t: torch.Tensor) -> torch.Tensor:
        """One 1 ms step. x_t: (batch, n_in) float32 on the CPU; returns y (batch, n_out), the
        stepper's output buffer (valid until the next step)."""
        if x_t.shape != self._shape or x_t.dtype != torch.float32 or not x_t.is_cpu:
            raise ValueError(f"FusedStepper.step: input must be float32 on the CPU of shape {self._shape}, got "
                             f"{x_t.dtype} on {x_t.device} of shape {tuple(x_t.shape)}")
        if not x_t.is_contiguous():
            x_t = x_t.contiguous()
        h_in, h_out, s_in, s_out = self._args[self._cur]
        if self._lib.ns_gru_step(self._fused._ref, self.batch, x_t.data_ptr(), h_in, h_out, s_in, s_out,
                                 self.y.data_ptr()):
            raise RuntimeError(f"ns_gru_step refused hidden = {self._fused.H}")
        self._cur ^= 1
        return self.y
