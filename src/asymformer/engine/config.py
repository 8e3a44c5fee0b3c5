"""Training configuration: one dataclass whose defaults are the paper recipe.

Precedence: dataclass defaults < YAML/JSON file < command-line overrides. The resolved config is
saved as `RUN_DIR/config.json` so a run can be reproduced or resumed from its directory alone.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from asymformer.files import write_json

AMP_CHOICES = ("none", "bf16", "fp16")
# Limits of one invocation (a job's slice), never part of the run: not saved, never inherited.
PER_INVOCATION = {"stop_after", "time_limit"}
# What may change when resuming: where and how fast things run, the lr, the clip and the length.
RESUME_OVERRIDABLE = {"data", "workers", "device", "log_every", "tensorboard", "figure_format", "progress", "lr",
                      "grad_clip", "epochs", "val_every", "save_every", "val_batch_size", "amp", "compile",
                      "channels_last", "deterministic"} | PER_INVOCATION
# Why everything else is fixed once a run has started (shown when a resume tries to change it).
RESUME_REFUSED_BECAUSE = {
    **dict.fromkeys(("model", "model_kwargs", "num_classes", "sync_bn"),
                    "the saved weights belong to that network"),
    **dict.fromkeys(("batch_size", "seed", "layout", "train_split"),
                    "it fixes the data order and the iterations per epoch that the saved position counts in"),
    **dict.fromkeys(("crop_size", "base_size", "scale_range", "hsv", "flip", "normalization", "zero_depth"),
                    "it changes what the network is trained on half-way through"),
    **dict.fromkeys(("weight_decay", "betas", "warmup_epochs", "warmup_start_factor", "poly_power"),
                    "the optimiser and schedule state saved so far were built with it"),
    **dict.fromkeys(("eval_size", "val_split"), "best.safetensors was chosen by the validation it defines"),
    **dict.fromkeys(("pretrained_rgb", "pretrained_depth", "init_from"),
                    "it only initialises a new run; a resumed run continues from state.pt"),
}


@dataclass
class TrainConfig:
    """Paper recipe (NYUv2): AdamW 5e-5, wd 0.01, warm-up then poly 0.9, batch 8, 480x640 crops."""

    data: str = ""                       # dataset root, or "synthetic:N_TRAIN:N_TEST" (in memory)
    out: str = ""                        # run directory
    layout: str = "auto"
    data_options: dict = field(default_factory=dict)  # open_dataset keywords: classes, sensors, depth_unit, ...
    train_split: str = "train"
    val_split: str = "test"
    model: str = "asymformer_b0_t"
    model_kwargs: dict = field(default_factory=dict)
    num_classes: int | None = None       # None: from the dataset
    pretrained_rgb: str | None = None    # ImageNet ConvNeXt weights
    pretrained_depth: str | None = None
    init_from: str | None = None         # start from a whole-model checkpoint (fine-tuning)
    epochs: int = 500
    batch_size: int = 8                  # global batch, split over the processes
    lr: float = 5e-5
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_epochs: float = 4.0           # official script (the paper text says 10)
    warmup_start_factor: float = 1e-3
    poly_power: float = 0.9
    crop_size: tuple[int, int] = (480, 640)
    base_size: tuple[int, int] = (480, 640)
    scale_range: tuple[float, float] = (1.0, 2.0)
    hsv: bool = True
    flip: bool = True
    normalization: str | dict | None = None  # preset name or values; None: the dataset's recommended preset
    eval_size: tuple[int, int] = (480, 640)
    val_every: int = 10                  # epochs; 0 disables validation
    val_batch_size: int = 1
    save_every: int = 50                 # epochs; 0 keeps only last/best
    workers: int = field(default_factory=lambda: min(4, os.cpu_count() or 1))  # no oversubscription
    device: str = "auto"
    amp: str = "none"
    compile: bool = False
    channels_last: bool = False
    grad_clip: float = 0.0               # max grad norm; 0 disables
    sync_bn: bool = True                 # CUDA + several processes only
    zero_depth: bool = False             # ablation: feed zeros instead of depth
    seed: int = 0
    deterministic: bool = False
    log_every: int = 10
    stop_after: int | None = None        # stop resumably after this global iteration
    time_limit: float | None = None      # minutes of wall time for this invocation; then stop resumably
    tensorboard: bool = True
    figure_format: str = "png"           # curves.FMT: png, pdf or svg
    progress: bool = True

    def validate(self) -> TrainConfig:
        """Raise one clear ValueError for an impossible setting (before anything is built)."""
        bad = set(self.data_options or {}) - {"classes", "sensors", "depth_unit", "depth_encoding"}
        if bad:
            raise ValueError(f"data_options: unknown key(s) {sorted(bad)}; use classes, sensors, depth_unit, "
                             f"depth_encoding")
        if not self.data:
            raise ValueError("no dataset: pass --data DIR (or data: in the config file)")
        if not self.out:
            raise ValueError("no run directory: pass --out RUN_DIR")
        if self.figure_format not in ("png", "pdf", "svg"):
            raise ValueError(f"--figure-format must be png, pdf or svg, got {self.figure_format!r}")
        if self.amp not in AMP_CHOICES:
            raise ValueError(f"--amp must be one of {AMP_CHOICES}, got {self.amp!r}")
        for name in ("epochs", "batch_size", "val_batch_size"):
            if getattr(self, name) <= 0:
                raise ValueError(f"--{name.replace('_', '-')} must be positive, got {getattr(self, name)}")
        if not 0 < self.lr < math.inf:
            raise ValueError(f"--lr must be a positive number, got {self.lr}")
        for name in ("weight_decay", "warmup_epochs", "grad_clip", "warmup_start_factor", "poly_power"):
            if not 0 <= getattr(self, name) < math.inf:
                raise ValueError(f"--{name.replace('_', '-')} must be a number >= 0, got {getattr(self, name)}")
        for name in ("crop_size", "base_size", "eval_size"):
            hw = getattr(self, name)
            if len(hw) != 2 or min(hw) < 32:
                raise ValueError(f"{name} must be two sizes >= 32 (HxW), got {hw}")
        lo, hi = self.scale_range
        if not 0 < lo <= hi:
            raise ValueError(f"scale_range must satisfy 0 < low <= high, got {self.scale_range}")
        if not 0 <= self.seed < 2**32:  # numpy's seeds; found here, not after the run directory is written
            raise ValueError(f"--seed must be a whole number from 0 to 2**32 - 1, got {self.seed}")
        if self.stop_after is not None and self.stop_after < 0:
            raise ValueError(f"--stop-after must be >= 0, got {self.stop_after}")
        if self.time_limit is not None and not 0 < self.time_limit < math.inf:
            raise ValueError(f"--time-limit must be positive (minutes), got {self.time_limit}")
        if os.path.exists(self.out) and not os.path.isdir(self.out):
            raise ValueError(f"--out {self.out} is an existing file; give a folder for the run")
        if self.workers < 0 or self.val_every < 0 or self.save_every < 0 or self.grad_clip < 0:
            raise ValueError("workers, val_every, save_every and grad_clip must be >= 0")
        return self

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


_FIELD_TYPES = {f.name: str(f.type) for f in dataclasses.fields(TrainConfig)}


def config_from_dict(values: dict, source: str = "config") -> TrainConfig:
    """Build a TrainConfig, rejecting unknown keys by name (a typo must not be silently ignored).

    Values are converted to the declared field types: YAML 1.1 reads `1e-3` as a string and JSON
    has no tuples, so `lr: 1e-3` must still train at 0.001 and `crop_size: [480, 640]` be a pair.
    """
    unknown = sorted(set(values) - set(_FIELD_TYPES))
    if unknown:
        raise ValueError(f"{source}: unknown setting(s) {unknown}; known settings: {sorted(_FIELD_TYPES)}")
    return TrainConfig(**{k: coerce(v, _FIELD_TYPES[k], f"{source}: {k}") for k, v in values.items()})


_TRUE, _FALSE = {"true", "yes", "on", "1"}, {"false", "no", "off", "0"}


def coerce(value, declared: str, where: str):
    """Convert one setting to its declared type ('int', 'float | None', 'tuple[int, int]', ...)."""
    kinds = [k.strip() for k in declared.split("|")]
    if value is None:
        if "None" in kinds:
            return None
        raise ValueError(f"{where}: a value is required (got {value!r})")
    if isinstance(value, dict) and "dict" in kinds:
        return dict(value)
    kind = kinds[0]
    if kind.startswith("tuple"):
        elem = kind[kind.index("[") + 1:].split(",")[0].strip()
        return tuple(coerce(v, elem, where) for v in parse_pair(value, where))
    if kind == "bool":
        if isinstance(value, bool):
            return value
        if str(value).strip().lower() in _TRUE | _FALSE:
            return str(value).strip().lower() in _TRUE
        raise ValueError(f"{where}: expected true or false, got {value!r}")
    if kind in ("int", "float"):
        return _number(value, kind, where)
    if kind == "dict":
        if not isinstance(value, dict):
            raise ValueError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if isinstance(value, (dict, list, tuple)):
        raise ValueError(f"{where}: expected text, got {value!r}")
    return str(value)


def _number(value, kind: str, where: str):
    if isinstance(value, bool):
        raise ValueError(f"{where}: expected a number, got {value!r}")
    try:
        number = float(value.strip()) if isinstance(value, str) else float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: expected {'an integer' if kind == 'int' else 'a number'}, "
                         f"got {value!r}") from None
    if kind == "float":
        return number
    if not number.is_integer():
        raise ValueError(f"{where}: expected an integer, got {value!r}")
    return int(number)


def parse_pair(value, name: str) -> tuple:
    """Accept [h, w], (h, w) or 'HxW' / 'a,b' strings for the pair-valued settings."""
    if not isinstance(value, (str, list, tuple)):
        raise ValueError(f"{name}: expected two values like [480, 640] or 480x640, got {value!r}")
    if isinstance(value, str):
        sep = "x" if "x" in value.lower() else ","
        parts = value.lower().split(sep)
        try:
            value = [float(p) if "." in p else int(p) for p in parts]
        except ValueError:
            raise ValueError(f"{name}: expected two numbers like 480x640, got {value!r}") from None
    if len(value) != 2:
        raise ValueError(f"{name}: expected two values, got {value!r}")
    return tuple(value)


def read_config_file(path: str | os.PathLike) -> dict:
    """Read a .json or .yaml/.yml file into a dict (YAML needs PyYAML, the dev extra)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    text = path.read_text()
    if path.suffix.lower() in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise ValueError(f"{path}: reading YAML needs PyYAML (pip install pyyaml), "
                             "or write the config as JSON") from None
        try:
            values = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise ValueError(f"{path}: invalid YAML: {exc}") from None
    else:
        try:
            values = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: invalid JSON: {exc}") from None
    if not isinstance(values, dict):
        raise ValueError(f"{path}: expected a mapping of settings at the top level")
    return values


def resolve_config(config_file=None, overrides: dict | None = None) -> TrainConfig:
    """Defaults < file < overrides (None values in overrides mean 'not given')."""
    values = read_config_file(config_file) if config_file else {}
    source = str(config_file) if config_file else "overrides"
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return config_from_dict(values, source)


def save_config(config: TrainConfig, path: str | os.PathLike) -> None:
    """Write the resolved config atomically (JSON: readable without optional dependencies)."""
    values = config.to_dict()
    values.update(dict.fromkeys(PER_INVOCATION))  # a later --resume must not inherit one job's limits
    write_json(path, values, indent=2)


def load_run_config(run_dir: str | os.PathLike) -> TrainConfig:
    """The config saved in a run directory (what --resume continues)."""
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: --resume expects a run directory written by "
                                "`asymformer train`")
    return config_from_dict(read_config_file(path), str(path))
