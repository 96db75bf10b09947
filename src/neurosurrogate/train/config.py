"""Training configuration: a frozen dataclass, loadable from TOML.

Example ``cfg.toml``::

    arch = "gru"
    train_data = ["data/train_mixed.h5", "data/train_paper.h5"]
    val_data = ["data/val_mixed.h5", "data/val_paper.h5"]
    out_dir = "runs/point-hh"
    max_minutes = 25
    [arch_params]
    hidden = 64
    layers = 2

A multi-compartment cell (``hay-l5pc`` data) adds ``targets = ["v_dend", "ica"]``
(see ``configs/hay-l5pc.toml``).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class TrainConfig:
    """Every knob of a training run (units in names).

    Attributes:
        arch, arch_params: registered architecture and its keyword arguments.
        train_data, val_data: dataset files (HDF5) of one cell; validation trials are
            separate simulations (never windows of training trials).
        out_dir: run folder (checkpoints, best model, log).
        seed: seeds torch and the batch sampler.
        batch_size: trials per batch.
        chunk_ms: truncated-BPTT chunk; the state is carried (detached) across the chunks
            of one trial, which always starts at t = 0 from the model's resting state.
        max_steps, max_minutes: budget (optimizer steps; wall-clock minutes of training).
        lr, lr_final, weight_decay, grad_clip: Adam(W) with cosine decay to lr_final, clipping.
        spike_weight, spike_pos_weight, offset_weight, current_weight: loss terms (see losses.py).
        spike_tolerance_ms: timing tolerance of the spike term, whole ms (0, the default: each spike
            scored in its bin; w > 0: by the largest logit within w ms, and bins within w ms of a true
            spike are not negatives; see losses.py).
        voltage_weight: weight of the soma-voltage MSE (normalised by 20 mV, so an error of
            1 mV RMS costs 0.0025 at weight 1, against a spike BCE of ~0.2 for hay-l5pc).
        spread_weight, spread_window_ms: the anti-shrinkage term of the soma voltage (the
            spread of its ``spread_window_ms`` moving average per trial and chunk must match
            the cell's; see losses.py); weight 0 (default) leaves it out.
        near_threshold_weight, near_threshold_mV: the soma-voltage samples whose (clipped) target
            is above ``near_threshold_mV`` weigh ``1 + near_threshold_weight`` times as much in
            the voltage term (see losses.py); weight 0 (default) leaves them equal.
        eval_every, patience: validation every N steps; stop after `patience` evaluations
            without improvement (early stopping); the best model is kept.
        checkpoint_every: write a resumable checkpoint every N steps.
        curriculum: train first on quiet, then subthreshold, then all trials (the paper's
            rest -> subthreshold -> suprathreshold order), switching at 10 % and 25 % of max_steps.
        teacher_forcing: feed the true past voltage to feedback models during training.
        threads: torch CPU threads (0 = all cores).
        device: 'auto' (CUDA if present), 'cpu' or 'cuda'.
        predict_currents: also learn INa and IK (when ``targets`` is None; ignored otherwise).
        targets: extra outputs to learn, any of ``ina``, ``ik`` (soma currents), ``v_dend``
            (every dendritic recording site of the data, outputs ``v_dend0_mV``, ...) and
            ``ica`` (hot-zone Ca2+ current); the data must hold them. None (the default) keeps
            the point-cell behaviour: INa and IK if ``predict_currents`` and the data vary.
            ``states`` adds auxiliary outputs ``state_<name>``, one per recorded state variable of
            the training data (hay-l5pc generated with ``--set record_states=true``; Ca2+
            concentrations and gates, each z-scored): a training aid, left out of the validation
            loss, so the validation data need not hold them.
        dend_weight, ica_weight, states_weight: loss weights of the ``v_dend`` group (all sites;
            weight 1 treats dendritic voltage like the soma voltage), of ``ica`` and of the
            ``states`` group (all state outputs together); ``current_weight`` weighs ``ina``/``ik``.
        rest_warmup_ms: if > 0, the trained model's card asks for a warmed-up resting state:
            on loading, the model runs this long without input from its zero state and starts
            every prediction and network from where that ends (its own fixed point) instead of
            from zeros, which are not exactly its rest (``gru`` only). Training and validation
            are unchanged (they start from zeros).
        v_clip_mV: soma-voltage target ceiling, mV (see ``Encoding.v_clip_mV``); None: no ceiling.
        pair_weight: weight of the loss on paired trials (``train/pairs.py``): where the training data
            hold a run generated with ``probe_rate_Hz`` beside its base run, every batch also takes the
            other trial of each pair it drew, and the difference of the two responses (soma and
            dendritic voltages) is a target; 0 (default) samples the same batches without that term.
    """

    arch: str = "gru"
    arch_params: dict = field(default_factory=dict)
    train_data: tuple[str, ...] = ()
    val_data: tuple[str, ...] = ()
    out_dir: str = "runs/surrogate"
    seed: int = 0
    batch_size: int = 32
    chunk_ms: int = 500
    max_steps: int = 20000
    max_minutes: float = 25.0
    lr: float = 3e-3
    lr_final: float = 2e-4
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    spike_weight: float = 1.0
    spike_pos_weight: float = 4.0
    offset_weight: float = 1.0
    current_weight: float = 0.1
    voltage_weight: float = 1.0
    spread_weight: float = 0.0
    spread_window_ms: int = 51
    eval_every: int = 100
    patience: int = 20
    checkpoint_every: int = 100
    curriculum: bool = False
    teacher_forcing: bool = True
    threads: int = 0
    device: str = "auto"
    predict_currents: bool = True
    targets: tuple[str, ...] | None = None
    dend_weight: float = 1.0
    ica_weight: float = 0.1
    states_weight: float = 0.1
    rest_warmup_ms: int = 0
    v_clip_mV: float | None = None
    pair_weight: float = 0.0
    spike_tolerance_ms: int = 0
    near_threshold_weight: float = 0.0
    near_threshold_mV: float = -60.0

    def _check_types(self) -> None:
        """Each scalar knob has its field's type (a TOML ``lr = "3e-3"`` names ``lr``, not a comparison
        deep inside); whole numbers are accepted for floats, booleans never for numbers."""
        kinds = {"int": (int,), "float": (int, float), "bool": (bool,), "str": (str,), "dict": (dict,)}
        for f in dataclasses.fields(self):
            ftype = str(f.type).replace(" ", "")
            optional = ftype.endswith("|None")
            base = ftype[: -len("|None")] if optional else ftype
            val = getattr(self, f.name)
            if base not in kinds or (optional and val is None):
                continue
            numeric = base in ("int", "float")
            if not isinstance(val, kinds[base]) or (numeric and isinstance(val, bool)):
                expected = {"int": "a whole number", "float": "a number", "bool": "true or false", "str": "a string",
                            "dict": "a table"}[base] + (" or nothing" if optional else "")
                raise ValueError(f"train config: {f.name} must be {expected}, got {val!r}")

    def __post_init__(self) -> None:
        self._check_types()
        if self.targets is not None:
            if isinstance(self.targets, str) or not all(isinstance(t, str) for t in self.targets):
                raise ValueError(f"train config: targets must be a list of names, got {self.targets!r}")
            object.__setattr__(self, "targets", tuple(self.targets))
            bad = [t for t in self.targets if t not in TARGETS]
            if bad:
                raise ValueError(f"train config: unknown target(s) {bad}; expected some of {list(TARGETS)}")
            if len(set(self.targets)) != len(self.targets):
                raise ValueError(f"train config: targets lists a name twice: {list(self.targets)}")
        object.__setattr__(self, "train_data", tuple(str(p) for p in self.train_data))
        object.__setattr__(self, "val_data", tuple(str(p) for p in self.val_data))
        positive = ("batch_size", "chunk_ms", "spread_window_ms", "max_steps", "eval_every", "checkpoint_every", "patience")
        for name in positive:
            if int(getattr(self, name)) < 1:
                raise ValueError(f"train config: {name} must be >= 1, got {getattr(self, name)}")
        for name in ("max_minutes", "lr", "grad_clip"):
            if not getattr(self, name) > 0:
                raise ValueError(f"train config: {name} must be > 0, got {getattr(self, name)}")
        for name in ("lr_final", "weight_decay", "spike_weight", "offset_weight", "current_weight", "voltage_weight",
                     "threads", "dend_weight", "ica_weight", "states_weight", "rest_warmup_ms", "spread_weight",
                     "pair_weight", "near_threshold_weight"):
            if getattr(self, name) < 0:
                raise ValueError(f"train config: {name} must be >= 0, got {getattr(self, name)}")
        tol = self.spike_tolerance_ms
        if isinstance(tol, bool) or not isinstance(tol, int) or not 0 <= tol <= 50:
            raise ValueError(f"train config: spike_tolerance_ms must be a whole number of ms in [0, 50], got {tol!r}")
        if not math.isfinite(self.near_threshold_mV):
            raise ValueError(f"train config: near_threshold_mV must be a finite voltage in mV, got {self.near_threshold_mV!r}")
        if self.spread_weight > 0 and self.spread_window_ms >= self.chunk_ms:
            raise ValueError(f"train config: spread_window_ms ({self.spread_window_ms}) must be shorter than "
                             f"chunk_ms ({self.chunk_ms}) when spread_weight > 0")
        if not self.train_data:
            raise ValueError("train config: train_data lists no dataset")
        if not self.val_data:
            raise ValueError("train config: val_data lists no dataset (validation must be separate trials)")
        overlap = set(self.train_data) & set(self.val_data)
        if overlap:
            raise ValueError(f"train config: {sorted(overlap)} is both training and validation data")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"train config: device must be auto, cpu or cuda, got {self.device!r}")

    @classmethod
    def from_toml(cls, path: str | Path, **overrides) -> "TrainConfig":
        from neurosurrogate.data.io import read_toml

        path = Path(path)
        data = read_toml(path, "config")
        data.update({k: v for k, v in overrides.items() if v is not None})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"config {path}: unknown key(s) {sorted(unknown)}; known: {sorted(known)}")
        base = path.parent
        for key in ("train_data", "val_data"):
            if key in data:
                data[key] = [str(p if Path(p).is_absolute() else (base / p)) for p in data[key]]
        prior = (data.get("arch_params") or {}).get("prior_file")
        if isinstance(prior, str) and not Path(prior).is_absolute():  # gru_prior's kernels, like the data
            data["arch_params"] = {**data["arch_params"], "prior_file": str(base / prior)}
        if "out_dir" in data and not Path(data["out_dir"]).is_absolute():
            data["out_dir"] = str(base / data["out_dir"])
        try:
            return cls(**data)
        except TypeError as exc:
            raise ValueError(f"config {path}: {exc}") from None

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["train_data"], d["val_data"] = list(self.train_data), list(self.val_data)
        if self.targets is not None:
            d["targets"] = list(self.targets)
        return d

    def key_dict(self) -> dict:
        """:meth:`to_dict` without the fields added later (extra targets, warm rest) while they have
        their defaults, so that checkpoints written before those fields existed still resume."""
        d = self.to_dict()
        for f in dataclasses.fields(self):
            if f.name in LATER_FIELDS and d[f.name] == f.default:
                del d[f.name]
        return d


#: extra target names of ``TrainConfig.targets``
TARGETS = ("ina", "ik", "v_dend", "ica", "states")
#: fields added after checkpoints of the point-hh model were written (see ``key_dict``)
LATER_FIELDS = ("targets", "dend_weight", "ica_weight", "states_weight", "rest_warmup_ms", "v_clip_mV",
                "voltage_weight", "spread_weight", "spread_window_ms", "pair_weight", "spike_tolerance_ms",
                "near_threshold_weight", "near_threshold_mV")
