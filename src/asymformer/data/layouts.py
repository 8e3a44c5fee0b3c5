"""Layout readers: root folder + split -> the sample files and how to interpret them.

One function per on-disk layout (see docs/data.md for the trees); each returns a
`LayoutSpec`. `LAYOUTS` lists them in auto-detection order with what each expects, which is
also the text of the error when nothing matches.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .classes import NYU40_CLASSES, NYU40_COLORS, SUN37_CLASSES, SUN37_COLORS, make_palette

LABEL_CONVENTIONS = ("one_based", "zero_based")
RGB_SUFFIXES = (".png", ".jpg", ".jpeg")
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
        spec.colors = make_palette(len(names))
    if "colors" in meta:
        colors = np.asarray(meta["colors"])
        if colors.shape != (len(spec.class_names), 3) or colors.min() < 0 or colors.max() > 255:
            raise ValueError(f"{path}: 'colors' must be {len(spec.class_names)} [r, g, b] triples "
                             f"in 0..255 (one per name), got shape {colors.shape}")
        spec.colors = colors.astype(np.uint8)
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


def _available_splits(root: Path) -> list[str]:
    return sorted(p.stem for p in root.glob("*.txt") if p.stem in ("train", "test", "val", "trainval"))


def _split_lines(root: Path, split: str) -> list[str]:
    path = root / f"{split}.txt"
    if not path.is_file():
        avail = _available_splits(root)
        raise ValueError(f"unknown split {split!r}: {path} does not exist; available splits in "
                         f"{root}: {', '.join(avail) or 'none (no train.txt / test.txt found)'}")
    lines = [ln.strip() for ln in path.read_text().splitlines()]
    lines = [ln for ln in lines if ln and not ln.startswith("#")]
    if not lines:
        raise ValueError(f"split file {path} is empty; it should list one sample name per line")
    return lines


def _find_image(folder: Path, name: str, suffixes=RGB_SUFFIXES) -> Path:
    """The first existing `folder/name<suffix>`; the first candidate when none exists."""
    for suffix in suffixes:
        candidate = folder / f"{name}{suffix}"
        if candidate.is_file():
            return candidate
    return folder / f"{name}{suffixes[0]}"


def check_files(root: Path, layout: str, files: list) -> None:
    missing = [p for triple in files for p in triple if not Path(p).is_file()]
    if missing:
        shown = ", ".join(str(Path(p).relative_to(root)) if Path(p).is_relative_to(root) else str(p)
                          for p in missing[:MAX_LISTED])
        raise FileNotFoundError(f"{len(missing)} file(s) listed by the split are missing in {root} "
                                f"({layout} layout), e.g. {shown}")


# --------------------------------------------------------------------------- layouts
def read_custom(root: Path, split: str) -> LayoutSpec:
    """Users' own data: classes.json + rgb/ depth/ labels/ + <split>.txt (docs/developing.md)."""
    meta_path = root / "classes.json"
    if not meta_path.is_file():
        raise FileNotFoundError(f"custom layout needs {meta_path} with at least {{\"names\": [...]}}")
    if "names" not in _read_json(meta_path):
        raise ValueError(f"{meta_path} has no 'names' list (one class name per class)")
    names = _split_lines(root, split)
    files = [(_find_image(root / "rgb", n), root / "depth" / f"{n}.png", root / "labels" / f"{n}.png")
             for n in names]
    return _apply_meta(LayoutSpec("custom", names, files), meta_path)


def read_asymformer_nyuv2(root: Path, split: str) -> LayoutSpec:
    """Official AsymFormer NYUv2 release (= `asymformer prepare nyuv2`): depth uint16 mm, labels 0..40."""
    names = _split_lines(root, split)
    files = [(_find_image(root / "images", n), root / "depths" / f"{n}.png", root / "labels" / f"{n}.png")
             for n in names]
    return _with_dataset_json(LayoutSpec("asymformer_nyuv2", names, files), root)


def read_asymformer_sunrgbd(root: Path, split: str) -> LayoutSpec:
    """Official AsymFormer SUNRGBD release: <split>_image/*.npy, <split>_depth, <split>_label.

    Their loader divides the depth PNG by 10000 and then normalises with the NYUv2 metric
    statistics (mean 2.84 m), so the stored unit is 0.1 mm: metres = value / 10000.
    """
    names = _split_lines(root, split)
    files = [(root / f"{split}_image" / f"{n}.npy", root / f"{split}_depth" / f"{n}.png",
              root / f"{split}_label" / f"{n}.png") for n in names]
    spec = LayoutSpec("asymformer_sunrgbd", names, files, SUN37_CLASSES, SUN37_COLORS, depth_unit=1e-4)
    return _with_dataset_json(spec, root)


