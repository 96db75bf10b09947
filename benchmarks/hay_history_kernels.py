"""Plot the learned post-spike kernels of gru_history models (experiment hay_history).

    python benchmarks/hay_history_kernels.py MODEL_DIR [MODEL_DIR ...] --out kernels.png

For each model: what one of its own spikes adds to the spike logit and to the soma voltage (mV),
by lag after the spike's bin (ms); also printed as a table.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("models", nargs="+", help="gru_history model folders (or shipped names)")
    ap.add_argument("--out", required=True, help="PNG to write")
    args = ap.parse_args(argv)
    from neurosurrogate.plotting import plot_history_kernels
    from neurosurrogate.surrogate.model import SurrogateModel

    lags = np.arange(0.0, 151.0)
    curves = []  # (label, spike-logit kernel, soma-voltage kernel in mV)
    for path in args.models:
        try:
            m = SurrogateModel.load(path)
        except (OSError, ValueError) as exc:
            print(f"error: {path}: {exc}", file=sys.stderr)
            return 2
        if not hasattr(m.net, "history_kernel"):
            print(f"error: {path} is a {m.net.arch_name!r} model, not gru_history", file=sys.stderr)
            return 2
        k = m.net.history_kernel(lags).numpy()
        curves.append((f"{Path(path).parent.name or path} (train: {m.net.history_train})", k[:, 1],
                       k[:, 0] * m.encoding.v_scale_mV))
        print(curves[-1][0], "; ".join(f"{t} ms: logit {curves[-1][1][t]:+.2f}, v {curves[-1][2][t]:+.2f} mV"
                                       for t in (2, 5, 10, 20, 50, 100)))
    plot_history_kernels(args.out, lags, curves)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
