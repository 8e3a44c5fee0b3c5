"""`ModelInfo`: everything about a model besides its weights, as one typed record.

What rebuilds the network (variant name, constructor keyword arguments, class count), how to feed
it (normalisation values), how to read its output (class names, colours) and where it came from
(training and validation sizes, the split it was selected on, run facts, folded or not).

`create_model` gives every AsymFormer one, as `model.info`; loaders, the trainer and `fuse()`
replace it (`model.info = model.info.replace(...)`); model files and ONNX exports store
`to_dict()`, and `from_dict` reads those back, 0.1 files included. Readers that may be handed any
`nn.Module` (Segmenter, export, benchmark) ask `info_of(model)` instead of probing attributes.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from torch import nn

FORMAT_VERSION = 2  # 1: asymformer 0.1 (model_name, model_kwargs, class_names, normalization, metadata)


@dataclass(frozen=True)
class ModelInfo:
    """The record. Fields are normalised on construction: names and colours become tuples, sizes
    (H, W) tuples, and `normalization` (a preset name or dict) its values as
    `data.transforms.normalization_values` gives them, so a file keeps working if a preset changes."""

    name: str | None = None                        # variant for create_model; None: not built by it
    num_classes: int | None = None
    kwargs: dict = field(default_factory=dict)     # create_model keyword arguments besides num_classes
    class_names: tuple[str, ...] | None = None
    colors: tuple[tuple[int, int, int], ...] | None = None  # one [r, g, b] per class, 0-255
    normalization: dict | None = None              # rgb_mean, rgb_std, depth_mean, depth_std (+ name)
    train_size: tuple[int, int] | None = None      # training crop (H, W)
    eval_size: tuple[int, int] | None = None       # size it was validated at (H, W)
    selected_on_split: str | None = None           # "best" checkpoints: the split that chose them
    fused: bool = False                            # BatchNorms folded (model.fuse()): inference only
    source: str | None = None                      # e.g. "official checkpoint"
    training: dict = field(default_factory=dict)   # run facts: epoch, iteration, miou, zero_depth

    def __post_init__(self):
        set_ = object.__setattr__  # frozen: normalise the fields once, here
        if self.num_classes is not None:
            if isinstance(self.num_classes, bool) or int(self.num_classes) != self.num_classes or self.num_classes < 1:
                raise ValueError(f"ModelInfo: num_classes must be an integer >= 1, got {self.num_classes!r}")
            set_(self, "num_classes", int(self.num_classes))
        kwargs = dict(self.kwargs or {})
        if "num_classes" in kwargs:
            raise ValueError("ModelInfo: num_classes is its own field, not one of kwargs")
        set_(self, "kwargs", _jsonable(kwargs))  # tuples as lists: equal after a JSON round trip
        set_(self, "training", _jsonable(dict(self.training or {})))
        if self.class_names is not None:
            names = tuple(str(n) for n in self.class_names)
            if self.num_classes is not None and len(names) != self.num_classes:
                raise ValueError(f"{len(names)} class names given for a model with {self.num_classes} classes")
            set_(self, "class_names", names)
        if self.colors is not None:
            set_(self, "colors", _colors(self.colors, self.num_classes))
        if self.normalization is not None:
            from asymformer.data.transforms import normalization_values

            set_(self, "normalization", normalization_values(self.normalization))
        for key in ("train_size", "eval_size"):
            set_(self, key, _size(getattr(self, key), key))
        set_(self, "fused", bool(self.fused))

    def replace(self, **changes) -> ModelInfo:
        """A copy with some fields changed (the record itself never changes)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        """JSON-ready: lists for tuples, plus `format_version`."""
        out = {"format_version": FORMAT_VERSION}
        for f in dataclasses.fields(self):
            out[f.name] = _jsonable(getattr(self, f.name))
        return out

    @classmethod
    def from_dict(cls, d: dict) -> ModelInfo:
        """Read `to_dict()` output, or a 0.1 file header; unknown keys (from newer minor versions) are
        ignored. ValueError for a record from a newer format or with values that do not fit."""
        if not isinstance(d, dict):
            raise ValueError(f"model info must be a JSON object, got {type(d).__name__}")
        version = d.get("format_version", 1)
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise ValueError(f"model info format {version!r} is newer than this asymformer reads "
                             f"({FORMAT_VERSION}); upgrade asymformer")
        if version == 1:
            d = _from_v1(d)
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def _from_v1(d: dict) -> dict:
    """0.1 header -> fields: num_classes lived in model_kwargs, the rest in a free `metadata` dict."""
    kwargs = dict(d.get("model_kwargs") or {})
    meta = dict(d.get("metadata") or {})
    num_classes = kwargs.pop("num_classes", 40)  # create_model's default, as 0.1 rebuilt it
    colors = meta.pop("colors", None)
    try:
        colors = None if colors is None else _colors(colors, num_classes)
    except ValueError:  # 0.1 drew such models with the standard palette: keep doing so
        colors = None
    meta.pop("model", None)  # the variant again
    return {"name": d.get("model_name"), "num_classes": num_classes, "kwargs": kwargs,
            "class_names": d.get("class_names"), "colors": colors, "normalization": d.get("normalization"),
            "train_size": meta.pop("crop_size", None), "eval_size": meta.pop("eval_size", None),
            "selected_on_split": meta.pop("selected_on_split", None), "source": meta.pop("source", None),
            "training": meta}


def _colors(colors, num_classes) -> tuple[tuple[int, int, int], ...]:
    """Checked by viz.palette, the one validator of class colours (whole numbers 0..255, one per class)."""
    from asymformer.viz import palette

    try:
        k = num_classes if num_classes is not None else len(colors)
    except TypeError:
        k = 0
    return tuple(tuple(int(v) for v in row) for row in palette(k, colors).tolist())


def _size(value, key: str) -> tuple[int, int] | None:
    if value is None:
        return None
    size = tuple(int(v) for v in value)
    if len(size) != 2 or min(size) < 1:
        raise ValueError(f"ModelInfo: {key} must be (height, width), got {value!r}")
    return size


def _jsonable(value):
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return value


def unwrap(model):
    """The module inside DataParallel / DistributedDataParallel / torch.compile wrappers."""
    while True:
        if isinstance(model, (nn.DataParallel, nn.parallel.DistributedDataParallel)):
            model = model.module
        elif type(model).__name__ == "OptimizedModule":  # torch.compile's wrapper
            model = model._orig_mod
        else:
            return model


DEFAULT_INPUT_SIZE = (480, 640)  # the official protocol's


def input_size(info: ModelInfo | None, size=None) -> tuple[tuple[int, int], str]:
    """The one rule for the size a model runs at when the user gives none (evaluate, export):
    `size` if given, else the size the checkpoint was validated at, else the official 480×640.
    Returns (size, where it came from), so a command can say why it chose it."""
    if size is not None:
        return tuple(size), "argument"
    if info is not None and info.eval_size:
        return tuple(info.eval_size), "checkpoint (validated at this size)"
    return DEFAULT_INPUT_SIZE, "default (official protocol)"


def info_of(model) -> ModelInfo | None:
    """The record of any module: an AsymFormer's own (through the wrappers `unwrap` removes), a bare
    one holding only the class count for a foreign module with an integer `num_classes`, else None.
    The one place that looks at a module's attributes for metadata."""
    model = unwrap(model)
    info = getattr(model, "info", None)
    if isinstance(info, ModelInfo):
        return info
    n = getattr(model, "num_classes", None)
    return ModelInfo(num_classes=n) if isinstance(n, int) and not isinstance(n, bool) and n >= 1 else None