def read_esanet(root: Path, split: str) -> LayoutSpec:
    """nicr-scene-analysis-datasets (ESANet): <split>/{rgb,depth,labels_40|labels_37}/<name>.png."""
    base = root / split
    if not (base / "rgb").is_dir():
        avail = sorted(p.name for p in root.iterdir() if (p / "rgb").is_dir())
        raise ValueError(f"unknown split {split!r}: {base / 'rgb'} does not exist; available splits "
                         f"in {root}: {', '.join(avail) or 'none'}")
    if (root / f"{split}.txt").is_file():
        names = _split_lines(root, split)
    else:
        names = sorted(str(p.relative_to(base / "rgb").with_suffix("")) for p in (base / "rgb").rglob("*")
                       if p.suffix.lower() in RGB_SUFFIXES)
    if (base / "labels_40").is_dir() or not (base / "labels_37").is_dir():
        label_dir, classes, colors = "labels_40", NYU40_CLASSES, NYU40_COLORS
    else:
        label_dir, classes, colors = "labels_37", SUN37_CLASSES, SUN37_COLORS
    files = [(_find_image(base / "rgb", n), base / "depth" / f"{n}.png", base / label_dir / f"{n}.png")
             for n in names]
    return _with_dataset_json(LayoutSpec("esanet", names, files, classes, colors), root)


def read_dformer(root: Path, split: str) -> LayoutSpec:
    """DFormer / CMX: RGB/, Depth/ (8-bit per-image min-max), Label/ (0 void, 1..K); lines `RGB/x.jpg`.

    The depth has no metric scale; it is loaded as value / 255 (relative, in [0, 1]) and the
    dataset recommends the "dformer" normalisation. SUNRGBD (37 classes) is assumed when the
    folder name contains "sun"; a dataset.json overrides either guess.
    """
    names, files = [], []
    for line in _split_lines(root, split):
        rel = Path(line.split()[0])
        stem = rel.stem
        if not rel.suffix:
            rgb = _find_image(root / "RGB", stem)
        else:
            rgb = root / rel if rel.parent != Path(".") else root / "RGB" / rel
        names.append(stem)
        files.append((rgb, _find_image(root / "Depth", stem, (".png", ".jpg")),
                      _find_image(root / "Label", stem, (".png",))))
    sun = "sun" in root.resolve().name.lower()
    spec = LayoutSpec("dformer", names, files, SUN37_CLASSES if sun else NYU40_CLASSES,
                      SUN37_COLORS if sun else NYU40_COLORS, depth_unit=1 / 255, depth_16bit=False,
                      normalization="dformer")
    warnings.warn(f"{root}: DFormer layout depth is 8-bit per-image min-max scaled, so metric depth is "
                  f"lost; it is loaded as relative depth in [0, 1] with the 'dformer' normalisation",
                  stacklevel=3)
    return _with_dataset_json(spec, root)


def _with_dataset_json(spec: LayoutSpec, root: Path) -> LayoutSpec:
    meta = root / "dataset.json"
    return _apply_meta(spec, meta) if meta.is_file() else spec


def _is_dir(root: Path, *names: str) -> bool:
    return all((root / n).is_dir() for n in names)


# name -> (detector, reader, what it expects); the order is the auto-detection order.
LAYOUTS = {
    "custom": (lambda r: (r / "classes.json").is_file() and _is_dir(r, "rgb"), read_custom,
               "classes.json, rgb/, depth/, labels/, train.txt/test.txt"),
    "asymformer_nyuv2": (lambda r: _is_dir(r, "images", "depths", "labels"), read_asymformer_nyuv2,
                         "images/, depths/ (uint16 mm), labels/ (0 void, 1..40), train.txt/test.txt"),
    "asymformer_sunrgbd": (lambda r: _is_dir(r, "train_image") or _is_dir(r, "test_image"),
                           read_asymformer_sunrgbd,
                           "{train,test}_image/*.npy, {train,test}_depth/, {train,test}_label/, "
                           "train.txt/test.txt"),
    "esanet": (lambda r: _is_dir(r, "train/rgb") or _is_dir(r, "test/rgb"), read_esanet,
               "{train,test}/rgb/, {train,test}/depth/ (uint16 mm), {train,test}/labels_40/ or labels_37/"),
    "dformer": (lambda r: _is_dir(r, "RGB", "Depth", "Label"), read_dformer,
                "RGB/, Depth/, Label/, train.txt/test.txt with lines like RGB/x.jpg"),
}


def detect_layout(root: Path) -> str:
    """The first layout whose folders are present in `root`, or a ValueError listing them all."""
    for name, (detect, _, _) in LAYOUTS.items():
        if detect(root):
            return name
    expected = "; ".join(f"{name}: {what}" for name, (_, _, what) in LAYOUTS.items())
    raise ValueError(f"cannot recognise the dataset layout of {root}. Known layouts and what they "
                     f"expect: {expected}. Pass layout=... or arrange the files like one of them "
                     f"(see docs/data.md)")
