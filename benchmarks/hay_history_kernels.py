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
    from neurosurrogate.plotting import _plt, _save
    from neurosurrogate.surrogate.model import SurrogateModel

    plt = _plt()
    lags = np.arange(0.0, 151.0)
    fig, (ax_l, ax_v) = plt.subplots(1, 2, figsize=(10, 3.6))
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
        label = f"{Path(path).parent.name or path} (train: {m.net.history_train})"
        ax_l.plot(lags, k[:, 1], label=label)
        ax_v.plot(lags, k[:, 0] * m.encoding.v_scale_mV, label=label)
        print(label, "; ".join(f"{int(t)} ms: logit {k[int(t), 1]:+.2f}, v {k[int(t), 0] * m.encoding.v_scale_mV:+.2f} mV"
                               for t in (2, 5, 10, 20, 50, 100)))
    ax_l.set(xlabel="lag after the spike's bin (ms)", ylabel="added to the spike logit", title="spike probability")
    ax_v.set(xlabel="lag after the spike's bin (ms)", ylabel="added to the soma voltage (mV)", title="soma voltage")
    for ax in (ax_l, ax_v):
        ax.axhline(0, color="0.7", lw=0.8)
    ax_l.legend(fontsize=8)
    fig.tight_layout()
    _save(fig, args.out, plt)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
