"""CLI commands of the surrogate stage: train, evaluate, predict, compare-architectures."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np


def add_commands(sub, CLIError) -> None:
    from neurosurrogate.cli import _duration, _positive_int

    q = sub.add_parser(
        "train", help="train a surrogate from a TOML config",
        description="Train a streaming surrogate on NEURON datasets (truncated BPTT over whole trials, "
        "early stopping on separate validation trials, checkpoints every N steps). Re-running the same "
        "command resumes from the checkpoint in out_dir. Keys: see neurosurrogate.train.config.TrainConfig.")
    q.add_argument("--config", required=True, help="TOML file (paths inside are relative to it)")
    q.add_argument("--out-dir", dest="out_dir", help="override out_dir")
    q.add_argument("--max-minutes", dest="max_minutes", type=float, help="override the time budget")
    q.add_argument("--max-steps", dest="max_steps", type=_positive_int, help="override the step budget")
    q.add_argument("--no-resume", action="store_true", help="start over even if a checkpoint exists")
    q.add_argument("--quiet", action="store_true", help="no progress bar")

    def cmd_train(args):
        from neurosurrogate.data.dataset import DatasetError
        from neurosurrogate.train.config import TrainConfig
        from neurosurrogate.train.loop import TrainError, train

        try:
            cfg = TrainConfig.from_toml(args.config, out_dir=args.out_dir, max_minutes=args.max_minutes,
                                        max_steps=args.max_steps)
            if args.out_dir:
                import dataclasses

                cfg = dataclasses.replace(cfg, out_dir=args.out_dir)
            train(cfg, resume=not args.no_resume, progress=not args.quiet)
        except (ValueError, DatasetError, TrainError) as exc:
            raise CLIError(f"train: {exc}") from None
        except KeyboardInterrupt:
            print("\ninterrupted: run the same command again to resume from the last checkpoint")
            return 130
        return 0

    q.set_defaults(func=cmd_train)

    q = sub.add_parser(
        "predict", help="run a surrogate on an event table (the prediction contract)",
        description="Free-running surrogate prediction from rest: writes t_ms, v_mV (1 kHz), spike_times_ms "
        "(and ina, ik if the model predicts them; v_dend_mV (n_sites, T) and ica for multi-compartment models "
        "such as hay-l5pc) to an NPZ, with spike_prob (the spike probability of every 1-ms bin) and "
        "spike_confidence (each spike's peak-bin probability; meta holds the decoding threshold). Event synapse "
        "indices refer to the model's cell's synapse table.")
    q.add_argument("--model", default="point-hh", help="shipped model name or model folder (default point-hh)")
    q.add_argument("--events", required=True, help="event table (.npz or .csv)")
    q.add_argument("--duration-ms", dest="duration_ms", type=_duration, default=2000.0,
                   help="predicted time, whole ms (default 2000); events at or after it are ignored")
    q.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    q.add_argument("--out", required=True, help="output .npz")
    q.add_argument("--plot", help="also write a PNG of the predicted trace")

    def cmd_predict(args):
        from neurosurrogate.data.io import provenance
        from neurosurrogate.inputs import EventTable, EventTableError
        from neurosurrogate.surrogate.model import ModelError, SurrogateModel

        out = Path(args.out)
        if out.suffix.lower() != ".npz":
            raise CLIError(f"--out {out}: expected a .npz file")
        try:
            model = SurrogateModel.load(args.model)
        except ModelError as exc:
            raise CLIError(f"--model: {exc}") from None
        n_syn = model.encoding.n_synapses
        try:
            ev = EventTable.load(args.events)
        except EventTableError as exc:
            raise CLIError(f"--events: {exc}") from None
        try:
            ev.check_synapses(n_syn)
        except EventTableError as exc:
            raise CLIError(f"--events: {exc}; the model ({model.encoding.cell_name}) has {n_syn} synapses") from None
        t = time.perf_counter()
        tr = model.predict(ev, args.duration_ms, device=args.device)
        el = time.perf_counter() - t
        meta = {"model": str(args.model), "arch": model.net.arch_name, "duration_ms": args.duration_ms,
                "events_file": str(args.events), "units": {"t_ms": "ms", "v_mV": "mV", "spike_times_ms": "ms",
                                                           "ina": "mA/cm2", "ik": "mA/cm2", "v_dend_mV": "mV",
                                                           "ica": "mA/cm2"},
                "outputs": list(tr.to_npz_dict()), "provenance": provenance()}
        for key in ("sites", "ica_site"):
            if key in tr.meta:
                meta[key] = tr.meta[key]
        # a clipped-voltage model also gives its voltage with the spikes put back
        extra = {k: tr.meta[k] for k in ("v_spiking_mV",) if k in tr.meta}
        for k in extra:
            meta["units"][k] = "mV"
        # how sure the model is: per-ms spike probability, and each spike's peak-bin probability
        extra["spike_prob"] = np.asarray(tr.meta["spike_prob"], dtype=np.float64)
        extra["spike_confidence"] = np.asarray(tr.meta["spike_confidence"], dtype=np.float64)
        meta["units"].update(spike_prob="1 (per 1 ms bin)", spike_confidence="1 (per spike)")
        meta["spike_threshold"] = float(tr.meta["spike_threshold"])
        meta["outputs"] += list(extra)
        tr.save_npz(out, meta, extra=extra)
        print(f"wrote {out}: {len(tr.spike_times_ms)} spikes in {args.duration_ms:g} ms (surrogate {el:.3f} s)")
        if args.plot:
            from neurosurrogate.plotting import plot_prediction

            plot_prediction(args.plot, tr, title=f"surrogate {args.model}, free-running from rest")
        return 0

    q.set_defaults(func=cmd_predict)

    from neurosurrogate.evaluate.rollout import HAY_REGIMES, REGIMES  # ~10 ms: names for the help

    q = sub.add_parser(
        "evaluate", help="free-running fidelity of a surrogate on held-out NEURON data; Markdown+PNG report",
        description="Runs the surrogate free from rest on held-out trials and compares with NEURON: variance "
        "explained, Pearson r (all and subthreshold samples), spike precision/recall at ±10 and ±2 ms, "
        "spike-time shift, firing rates; long-run stability (explained variance per second).")
    q.add_argument("--model", default="point-hh", help="shipped model name or model folder")
    q.add_argument("--data", action="append",
                   help="held-out dataset (.h5), repeatable; or the Hay 2011 reference recordings "
                   "(hay2011/reference/synaptic_bombardment.npz: the original model's soma and dendritic "
                   "voltages; their first 300 ms are not scored by default, see --skip-ms)")
    q.add_argument("--regimes", action="store_true",
                   help="also simulate (or reuse) the cell's held-out regimes in --out-dir/data")
    q.add_argument("--regime", action="append", metavar="NAME",
                   help=f"with --regimes: only this regime (repeatable). Point cells: {', '.join(REGIMES)}; "
                   f"hay-l5pc (rates for this cell, silence to ~25 Hz): {', '.join(HAY_REGIMES)}")
    q.add_argument("--trials", type=_positive_int, default=40, help="trials per generated regime")
    q.add_argument("--long-run-s", dest="long_run_s", type=float, default=25.0,
                   help="length of the long-run stability test, s (0 = skip)")
    q.add_argument("--skip-ms", dest="skip_ms", type=float, default=None,
                   help="leave the first N ms of every trial of every set out of the scores; the surrogate still "
                   "runs from t = 0. Default: per set, 300 ms for trials that start at finitialize without a "
                   "pre-run (the Hay 2011 reference recordings, simulate --no-prerun data: the cell drifts for "
                   "~300 ms), 0 for trials that start from the steady state")
    q.add_argument("--out-dir", dest="out_dir", default="out/evaluate",
                   help="report folder: report.md, plots, metrics.json and spike_confidence.json "
                   "(default out/evaluate)")
    q.add_argument("--update-card", action="store_true", help="write the held-out metrics into the model card")

    def cmd_evaluate(args):
        from neurosurrogate.biophys.cells import cell_from_dict
        from neurosurrogate.data.dataset import DatasetError, load_dataset
        from neurosurrogate.data.io import write_json
        from neurosurrogate.evaluate.reference import default_skip_ms, load_heldout
        from neurosurrogate.evaluate.report import metrics_table, write_report
        from neurosurrogate.evaluate.rollout import evaluate_dataset, generate_regimes, long_run
        from neurosurrogate.surrogate.model import ModelError, SurrogateModel, resolve_model_path

        if not args.data and not args.regimes:
            raise CLIError("evaluate: give --data FILE (repeatable) and/or --regimes")
        if args.regime and not args.regimes:
            raise CLIError("--regime NAME selects among --regimes: give --regimes too")
        if args.long_run_s < 0:
            raise CLIError("--long-run-s must be >= 0")
        if args.skip_ms is not None and not (
                np.isfinite(args.skip_ms) and args.skip_ms >= 0 and args.skip_ms == int(args.skip_ms)):
            raise CLIError(f"--skip-ms must be a whole number of ms >= 0, got {args.skip_ms:g}")
        try:
            model = SurrogateModel.load(args.model)
        except ModelError as exc:
            raise CLIError(f"--model: {exc}") from None
        out = Path(args.out_dir)
        sets = {}
        try:
            for p in args.data or []:
                sets[Path(p).stem] = load_heldout(p, model)  # a dataset or the Hay 2011 reference recordings
            cell = None
            if args.regimes or args.long_run_s > 0:  # only these simulate with NEURON
                cell = cell_from_dict(model.card["cell"]) if "cell" in model.card else None
                if cell is None and sets:
                    cell = cell_from_dict(next(iter(sets.values())).cell)
            if args.regimes:
                if cell is None:
                    raise CLIError("evaluate --regimes: the model card names no cell")
                try:
                    regimes = generate_regimes(out / "data", cell, n_trials=args.trials, names=args.regime,
                                               progress=True)
                except ValueError as exc:
                    raise CLIError(f"--regime: {exc}") from None
                for name, path in regimes.items():
                    sets[name] = load_dataset(path)
        except DatasetError as exc:
            raise CLIError(f"--data: {exc}") from None
        skips = {name: default_skip_ms(d) if args.skip_ms is None else float(args.skip_ms)
                 for name, d in sets.items()}
        for name, d in sets.items():
            if skips[name] >= d.duration_ms:
                raise CLIError(f"--skip-ms {skips[name]:g} leaves nothing of the {d.duration_ms:g} ms trials "
                               f"of {name}")
        try:
            evals = [evaluate_dataset(model, d, name, skip_ms=skips[name]) for name, d in sets.items()]
        except ValueError as exc:
            raise CLIError(f"evaluate: {exc}") from None
        longr = long_run(model, cell, args.long_run_s * 1000) if args.long_run_s > 0 and cell else None
        rep = write_report(out, f"Fidelity of {args.model}", evals, longr, model.card)
        print(metrics_table({e.name: e.metrics for e in evals}))
        if longr is not None:
            print(f"long run {args.long_run_s:g} s: explained variance per second min {np.nanmin(longr['ev']):.3f} "
                  f"mean {np.nanmean(longr['ev']):.3f}")
        summary = {e.name: e.metrics for e in evals}
        if any(skips.values()):
            summary["scoring"] = {"skip_ms": {name: skips[name] for name in sets}}
        if longr is not None:
            summary["long_run"] = {"duration_s": args.long_run_s, "ev_per_s": [float(x) for x in longr["ev"]]}
        conf = {e.name: e.extra["spike_confidence"] for e in evals if "spike_confidence" in e.extra}
        for fname, obj in (("metrics.json", summary), ("spike_confidence.json", conf)):
            write_json(out / fname, obj)  # strict JSON: a metric without data (nan) is null
        print(f"wrote {rep}")
        if args.update_card:  # rows of earlier calls stay (e.g. data scored with another --skip-ms)
            held = {k: v for k, v in model.card.get("heldout_metrics", {}).items() if k != "scoring"}
            held.update({e.name: e.metrics for e in evals})
            if longr is not None:
                held["long_run"] = summary["long_run"]
            model.card["heldout_metrics"] = held
            model.card["heldout_data"] = {**model.card.get("heldout_data", {}), **{
                n: {"protocol": d.config.get("protocol"), "protocol_options": d.config.get("protocol_options"),
                    "seed": d.config.get("seed"), "n_trials": d.n_trials, "skip_ms": skips[n],
                    "content_hash": d.content_hash} for n, d in sets.items()}}
            from neurosurrogate.evaluate.report import card_markdown

            folder = resolve_model_path(args.model)
            model.save(folder)
            (folder / "MODEL_CARD.md").write_text(card_markdown(model.encoding.cell_name, model.card))
            print(f"updated the model card of {folder} (model.json, MODEL_CARD.md)")
        return 0

    q.set_defaults(func=cmd_evaluate)

    q = sub.add_parser(
        "calibrate", help="re-calibrate a model's spike threshold on validation data",
        description="Sets the spike-probability threshold of a model folder to the value (0.05-0.95) that "
        "maximises F1 of spike matching within ±2 ms on the given validation datasets, free-running, and "
        "records it in the model card. Training does this at its end; use it after changing the data or the "
        "decoding.")
    q.add_argument("--model", required=True, help="model folder (shipped models are not modified)")
    q.add_argument("--data", action="append", required=True, help="validation dataset (.h5), repeatable")

    def cmd_calibrate(args):
        import dataclasses

        from neurosurrogate.data.dataset import DatasetError, load_dataset
        from neurosurrogate.surrogate.model import SHIPPED_DIR, ModelError, SurrogateModel, resolve_model_path
        from neurosurrogate.train.loop import calibrate_spike_threshold

        try:
            folder = resolve_model_path(args.model)
            model = SurrogateModel.load(folder)
        except ModelError as exc:
            raise CLIError(f"--model: {exc}") from None
        if folder.resolve().parent == SHIPPED_DIR.resolve():
            raise CLIError(f"--model {args.model}: a shipped model; copy the folder and calibrate the copy")
        try:
            data = [load_dataset(p) for p in args.data]
        except DatasetError as exc:
            raise CLIError(f"--data: {exc}") from None
        old = model.encoding.spike_threshold
        try:
            thr, f1 = calibrate_spike_threshold(model, data)
        except ValueError as exc:
            raise CLIError(f"calibrate: {exc}") from None
        model.encoding = dataclasses.replace(model.encoding, spike_threshold=thr)
        model.card["spike_threshold_calibration"] = {
            "threshold": thr, "val_f1_2ms": f1, "previous_threshold": old,
            "data": [{"path": str(d.path), "content_hash": d.content_hash, "n_trials": d.n_trials} for d in data],
            "note": "threshold maximising F1 at +-2 ms on the validation data (neurosurrogate calibrate)"}
        model.save(folder)
        print(f"spike threshold {old:g} -> {thr:g} (F1 at ±2 ms {f1:.4f}); wrote {folder}")
        return 0

    q.set_defaults(func=cmd_calibrate)

    q = sub.add_parser(
        "compare-architectures", help="train every registered architecture on the same data and budget",
        description="The paper's Fig. 1 comparison: parameters, FLOPs per cell-step, one-step error, "
        "free-running passive and active metrics, wall time per simulated second for 1 and 1000 cells.")
    q.add_argument("--config", required=True, help="base training TOML (data, budget); arch is replaced")
    q.add_argument("--archs", default=None, help="comma-separated names, each optionally with sizes, e.g. gru,gru:hidden=32:layers=1 "
                   "(default: all registered with default sizes)")
    q.add_argument("--passive-data", dest="passive_data", default=None,
                   help="held-out dataset of quiet/subthreshold input (default: trials without spikes of --test-data)")
    q.add_argument("--test-data", dest="test_data", required=True, help="held-out active dataset (.h5)")
    q.add_argument("--max-minutes", dest="max_minutes", type=float, default=None, help="budget per architecture")
    q.add_argument("--max-steps", dest="max_steps", type=_positive_int, default=None,
                   help="training steps per architecture (default: the config's budget)")
    q.add_argument("--out-dir", dest="out_dir", default="out/compare",
                   help="folder for the trained models and the comparison table (default out/compare)")
    q.add_argument("--quiet", action="store_true", help="no progress bars")

    def cmd_compare(args):
        from neurosurrogate.evaluate.compare import compare_architectures

        try:
            compare_architectures(args.config, args.test_data, args.out_dir, archs=args.archs.split(",") if args.archs else None,
                                  passive_data=args.passive_data, max_minutes=args.max_minutes,
                                  max_steps=args.max_steps, progress=not args.quiet)
        except ValueError as exc:
            raise CLIError(f"compare-architectures: {exc}") from None
        return 0

    q.set_defaults(func=cmd_compare)
