"""A compiled, fused streaming step for the GRU surrogate on the CPU.

At the sizes a network simulation or a parameter sweep runs per process (tens of cells), one
PyTorch step of the 2 x 64 GRU is ~30 small operations, and their dispatch costs more than their
arithmetic (~115 us for 25 cells here, of which the arithmetic is a third). The C kernel
``kernels/gru_step.c`` does the same step in one call: the input projection touches only the
non-zero inputs (synaptic input is sparse), cells are processed in blocks that share weight loads,
and exp/tanh are vectorised.

The kernel is compiled on first use with the system C compiler (``$CC``, default ``cc``;
``-O3 -march=native``, and 512-bit vectors where the CPU has AVX-512: :func:`compile_flags`) into
``$NEUROSURROGATE_CACHE/kernels/<key>/``, where the key hashes the source, the flags, the compiler's
version and this CPU's instruction-set flags; ``neurosurrogate
build-mechanisms`` builds it too. Without a compiler, or with ``NEUROSURROGATE_FAST_STEP=0``,
:meth:`GRUSurrogate.step` keeps using PyTorch (same results to float32 rounding, slower).

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
