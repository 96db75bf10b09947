"""Compile and load the project's NEURON mechanisms (NMODL files).

The ``.mod`` files in ``biophys/mechanisms`` are compiled with NEURON's
``nrnivmodl`` into a cache folder keyed by a hash of the mod files' contents
and the NEURON version, so a change of either triggers a fresh build and
two installs never share a stale library. Nothing is compiled at import
time: :func:`build_mechanisms` is called by the set-up (``neurosurrogate
build-mechanisms``) and, if the cache is missing, on first use by
:func:`load_mechanisms`.

Cache location: ``$NEUROSURROGATE_CACHE/mechanisms/<key>`` (default
``~/.cache/neurosurrogate``).
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from neurosurrogate.cache import build_once

MOD_DIR = Path(__file__).parent / "mechanisms"
_LOADED: set[str] = set()


class MechanismBuildError(RuntimeError):
    """nrnivmodl failed or its output library is missing."""


def neuron_version() -> str:
    """Installed NEURON version, read from package metadata (no import of neuron)."""
    for name in ("neuron", "NEURON", "neuron-nightly"):
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    raise MechanismBuildError("NEURON is not installed: pip install neuron")


def mod_files(mod_dir: Path = MOD_DIR) -> list[Path]:
    """Sorted list of the ``.mod`` files to compile."""
    return sorted(mod_dir.glob("*.mod"))


def mechanisms_key(mod_dir: Path = MOD_DIR) -> str:
    """Hash of the mod files' names and contents plus the NEURON version (16 hex chars)."""
    h = hashlib.sha256()
    h.update(neuron_version().encode())
    for f in mod_files(mod_dir):
        h.update(f.name.encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


def _library_in(folder: Path) -> Path | None:
    for cand in sorted(folder.glob("*/libnrnmech.so")) + sorted(folder.glob("*/.libs/libnrnmech.so")):
        return cand
    return None


def _nrnivmodl() -> str:
    exe = Path(sys.executable).parent / "nrnivmodl"
    if exe.exists():
        return str(exe)
    found = shutil.which("nrnivmodl")
    if not found:
        raise MechanismBuildError("nrnivmodl not found: is NEURON installed in this environment?")
    return found


def build_mechanisms(force: bool = False, verbose: bool = False, mod_dir: Path = MOD_DIR) -> Path:
    """Compile the mod files into the cache unless an up-to-date build exists.

    Safe against concurrent callers (a file lock) and interruption (the
    build happens in a temporary folder that is renamed into place).

    Returns:
        The cache folder that holds ``<arch>/libnrnmech.so``.
    """

    def build(tmp: Path) -> None:
        for f in mod_files(mod_dir):
            shutil.copy2(f, tmp / f.name)
        proc = subprocess.run([_nrnivmodl()] + [f.name for f in mod_files(mod_dir)], cwd=tmp, capture_output=True,
                              text=True)
        if verbose or proc.returncode != 0:
            sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-4000:])
        if proc.returncode != 0 or _library_in(tmp) is None:
            raise MechanismBuildError(f"nrnivmodl failed in {tmp} (exit {proc.returncode})")

    return build_once("mechanisms", mechanisms_key(mod_dir), lambda f: _library_in(f) is not None, build, force)


def load_mechanisms() -> Path:
    """Load the compiled mechanisms into this process (building them if missing).

    Idempotent: a second call in the same process does nothing.
    """
    folder = build_mechanisms()
    lib = _library_in(folder)
    if str(lib) in _LOADED:
        return folder
    from neuron import h  # the biophys package is the only door to NEURON

    if not hasattr(h, "AlphaSynEv"):
        h.nrn_load_dll(str(lib))
    _LOADED.add(str(lib))
    return folder
