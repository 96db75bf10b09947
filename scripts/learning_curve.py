"""Fidelity against the amount of training data (a learning curve), e.g. for ``hay-l5pc``.

For each size n, the first n trials of a dataset run (finished or still being generated; trial i
depends only on the seed and i, so they form exactly a run of n trials) are taken with
``generate_dataset(..., reuse=...)`` (no simulation), a surrogate is trained on them with the
given training configuration and the same step budget for every n (early stopping and the spike
threshold use the validation data), and scored free-running on the validation data and on each
``--test`` set (a dataset or the Hay 2011 reference recordings, scored after ``--skip-ms``). Resumable: finished sizes are kept in ``OUT/curve.json``; an interrupted
training resumes from its checkpoint.

    .venv/bin/python scripts/learning_curve.py --config configs/hay-l5pc.toml \\
        --source data/hay/train_mixed.h5.parts --sizes 50,100,200,400 --steps 2000 \\
        --val data/hay/val_mixed.h5 --test ../shared/hay2011/reference/synaptic_bombardment.npz \
        --skip-ms 300 --out runs/hay-curve

Writes ``OUT/curve.json`` (one row per size: trials, simulated seconds, steps, training minutes,
metrics per scored set) and ``OUT/curve.png`` (the metrics of the first ``--test`` set, or of the
validation data without one, against simulated seconds of training data).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

METRICS = ("precision_10ms", "recall_10ms", "precision_2ms", "recall_2ms", "median_abs_shift_ms",
           "pearson_r_sub", "pearson_r_away5ms", "v_dend0_mV_pearson_r", "v_dend1_mV_pearson_r")


def subset(source: Path, n: int, out_dir: Path) -> Path:
    """The first ``n`` trials of the run whose parts are in ``source``, as a dataset file."""
    from neurosurrogate.biophys.cells import cell_from_dict
    from neurosurrogate.biophys.generate import generate_dataset

    parts = source if source.suffix == ".parts" else source.with_name(source.name + ".parts")
    cfg = json.loads((parts / "config.json").read_text())
    out = out_dir / f"train_{n}.h5"
    return generate_dataset(out, cell_from_dict(cfg["cell"]), n, cfg["duration_ms"], cfg["seed"],
                            protocol=cfg["protocol"], protocol_options=cfg["protocol_options"], workers=1,
                            progress=False, reuse=parts)


def flat_metrics(ev) -> dict:
    return {k: float(v) for k, v in ev.metrics.items() if isinstance(v, (int, float))}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", required=True, help="training configuration (TOML); train_data is replaced")
    ap.add_argument("--source", required=True, help="dataset run (.h5.parts folder) to take the first n trials from")
    ap.add_argument("--sizes", default="50,100,200,400", help="numbers of training trials, comma-separated")
    ap.add_argument("--steps", type=int, default=2000, help="optimizer steps for every size (same budget)")
    ap.add_argument("--val", required=True, help="validation dataset (.h5): early stopping, spike threshold, scored")
    ap.add_argument("--test", action="append", default=[], help="further held-out set (.h5 or the Hay 2011 "
                    "reference synaptic_bombardment.npz), repeatable; never used in training")
    ap.add_argument("--skip-ms", dest="skip_ms", type=float, default=0.0,
                    help="leave the first N ms of every --test trial out of the scores (300 for the reference)")
    ap.add_argument("--out", default="runs/curve", help="output folder")
    args = ap.parse_args(argv)

    from neurosurrogate.data.dataset import load_dataset
    from neurosurrogate.evaluate.reference import load_heldout
    from neurosurrogate.evaluate.rollout import evaluate_dataset
    from neurosurrogate.train.config import TrainConfig
    from neurosurrogate.train.loop import train

    try:
        sizes = sorted({int(s) for s in args.sizes.split(",")})
    except ValueError:
        ap.error(f"--sizes must be comma-separated whole numbers, got {args.sizes!r}")
    if min(sizes) < 1 or args.steps < 1:
        ap.error("--sizes and --steps must be >= 1")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    table = out / "curve.json"
    rows = json.loads(table.read_text()) if table.exists() else []
    done = {(r["trials"], r["steps"]) for r in rows}
    val = load_dataset(args.val)
    for n in sizes:
        if (n, args.steps) in done:
            continue
        data = subset(Path(args.source), n, out / "data")
        cfg = TrainConfig.from_toml(args.config, max_steps=args.steps, max_minutes=10_000.0)
        cfg = TrainConfig(**{**cfg.to_dict(), "train_data": [str(data)], "val_data": [str(Path(args.val))],
                             "out_dir": str(out / f"n{n}")})
        t = time.perf_counter()
        model = train(cfg, progress=False, log=lambda m: print(m, file=sys.stderr))
        minutes = model.card["training"]["wall_time_s"] / 60
        scores = {"val": flat_metrics(evaluate_dataset(model, val, "val"))}
        for p in args.test:
            scores[Path(p).stem] = flat_metrics(evaluate_dataset(model, load_heldout(p, model), Path(p).stem,
                                                                 skip_ms=args.skip_ms))
        rows.append({"trials": n, "simulated_s": n * float(val.duration_ms) / 1000, "steps": args.steps,
                     "train_minutes": minutes, "wall_minutes": (time.perf_counter() - t) / 60,
                     "spike_threshold": model.encoding.spike_threshold, "test_skip_ms": args.skip_ms,
                     "metrics": scores})
        rows.sort(key=lambda r: (r["steps"], r["trials"]))
        tmp = table.with_suffix(".tmp")
        tmp.write_text(json.dumps(rows, indent=1))
        tmp.replace(table)
        for name, m in scores.items():
            print(f"n={n} {name}: " + ", ".join(f"{k} {m[k]:.3f}" for k in METRICS if k in m), flush=True)
    key = Path(args.test[0]).stem if args.test else "val"
    title = (f"{key}" + (f" (first {args.skip_ms:g} ms not scored)" if args.test and args.skip_ms else "")
             + f"; {args.steps} training steps per size")
    from neurosurrogate.plotting import plot_learning_curve

    sel = [{**r, "metrics": r["metrics"][key]} for r in rows if r["steps"] == args.steps and key in r["metrics"]]
    plot_learning_curve(out / "curve.png", sel, title)
    print(f"wrote {table} and {out / 'curve.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
