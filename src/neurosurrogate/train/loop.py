"""The training loop: truncated BPTT over whole trials, early stopping, exact resume.

Each batch is ``batch_size`` whole training trials, run from t = 0 (the
cell's rest) from the model's own resting state, in chunks of ``chunk_ms``;
the recurrent state is carried across chunks and detached (truncated
backpropagation through time), one optimizer step per chunk. Validation is
free-running over whole held-out trials.

Checkpoints (``checkpoint.pt``, written atomically at batch boundaries) hold
weights, optimizer, sampler and torch RNG states, step, elapsed time and
early-stopping state: a resumed run continues exactly as if uninterrupted.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from neurosurrogate.biophys.cells import cell_key
from neurosurrogate.data.dataset import Dataset, load_dataset
from neurosurrogate.data.io import atomic_path, provenance
from neurosurrogate.surrogate.model import Encoding, ExtraOutput, SurrogateModel, spike_shape
from neurosurrogate.train.config import TrainConfig
from neurosurrogate.train.features import SparseFeatures
from neurosurrogate.train.losses import STATE_PREFIX, extra_groups, surrogate_loss
from neurosurrogate.train.pairs import PairError, make_pairs, pair_channels, pair_loss

#: dense input features above this size (bytes) are kept sparse (see ``to_tensors``)
DENSE_LIMIT_BYTES = 256 * 2**20


class TrainError(ValueError):
    """Inconsistent data or a checkpoint that does not match the configuration."""


@dataclass
class Tensors:
    x: torch.Tensor | SparseFeatures  # (N, T, n_in); x[idx] -> dense (len(idx), T, n_in) tensor
    z: torch.Tensor  # (N, T, n_out)
    rates_Hz: np.ndarray  # (N,) firing rate of each trial
    n_events: np.ndarray  # (N,)


def load_all(paths) -> list[Dataset]:
    ds = [load_dataset(p) for p in paths]
    cells = {cell_key(d.cell) for d in ds}
    if len(cells) != 1:
        raise TrainError(f"datasets {list(paths)} come from different cells")
    return ds


def make_encoding(train: list[Dataset], predict_currents: bool = True, targets=None, v_clip_mV: float | None = None,
                  v_scale_mV: float = 20.0) -> Encoding:
    """Encoding from training data.

    Input scales are the synapses' default weights; ``v_rest_mV`` is the median soma voltage
    at t = 0 (every trial starts at rest). Extra outputs:

    * ``targets`` None (point-cell behaviour): ``ina`` and ``ik`` (offset 0, scale = SD over
      all samples, mA/cm2) if ``predict_currents`` and both vary;
    * otherwise, in the order given: ``ina``/``ik`` as above; ``v_dend`` -> ``v_dend{k}_mV``
      for each recording site k (offset = the site's median voltage at t = 0, mV; scale =
      ``v_scale_mV``, as the soma); ``ica`` (offset = its median at t = 0, scale = its SD
      over all samples, mA/cm2); ``states`` -> ``state_<name>`` for each recorded state variable
      (:func:`state_output_name`; offset = its median at t = 0, scale = its SD over all samples).

    With ``v_clip_mV`` the soma voltage is learned below that ceiling and the encoding keeps the
    training data's spike shape (:func:`~neurosurrogate.surrogate.model.spike_shape`).

    Raises:
        TrainError: a target is missing from a dataset or does not vary.
    """
    d0 = train[0]
    v0 = np.concatenate([d.v_mV[:, 0] for d in train])
    extras: list[ExtraOutput] = []

    def sd(key: str) -> float:
        return float(np.concatenate([getattr(d, key).ravel() for d in train]).std())

    if targets is None:
        if predict_currents:
            s_na, s_k = sd("ina"), sd("ik")
            if s_na > 0 and s_k > 0:
                extras = [ExtraOutput("ina", s_na, 0.0, "mA/cm2"), ExtraOutput("ik", s_k, 0.0, "mA/cm2")]
    else:
        for name in targets:
            if name == "states":
                extras.extend(_state_extras(train))
                continue
            key = "v_dend_mV" if name == "v_dend" else name
            lacking = [str(d.path) for d in train if getattr(d, key, None) is None]
            if lacking:
                raise TrainError(f"targets: {name!r} requested, but dataset(s) {lacking} hold no {key} "
                                 "(only multi-compartment data such as hay-l5pc records it)")
            if name == "v_dend":
                n_sites = {d.v_dend_mV.shape[1] for d in train}
                if len(n_sites) != 1:
                    raise TrainError(f"targets: the datasets have different numbers of dendritic sites "
                                     f"{sorted(n_sites)}")
                for k in range(n_sites.pop()):
                    rest = float(np.median(np.concatenate([d.v_dend_mV[:, k, 0] for d in train])))
                    extras.append(ExtraOutput(f"v_dend{k}_mV", v_scale_mV, rest, "mV"))
                continue
            scale = sd(name)
            if not scale > 0:
                raise TrainError(f"targets: {name!r} is constant in the training data; it cannot be learned")
            offset = float(np.median(np.concatenate([d.ica[:, 0] for d in train]))) if name == "ica" else 0.0
            extras.append(ExtraOutput(name, scale, offset, "mA/cm2"))
    return Encoding(
        synapse_weights_nS=tuple(float(s["weight_nS"]) for s in d0.synapses),
        v_rest_mV=float(np.median(v0)),
        v_scale_mV=v_scale_mV,
        cell_name=str(d0.cell.get("name", "unknown")),
        extras=tuple(extras),
        v_clip_mV=v_clip_mV,
        spike_shape_mV=() if v_clip_mV is None else tuple(map(tuple, spike_shape(
            [v for d in train for v in d.v_mV], [st for d in train for st in d.spike_times_ms]))),
    )


def state_output_name(state: str) -> str:
    """Output name of a recorded state variable: ``soma.HayKPst.h`` -> ``state_soma_HayKPst_h``."""
    return STATE_PREFIX + state.replace(".", "_")


def _state_extras(train: list[Dataset]) -> list[ExtraOutput]:
    names = [d.extra.get("state_names") for d in train]
    lacking = [str(d.path) for d, n in zip(train, names) if d.states is None or not n]
    if lacking:
        raise TrainError(f"targets: 'states' requested, but dataset(s) {lacking} hold no state variables "
                         "(generate hay-l5pc data with --set record_states=true)")
    if any(n != names[0] for n in names):
        raise TrainError("targets: the training datasets recorded different state variables")
    out = []
    for k, state in enumerate(names[0]):
        vals = np.concatenate([d.states[:, k].ravel() for d in train])
        scale = float(vals.std())
        if not scale > 0:
            raise TrainError(f"targets: state variable {state!r} is constant in the training data")
        rest = float(np.median(np.concatenate([d.states[:, k, 0] for d in train])))
        out.append(ExtraOutput(state_output_name(state), scale, rest, "mM" if state.endswith("cai") else "1"))
    return out


def _state_values(d: Dataset, enc: Encoding) -> dict:
    """Targets of the ``state_*`` outputs from ``d`` (zeros where ``d`` holds none: validation data,
    whose loss leaves the states out)."""
    wanted = [n for n in enc.extra_names if n.startswith(STATE_PREFIX)]
    if not wanted:
        return {}
    have = {}
    if d.states is not None:
        have = {state_output_name(s): d.states[:, k] for k, s in enumerate(d.extra.get("state_names", []))}
    zero = np.zeros_like(d.v_mV)
    return {n: have.get(n, zero) for n in wanted}


def to_tensors(datasets: list[Dataset], enc: Encoding, sparse: bool | str = False) -> Tensors:
    """Inputs and targets of every trial of ``datasets``.

    Args:
        datasets: datasets of one cell, trials of equal duration.
        enc: the encoding (its extras say which targets are built).
        sparse: keep the inputs as :class:`SparseFeatures` (True), dense (False), or sparse
            only when dense inputs would exceed ``DENSE_LIMIT_BYTES`` ('auto').
    """
    T = {int(d.v_mV.shape[1]) for d in datasets}
    if len(T) != 1:
        raise TrainError(f"datasets have different trial durations {sorted(T)}")
    T = T.pop()
    n = sum(d.n_trials for d in datasets)
    if sparse == "auto":
        sparse = n * T * enc.n_in * 4 > DENSE_LIMIT_BYTES
    elif sparse not in (True, False):
        raise ValueError(f"sparse must be True, False or 'auto', got {sparse!r}")
    feats = (enc.features(ev, T) for d in datasets for ev in d.events)
    if sparse:
        x = SparseFeatures(feats, T, enc.n_in)
    else:
        x = torch.from_numpy(np.stack(list(feats))) if n else torch.zeros(0, T, enc.n_in)
    zs, rates, nev = [], [], []
    for d in datasets:
        try:
            zs.append(enc.targets(d.v_mV, d.spike_times_ms, d.ina, d.ik, v_dend_mV=d.v_dend_mV, ica=d.ica,
                                  values=_state_values(d, enc)))
        except ValueError as exc:
            raise TrainError(f"dataset {d.path}: {exc}") from None
        rates.append(np.array([len(s) / (T / 1000) for s in d.spike_times_ms]))
        nev.append(np.array([len(ev) for ev in d.events]))
    return Tensors(x, torch.from_numpy(np.concatenate(zs)), np.concatenate(rates), np.concatenate(nev))


def loss_groups(cfg: TrainConfig, enc: Encoding, auxiliary: bool = True):
    """Loss groups of the extra outputs (None: the legacy point-cell loss, ``targets`` unset).
    ``auxiliary`` False (validation) leaves the ``states`` group out."""
    if cfg.targets is None:
        return None
    groups = extra_groups(enc.extra_names, {"currents": cfg.current_weight, "v_dend": cfg.dend_weight,
                                            "ica": cfg.ica_weight, "states": cfg.states_weight})
    return groups if auxiliary else [g for g in groups if g[0] != "states"]


def loss_options(cfg: TrainConfig, enc: Encoding) -> dict:
    """Keyword options of :func:`surrogate_loss` from the configuration (the near-threshold level normalised)."""
    return {"voltage_weight": cfg.voltage_weight, "spread_weight": cfg.spread_weight,
            "spread_window_ms": cfg.spread_window_ms, "spike_tolerance_ms": cfg.spike_tolerance_ms,
            "near_weight": cfg.near_threshold_weight,
            "near_above": (cfg.near_threshold_mV - enc.v_rest_mV) / enc.v_scale_mV}


def _device(cfg: TrainConfig) -> torch.device:
    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise TrainError("device 'cuda' requested but torch sees no CUDA device")
    if cfg.device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(cfg.device)


def _lr(cfg: TrainConfig, step: int) -> float:
    p = min(step / cfg.max_steps, 1.0)
    return cfg.lr_final + 0.5 * (cfg.lr - cfg.lr_final) * (1 + math.cos(math.pi * p))


def _pool(cfg: TrainConfig, data: Tensors, step: int) -> np.ndarray:
    n = len(data.rates_Hz)
    if not cfg.curriculum:
        return np.arange(n)
    frac = step / cfg.max_steps
    if frac < 0.1:
        pool = np.flatnonzero(data.n_events == 0)
        pool = pool if pool.size >= 1 else np.flatnonzero(data.rates_Hz == 0)
    elif frac < 0.25:
        pool = np.flatnonzero(data.rates_Hz == 0)
    else:
        pool = np.arange(n)
    return pool if pool.size else np.arange(n)


@torch.no_grad()
def validation_loss(model: SurrogateModel, data: Tensors, cfg: TrainConfig, device) -> float:
    model.net.eval()
    total, n = 0.0, 0
    for b in range(0, data.x.shape[0], 64):
        x, z = data.x[b : b + 64].to(device), data.z[b : b + 64].to(device)
        y, _ = model.net(x)
        loss, _ = surrogate_loss(y, z, cfg.spike_weight, cfg.spike_pos_weight, cfg.offset_weight, cfg.current_weight,
                                 loss_groups(cfg, model.encoding, auxiliary=False), **loss_options(cfg, model.encoding))
        total += float(loss) * x.shape[0]
        n += x.shape[0]
    model.net.train()
    return total / n


@torch.no_grad()
def calibrate_spike_threshold(model: SurrogateModel, datasets: list[Dataset], window_ms: float = 2.0) -> tuple[float, float]:
    """Spike-probability threshold that maximises F1 (spike matching within ``window_ms``) on
    validation data, free-running; thresholds 0.05, 0.10, ..., 0.95 (a cell whose spike times are
    hard to pin down to the millisecond spreads its probability over neighbouring bins, so the best
    threshold can be well below 0.5). A model whose own spike decision acts on what follows
    (``set_history_threshold``: a spike-history kernel) is run again at each threshold and left at
    the best. Returns (threshold, F1)."""
    from neurosurrogate.evaluate.metrics import match_spikes
    from neurosurrogate.surrogate.model import decode_spikes

    device = str(next(model.net.parameters()).device)
    truth = [t for d in datasets for t in d.spike_times_ms]
    rerun = hasattr(model.net, "set_history_threshold")
    preds = None if rerun else [p for d in datasets for p in model.predict(d.events, d.duration_ms, device=device)]
    best = (0.5, -1.0)
    for thr in np.round(np.arange(0.05, 0.96, 0.05), 2):
        if rerun:
            model.net.set_history_threshold(float(thr))
            preds = [p for d in datasets for p in model.predict(d.events, d.duration_ms, device=device)]
        tp = n_pred = n_true = 0
        for pr, t in zip(preds, truth):
            pred = decode_spikes(pr.meta["spike_prob"], pr.meta["spike_offset"], thr)
            tp += len(match_spikes(t, pred, window_ms)[0])
            n_pred, n_true = n_pred + len(pred), n_true + len(t)
        f1 = 2 * tp / max(n_pred + n_true, 1)
        if f1 > best[1] + 1e-12:
            best = (float(thr), f1)
    if rerun:
        model.net.set_history_threshold(best[0])
    return best


#: keys of a placed synapse site kept in a model card's ``synapses`` (see :func:`synapse_table`)
SITE_KEYS = ("kind", "weight_nS", "region", "dist_um", "section", "x")


def synapse_table(synapses: list[dict]) -> list[dict] | None:
    """The compact synapse table a model card keeps for a multi-compartment cell: per input
    channel its kind, default weight (nS), region (apical/basal), path distance from the soma
    (um), section and position x; None for cells whose sites have no region (point cells).

    The network builder reads it to select sites by region and distance
    (:func:`neurosurrogate.network.build.cell_table`)."""
    if not synapses or any("region" not in s or "dist_um" not in s for s in synapses):
        return None
    return [{k: s[k] for k in SITE_KEYS if k in s} for s in synapses]


def _save_checkpoint(path: Path, **state) -> None:
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def _config_key(cfg: TrainConfig) -> str:
    """The configuration a checkpoint must match to resume (the time budget may change)."""
    d = cfg.key_dict()
    d.pop("max_minutes")
    return json.dumps(d, sort_keys=True)


def train(cfg: TrainConfig, resume: bool = True, progress: bool = True, log=print,
          stop_after_steps: int | None = None) -> SurrogateModel:
    """Train a surrogate as configured; returns the best model (also written to ``out_dir/model``).

    Args:
        cfg: the configuration.
        resume: continue from ``out_dir/checkpoint.pt`` if it exists.
        progress: show a progress bar.
        log: where to print one-line messages.
        stop_after_steps: end this call (with a checkpoint) once this many steps are done in
            total, as an interruption would; the next call resumes.
    """
    out = Path(cfg.out_dir)
    torch.set_num_threads(cfg.threads or os.cpu_count() or 1)
    device = _device(cfg)
    train_ds, val_ds = load_all(cfg.train_data), load_all(cfg.val_data)
    out.mkdir(parents=True, exist_ok=True)
    if cell_key(train_ds[0].cell) != cell_key(val_ds[0].cell):
        raise TrainError("training and validation data come from different cells")
    enc = make_encoding(train_ds, cfg.predict_currents, cfg.targets, cfg.v_clip_mV)
    tr, va = to_tensors(train_ds, enc, sparse="auto"), to_tensors(val_ds, enc, sparse="auto")
    groups = loss_groups(cfg, enc)
    options = loss_options(cfg, enc)
    try:
        pairs = make_pairs(train_ds, tr.x.shape[1])
    except PairError as exc:
        raise TrainError(str(exc)) from None
    if pairs is None and cfg.pair_weight > 0:
        raise TrainError("pair_weight > 0 but the training data hold no pairs (a run generated with "
                         "probe_rate_Hz beside the same run without it)")
    _, pair_chs = pair_channels(enc)
    if pairs is not None:
        try:
            pairs.set_energy(tr.z, pair_chs)
        except PairError as exc:
            raise TrainError(str(exc)) from None
        log(f"{len(pairs)} paired trials (probe events): batches take both trials of a pair"
            + (f", difference loss weight {cfg.pair_weight:g}" if cfg.pair_weight > 0 else ""))
    torch.manual_seed(cfg.seed)
    model = SurrogateModel.create(cfg.arch, enc, **cfg.arch_params)
    if cfg.rest_warmup_ms and not hasattr(model.net, "set_rest_from_silence"):  # before any step, not at load time
        raise TrainError(f"rest_warmup_ms = {cfg.rest_warmup_ms}: architecture {cfg.arch!r} has no warm rest state "
                         "(only the GRU family has); set rest_warmup_ms = 0")
    model.net.to(device).train()
    opt = torch.optim.Adam(model.net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    rng = np.random.default_rng(cfg.seed)
    step, elapsed, best, bad_evals, history = 0, 0.0, float("inf"), 0, []
    ckpt = out / "checkpoint.pt"
    if resume and ckpt.exists():
        st = torch.load(ckpt, map_location=device, weights_only=True)
        if st["config"] != _config_key(cfg):
            raise TrainError(f"{ckpt} was written by a different configuration; use another out_dir or --no-resume")
        model.net.load_state_dict(st["model"])
        opt.load_state_dict(st["optimizer"])
        rng.bit_generator.state = json.loads(st["sampler"])
        torch.set_rng_state(st["torch_rng"])
        step, elapsed, best, bad_evals = int(st["step"]), float(st["elapsed_s"]), float(st["best"]), int(st["bad_evals"])
        history = json.loads(st["history"])
        log(f"resumed from {ckpt} at step {step} ({elapsed / 60:.1f} min trained)")
    bar = None
    if progress:
        import sys

        from tqdm import tqdm

        bar = tqdm(total=cfg.max_steps, initial=step, unit="step", desc=f"train {cfg.arch}", file=sys.stderr,
                   dynamic_ncols=True)
    t_start = time.perf_counter() - elapsed
    stop = bad_evals >= cfg.patience
    last_eval, last_ckpt = step // cfg.eval_every, step // cfg.checkpoint_every
    n_chunks_T = tr.x.shape[1]
    limit = cfg.max_steps if stop_after_steps is None else min(cfg.max_steps, stop_after_steps)
    while not stop and step < limit and (time.perf_counter() - t_start) < cfg.max_minutes * 60:
        pool = _pool(cfg, tr, step)
        idx = rng.choice(pool, size=min(cfg.batch_size, pool.size), replace=False)
        if pairs is not None:
            idx = pairs.with_partners(idx)
            pb, pp, prow = pairs.in_batch(idx)
        x, z = tr.x[idx].to(device), tr.z[idx].to(device)
        state = None
        for c in range(0, n_chunks_T, cfg.chunk_ms):
            xc, zc = x[:, c : c + cfg.chunk_ms], z[:, c : c + cfg.chunk_ms]
            vt = zc[..., 0] if (cfg.teacher_forcing and model.net.feedback) else None
            kw = {"s_teacher": zc[..., 1]} if getattr(model.net, "spike_teacher", False) else {}
            y, state = model.net(xc, state, v_teacher=vt, **kw)
            loss, parts = surrogate_loss(y, zc, cfg.spike_weight, cfg.spike_pos_weight, cfg.offset_weight,
                                         cfg.current_weight, groups, **options)
            if pairs is not None and cfg.pair_weight > 0:
                lp = pair_loss(y, zc, pb, pp, pairs.mask[prow, c : c + cfg.chunk_ms], pair_chs, pairs.energy)
                loss = loss + cfg.pair_weight * lp
                parts["pair"] = float(lp.detach())
            for g in opt.param_groups:
                g["lr"] = _lr(cfg, step)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.net.parameters(), cfg.grad_clip)
            opt.step()
            state = tuple(s.detach() for s in state)
            step += 1
            if bar is not None:
                bar.update(1)
                extra = {"pair": f"{parts['pair']:.3f}"} if "pair" in parts else {}
                bar.set_postfix(loss=f"{float(loss.detach()):.4f}", v=f"{parts['v']:.4f}", **extra, best=f"{best:.4f}")
            if step >= cfg.max_steps:
                break
        if step // cfg.eval_every > last_eval or step >= cfg.max_steps:
            last_eval = step // cfg.eval_every
            vl = validation_loss(model, va, cfg, device)
            history.append({"step": step, "elapsed_s": time.perf_counter() - t_start, "val_loss": vl,
                            "train_loss": float(loss.detach())})
            if vl < best:
                best, bad_evals = vl, 0
                model.save(out / "best")
            else:
                bad_evals += 1
                stop = bad_evals >= cfg.patience
            with open(out / "log.jsonl", "a") as fh:
                fh.write(json.dumps(history[-1]) + "\n")
        if step // cfg.checkpoint_every > last_ckpt or stop or step >= limit:
            last_ckpt = step // cfg.checkpoint_every
            _save_checkpoint(
                ckpt, model=model.net.state_dict(), optimizer=opt.state_dict(),
                sampler=json.dumps(rng.bit_generator.state), torch_rng=torch.get_rng_state(), step=step,
                elapsed_s=time.perf_counter() - t_start, best=best, bad_evals=bad_evals,
                history=json.dumps(history), config=_config_key(cfg),
            )
    if bar is not None:
        bar.close()
    elapsed = time.perf_counter() - t_start
    if not (out / "best" / "model.json").exists():
        model.save(out / "best")
    best_model = SurrogateModel.load(out / "best")
    thr, f1 = calibrate_spike_threshold(best_model, val_ds)
    best_model.encoding = dataclasses.replace(best_model.encoding, spike_threshold=thr)
    best_model.card = {
        "spike_threshold_calibration": {"threshold": thr, "val_f1_2ms": f1,
                                        "note": "threshold maximising F1 at +-2 ms on the validation data"},
        "arch": cfg.arch,
        "arch_params": model.net.config,
        "parameters": int(sum(p.numel() for p in model.net.parameters())),
        "flops_per_step": int(model.net.flops_per_step()),
        "train_config": cfg.to_dict(),
        "data": [{"path": str(d.path), "content_hash": d.content_hash, "protocol": d.config.get("protocol"),
                  "protocol_options": d.config.get("protocol_options"), "n_trials": d.n_trials,
                  "duration_ms": d.duration_ms, "seed": d.config.get("seed")} for d in train_ds],
        "val_data": [{"path": str(d.path), "content_hash": d.content_hash, "n_trials": d.n_trials} for d in val_ds],
        "cell": train_ds[0].cell,
        "outputs": [dataclasses.asdict(e) for e in enc.extras],
        "training": {"steps": step, "wall_time_s": elapsed, "best_val_loss": best,
                     "stopped_early": bool(stop), "device": str(device),
                     "hardware": f"{platform.machine()} {os.cpu_count()} cores, {platform.processor() or 'cpu'}",
                     "torch_threads": torch.get_num_threads(), "history": history},
        "provenance": provenance(),
    }
    table = synapse_table(train_ds[0].synapses)
    if table is not None:  # multi-compartment cells: where each input channel sits (network site selectors)
        best_model.card["synapses"] = table
    for key, used in (("sites", enc.n_dend_sites > 0), ("ica_site", "ica" in enc.extra_names)):
        if used and train_ds[0].extra.get(key) is not None:  # where the dendritic / Ca outputs were recorded
            best_model.card[key] = train_ds[0].extra[key]
    if cfg.rest_warmup_ms:  # predictions and networks start from the model's own rest (see TrainConfig)
        best_model.card["rest_warmup_ms"] = int(cfg.rest_warmup_ms)
    best_model.save(out / "model")
    log(f"trained {cfg.arch} for {step} steps in {elapsed / 60:.1f} min; best validation loss {best:.5f}; "
        f"model in {out / 'model'}")
    return best_model
