"""Layout readers for our own layouts (custom, official AsymFormer) and the shared helpers.

One function per on-disk layout (see docs/data.md for the trees); each returns a
`LayoutSpec`. The peers' releases (NICR, DFormer/CMX, the authors' npy release) live in
releases.py, which also holds `LAYOUTS`, the auto-detection order.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from asymformer.viz import palette

from .classes import NYU40_CLASSES, NYU40_COLORS, SUN37_CLASSES, SUN37_COLORS
from .io import RGB_SUFFIXES

LABEL_CONVENTIONS = ("one_based", "zero_based")
MAX_LISTED = 5


@dataclass
class LayoutSpec:
    """What a layout reader found: the files of a split and how to interpret them."""

    layout: str
    names: list
    files: list  # (rgb, depth, label) paths per name
    class_names: tuple = NYU40_CLASSES
    colors: np.ndarray = field(default_factory=lambda: NYU40_COLORS)
    depth_unit: float = 0.001
    labels: str = "one_based"
    depth_16bit: bool = True
    normalization: str = "nyuv2_official"
    depth_encoding: str = "linear"   # see io.read_depth
    relative_depth: bool = False     # True: depth is not metric (no metre sanity check)
    sensors: list | None = None      # per-sample sensor (SUNRGBD), aligned with names
    label_sets: tuple = ()           # label sets the release offers (for messages), e.g. (40, 13)
    source: str = ""                 # where the class list came from (for messages)


# --------------------------------------------------------------------------- helpers
def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read {path}: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path} must hold a JSON object, got {type(data).__name__}")
    return data


def _apply_meta(spec: LayoutSpec, path: Path) -> LayoutSpec:
    """Override the layout's defaults with classes.json / dataset.json (names, colors, unit...)."""
    meta = _read_json(path)
    if "names" in meta:
        names = meta["names"]
        if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
            raise ValueError(f"{path}: 'names' must be a non-empty list of class-name strings")
        if len(names) > 255:
            raise ValueError(f"{path}: at most 255 classes are supported (255 is void), got {len(names)}")
        spec.class_names = tuple(names)
    if "names" in meta or "colors" in meta:  # new names without colours get the standard palette
        try:
            spec.colors = palette(len(spec.class_names), meta.get("colors"))
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None
    if "depth_unit" in meta:
        unit = meta["depth_unit"]
        if not isinstance(unit, int | float) or unit <= 0:
            raise ValueError(f"{path}: 'depth_unit' must be a positive number (metres per stored "
                             f"value, e.g. 0.001 for millimetres), got {unit!r}")
        spec.depth_unit = float(unit)
    if "labels" in meta:
        if meta["labels"] not in LABEL_CONVENTIONS:
            raise ValueError(f"{path}: 'labels' must be one of {LABEL_CONVENTIONS}, got {meta['labels']!r}")
        spec.labels = meta["labels"]
    if "normalization" in meta:
        spec.normalization = str(meta["normalization"])
    return spec


def available_splits(root: Path) -> list[str]:
    return sorted(p.stem for p in root.glob("*.txt") if p.stem in ("train", "test", "val", "trainval"))


def split_lines(root: Path, split: str) -> list[str]:
    path = root / f"{split}.txt"
    if not path.is_file():
        avail = available_splits(root)
        raise ValueError(f"unknown split {split!r}: {path} does not exist; available splits in "
                         f"{root}: {', '.join(avail) or 'none (no train.txt / test.txt found)'}")
    lines = [ln.strip() for ln in path.read_text().splitlines()]
    lines = [ln for ln in lines if ln and not ln.startswith("#")]
    if not lines:
        raise ValueError(f"split file {path} is empty; it should list one sample name per line")
    return lines


def find_image(folder: Path, name: str) -> Path:
    """The first existing `folder/name<suffix>` of io.RGB_SUFFIXES (png first); `name.png` when none exists."""
    for suffix in RGB_SUFFIXES:
        candidate = folder / f"{name}{suffix}"
        if candidate.is_file():
            return candidate
    return folder / f"{name}{RGB_SUFFIXES[0]}"


def check_files(root: Path, layout: str, files: list) -> None:
    missing = [p for triple in files for p in triple if not Path(p).is_file()]
    if missing:
        shown = ", ".join(str(Path(p).relative_to(root)) if Path(p).is_relative_to(root) else str(p)
                          for p in missing[:MAX_LISTED])
        raise FileNotFoundError(f"{len(missing)} file(s) listed by the split are missing in {root} "
                                f"({layout} layout), e.g. {shown}")


# --------------------------------------------------------------------------- layouts
def read_custom(root: Path, split: str, opts: dict) -> LayoutSpec:
    """Users' own data: classes.json + rgb/ depth/ labels/ + <split>.txt (docs/developing.md)."""
    meta_path = root / "classes.json"
    if not meta_path.is_file():
        raise FileNotFoundError(f"custom layout needs {meta_path} with at least {{\"names\": [...]}}")
    if "names" not in _read_json(meta_path):
        raise ValueError(f"{meta_path} has no 'names' list (one class name per class)")
    names = split_lines(root, split)
    files = [(find_image(root / "rgb", n), root / "depth" / f"{n}.png", root / "labels" / f"{n}.png")
             for n in names]
    return _apply_meta(LayoutSpec("custom", names, files, source=str(meta_path)), meta_path)


def read_asymformer_nyuv2(root: Path, split: str, opts: dict) -> LayoutSpec:
    """Official AsymFormer NYUv2 release (= `asymformer prepare nyuv2`): depth uint16 mm, labels 0..40."""
    names = split_lines(root, split)
    files = [(find_image(root / "images", n), root / "depths" / f"{n}.png", root / "labels" / f"{n}.png")
             for n in names]
    return with_dataset_json(LayoutSpec("asymformer_nyuv2", names, files), root)


def read_asymformer_sunrgbd(root: Path, split: str, opts: dict) -> LayoutSpec:
    """Official AsymFormer SUNRGBD release: <split>_image/*.npy, <split>_depth, <split>_label.

    Their loader divides the depth PNG by 10000 and then normalises with the NYUv2 metric
    statistics (mean 2.84 m), so the stored unit is 0.1 mm: metres = value / 10000.
    """
    names = split_lines(root, split)
    files = [(root / f"{split}_image" / f"{n}.npy", root / f"{split}_depth" / f"{n}.png",
              root / f"{split}_label" / f"{n}.png") for n in names]
    spec = LayoutSpec("asymformer_sunrgbd", names, files, SUN37_CLASSES, SUN37_COLORS, depth_unit=1e-4)
    return with_dataset_json(spec, root)


def with_dataset_json(spec: LayoutSpec, root: Path) -> LayoutSpec:
    meta = root / "dataset.json"
    if meta.is_file():
        spec.source = str(meta)
        return _apply_meta(spec, meta)
    return spec
