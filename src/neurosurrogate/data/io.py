"""Atomic file writes and provenance records."""

from __future__ import annotations

import contextlib
import os
import platform
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only on success.

    A reader never sees a half-written file: either the old file or the
    complete new one. The parent folder is created if needed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_path, 0o666 & ~umask)  # mkstemp makes 0600; give the usual permissions
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_json(path: str | Path, obj, indent: int | None = 1) -> Path:
    """Write ``obj`` as strict JSON, atomically: NaN and infinite floats (numpy ones too) become
    ``null``, which every JSON reader accepts (Python's default ``NaN`` is not JSON); numpy
    scalars and arrays become numbers and lists."""
    import json
    import math

    import numpy as np

    def clean(x):
        if isinstance(x, dict):
            return {str(k): clean(v) for k, v in x.items()}
        if isinstance(x, (list, tuple, np.ndarray)):
            return [clean(v) for v in (x.tolist() if isinstance(x, np.ndarray) else x)]
        if isinstance(x, (np.floating, np.integer, np.bool_)):
            x = x.item()
        if isinstance(x, float) and not math.isfinite(x):
            return None
        return x

    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(clean(obj), indent=indent, allow_nan=False) + "\n")
    return Path(path)


def git_commit() -> str:
    """The commit of the source tree this package runs from, or 'unknown'."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5
        )
        if out.returncode == 0:
            commit = out.stdout.strip()
            dirty = subprocess.run(
                ["git", "status", "--porcelain", "--untracked-files=no"],
                cwd=here, capture_output=True, text=True, timeout=5,
            ).stdout.strip()
            return commit + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        pass
    return "unknown"


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def cpuinfo_line(*prefixes: str) -> str | None:
    """The first line of /proc/cpuinfo that starts with one of ``prefixes``, or None (no such line, or no
    /proc/cpuinfo: not Linux)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(prefixes):
                return line
    except OSError:
        pass
    return None


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo; else ``platform.processor()``): timings and compiled kernels
    depend on it, and a shared machine's CPU can change between runs."""
    line = cpuinfo_line("model name")
    return line.split(":", 1)[1].strip() if line else (platform.processor() or "unknown")


def provenance() -> dict[str, str]:
    """Versions and origin of the code that produced a file."""
    return {
        "neurosurrogate_version": _version("neurosurrogate"),
        "git_commit": git_commit(),
        "python_version": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "neuron_version": _version("neuron"),
        "numpy_version": _version("numpy"),
        "torch_version": _version("torch"),
        "h5py_version": _version("h5py"),
    }


def read_toml(path: str | Path, what: str, error: type[Exception] = ValueError) -> dict:
    """Parse a TOML file; a missing file or bad TOML raises ``error`` naming ``what`` and the path."""
    import tomllib

    path = Path(path)
    try:
        return tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise error(f"{what} {path}: no such file") from None
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{what} {path}: not valid TOML ({exc})") from None
