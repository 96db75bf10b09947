"""Write a model folder with the *last* weights of a training run (``RUN/checkpoint.pt``) instead of the
best-validation ones that ``neurosurrogate train`` keeps in ``RUN/model``: the encoding, card and spike
threshold are ``RUN/model``'s; the card records the checkpoint's step. For a run that overfits on purpose
(does the architecture fit its training trials at all?), score the result with ``neurosurrogate evaluate``.

    .venv/bin/python scripts/model_from_checkpoint.py RUN OUT_MODEL_DIR
"""

from __future__ import annotations

import sys
from pathlib import Path


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2 or argv[0] in ("-h", "--help"):
        print(__doc__.strip(), file=sys.stderr)
        return 2
    run, out = Path(argv[0]), Path(argv[1])
    ckpt = run / "checkpoint.pt"
    if not ckpt.is_file() or not (run / "model" / "model.json").is_file():
        print(f"error: {run}: expected a finished training run (checkpoint.pt and model/model.json)", file=sys.stderr)
        return 2
    import torch

    from neurosurrogate.surrogate.model import SurrogateModel

    model = SurrogateModel.load(run / "model")
    state = torch.load(ckpt, map_location="cpu", weights_only=True)
    try:
        model.net.load_state_dict(state["model"])
    except (KeyError, RuntimeError) as exc:
        print(f"error: {ckpt}: weights do not fit {run / 'model'} ({exc})", file=sys.stderr)
        return 2
    model.card = dict(model.card, weights=f"last checkpoint, step {int(state['step'])} (not the best-validation model)")
    model.save(out)
    print(f"wrote {out} (step {int(state['step'])})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
