#!/usr/bin/env python
"""How well surrogates answer probe events: the difference of a model's outputs on paired trials against
the cell's (the quantity that ``pair_weight`` trains; ``train/pairs.py``).

A pair is trial ``i`` of a run generated with ``--option probe_rate_Hz=R`` and trial ``i`` of the same run
without it (the probes are single default-weight events at random synapses). Each model runs both trials
from its zero state, as in training (``model.net`` on the encoded events), and its output difference is
compared with the cell's over the masked samples (before the pair's spikes part ways and away from every
spike; ``pairs.pair_mask``), per channel (soma, then each dendritic site):

* ``fvu``: sum (d_pred - d_true)^2 / sum d_true^2 (the training term over the whole set; 1 = ignores the probes),
* ``r`` and ``slope`` (least squares through 0 of d_pred on d_true: 1 = the cell's size, < 1 shrunk).

Usage::

    python scripts/hay_pair_response.py --model runs/hay_pairs/p1/model --model runs/hay_pairs/p0/model \\
        --base data/hay/val_40.h5 --probed data/hay_pairs/val_probe40_40.h5 --out pair_response.json

Writes the JSON (atomically) and prints a Markdown table.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def pair_response(model_path: str, base, probed) -> dict:
    import numpy as np
    import torch

    from neurosurrogate.surrogate.model import SurrogateModel
    from neurosurrogate.train.loop import to_tensors
    from neurosurrogate.train.pairs import make_pairs, pair_channels

    m = SurrogateModel.load(model_path)
    m.net.eval()
    base = base.subset(np.arange(min(base.n_trials, probed.n_trials)))  # only the trials that have a sibling
    tr = to_tensors([base, probed], m.encoding, sparse="auto")
    pairs = make_pairs([base, probed], tr.x.shape[1])
    if pairs is None:
        raise ValueError(f"{probed.path} does not pair with {base.path}")
    names, chans = pair_channels(m.encoding)
    with torch.no_grad():
        y = torch.cat([m.net(tr.x[b : b + 16])[0] for b in range(0, tr.x.shape[0], 16)])
    mask = pairs.mask.numpy()
    out = {"model": str(model_path), "pairs": len(pairs), "masked_fraction": float(mask.mean()), "channels": {}}
    for name, c in zip(names, chans):
        dp = (y[pairs.probed, :, c] - y[pairs.base, :, c]).numpy()[mask]
        dt = (tr.z[pairs.probed, :, c] - tr.z[pairs.base, :, c]).numpy()[mask]
        e = float(np.sum(dt**2))
        out["channels"][name] = {
            "fvu": float(np.sum((dp - dt) ** 2) / e) if e > 0 else float("nan"),
            "r": float(np.corrcoef(dp, dt)[0, 1]) if dp.size > 1 and dp.std() > 0 and dt.std() > 0 else float("nan"),
            "slope": float(np.sum(dp * dt) / e) if e > 0 else float("nan"),
            "rms_true_mV": float(np.sqrt(np.mean(dt**2))) * (m.encoding.v_scale_mV if c == 0 else
                                                          m.encoding.extras[c - 3].scale),
        }
    return out


def main(argv=None) -> int:
    from neurosurrogate.train.pairs import PairError, pair_script_parser

    a = pair_script_parser(__doc__).parse_args(argv)
    from neurosurrogate.data.dataset import DatasetError, load_dataset
    from neurosurrogate.data.io import atomic_path

    try:
        base, probed = load_dataset(a.base), load_dataset(a.probed)
        rows = [pair_response(p, base, probed) for p in a.model]
    except (OSError, ValueError, DatasetError, PairError) as exc:
        print(f"hay_pair_response: {exc}", file=sys.stderr)
        return 2
    with atomic_path(Path(a.out)) as tmp:
        Path(tmp).write_text(json.dumps(rows, indent=1))
    names = list(rows[0]["channels"])
    print(f"Pairs: {rows[0]['pairs']} ({a.base} / {a.probed}); masked fraction {rows[0]['masked_fraction']:.2f}; "
          f"per channel FVU / r / slope of the difference (RMS of the true difference "
          + ", ".join(f"{n} {rows[0]['channels'][n]['rms_true_mV']:.3g}" for n in names) + ")\n")
    print("| model | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for r in rows:
        cells = [f"{r['channels'][n]['fvu']:.3f} / {r['channels'][n]['r']:.3f} / {r['channels'][n]['slope']:.3f}"
                 for n in names]
        print(f"| {r['model']} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
