"""Where compiled artefacts live (NEURON mechanisms, the fused surrogate kernel), and how they are built
into it: once per content key, safe against concurrent callers and interruption."""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable


def cache_root() -> Path:
    """Root folder of the neurosurrogate cache (env ``NEUROSURROGATE_CACHE``, default
    ``~/.cache/neurosurrogate``)."""
    env = os.environ.get("NEUROSURROGATE_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "neurosurrogate"


def build_once(kind: str, key: str, ready: Callable[[Path], bool], build: Callable[[Path], None],
               force: bool = False) -> Path:
    """The folder ``cache_root()/kind/key`` holding a finished build, building it if needed.

    ``ready(folder)`` tells whether a folder holds a finished build; ``build(tmp)`` builds into an
    empty temporary folder (and raises on failure). Concurrent callers wait on a file lock; the
    temporary folder is renamed into place only after ``build`` returns, so an interrupted or failed
    build leaves nothing half-written. ``force`` rebuilds even if a finished build exists.
    """
    root = cache_root() / kind
    root.mkdir(parents=True, exist_ok=True)
    target = root / key
    with open(root / f".{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if target.exists() and not force and ready(target):
            return target
        tmp = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=root))
        try:
            build(tmp)
            if target.exists():
                shutil.rmtree(target)
            os.replace(tmp, target)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return target
