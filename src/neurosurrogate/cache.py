"""Where compiled artefacts live: NEURON mechanisms and the fused surrogate kernel."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """Root folder of the neurosurrogate cache (env ``NEUROSURROGATE_CACHE``, default
    ``~/.cache/neurosurrogate``)."""
    env = os.environ.get("NEUROSURROGATE_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "neurosurrogate"
