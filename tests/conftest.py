"""Shared fixtures. NEURON keeps global state, so NEURON cases run in fresh
worker processes (see ``in_fresh_process``)."""

from __future__ import annotations

import multiprocessing as mp
import os
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).parent
REPO = TESTS.parent
SHARED = REPO.parent / "shared"
sys.path.insert(0, str(TESTS))
os.environ.setdefault("NEURON_MODULE_OPTIONS", "-nogui")


def load_module(relpath: str):
    """A script of the repository (``scripts/`` or ``benchmarks/``, not packages) imported as a module;
    ``relpath`` relative to the repository root."""
    import importlib.util

    path = REPO / relpath
    spec = importlib.util.spec_from_file_location(path.stem, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def in_fresh_process(func, *args, **kwargs):
    """Run ``func(*args, **kwargs)`` in a new spawned process and return its result."""
    ctx = mp.get_context("spawn")
    with ctx.Pool(1) as pool:
        return pool.apply(func, args, kwargs)


@pytest.fixture
def run_neuron():
    return in_fresh_process


def cli(*args: str, cwd: Path | None = None, timeout: float = 600):
    """Run the installed console command; returns CompletedProcess (text)."""
    import subprocess

    exe = Path(sys.executable).parent / "neurosurrogate"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "neurosurrogate.cli"]
    return subprocess.run(cmd + list(args), capture_output=True, text=True, cwd=cwd, timeout=timeout)


def pytest_collection_modifyitems(config, items):
    """Tests marked gpu are skipped (with the reason shown) where torch sees no CUDA device."""
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:  # pragma: no cover
        has_cuda = False
    if has_cuda:
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
