"""Readers for the releases other projects publish, and `LAYOUTS` (the auto-detection order).

- nicr-scene-analysis-datasets (TUI-NICR, used by ESANet / EMSANet; every release since 0.4):
  NYUv2 `{split}/{rgb,depth,semantic_40|semantic_13|semantic_894}/NNNN.png` (0-based names),
  SUNRGBD `{split}/{rgb,depth,semantic}/<sensor>/<folder>/NNNNN.{jpg,png}` whose depth is the
  toolbox's `depth_bfx` PNG copied as is (millimetres rotated left by 3 bits).
- the legacy ESANet repository: the same tree with `labels_40` / `labels_13` / `labels_37`.
- DFormer / CMX: `RGB/`, `Depth/` (plt.imsave(..., cmap='Greys_r'): RGBA, per-image min-max),
  `Label/` (NYUv2) or `labels/` (SUNRGBD); CMX's `HHA/` is not depth.
- the authors' older NYUv2 release: `images/*.npy`, `depths/*.npy` (metres), `labels40/*.npy`.

The class list always comes from the release (its label folder, or a dataset.json), never
from the name of the folder the user put it in. docs/data.md has every tree.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

from asymformer.viz import palette

from .classes import CLASS_SETS
from .io import RGB_SUFFIXES
from .layouts import (
    LayoutSpec,
    available_splits,
    find_image,
    read_asymformer_nyuv2,
    read_asymformer_sunrgbd,
    read_custom,
    split_lines,
    with_dataset_json,
)

SUNRGBD_SENSORS = ("kv1", "kv2", "realsense", "xtion")
MAX_CLASSES = 255  # 255 is void


def _label_dirs(base: Path, prefix: str) -> dict[int, str]:
    """{K: folder} of the `<prefix>K` label folders under base (e.g. semantic_40, semantic_13)."""
    out = {}
    if base.is_dir():
        for p in base.iterdir():
            m = re.fullmatch(re.escape(prefix) + r"(\d+)", p.name)
            if m and p.is_dir():
                out[int(m.group(1))] = p.name
    return out


def _pick_label_set(found: dict[int, str], wanted, root: Path) -> int:
    """The label set to load: `wanted` (classes=K), else 40, else the only one there."""
    sets = ", ".join(str(k) for k in sorted(found)) or "none"
    if wanted is not None:
        if int(wanted) not in found:
            raise ValueError(f"{root} has no {int(wanted)}-class labels; it holds label sets: {sets} "
                             f"(choose one with classes=K / --classes K)")
        k = int(wanted)
    elif 40 in found:
        k = 40
    elif len(found) == 1:
        k = next(iter(found))
    else:
        raise ValueError(f"{root} holds several label sets ({sets}); choose one with classes=K / --classes K")
    if k > MAX_CLASSES:
        raise ValueError(f"{root}: the {k}-class labels are not supported (at most {MAX_CLASSES} classes, 255 "
                         f"is void); choose another label set with classes=K / --classes K ({sets})")
    if k not in CLASS_SETS and not (root / "dataset.json").is_file():
        raise ValueError(f"{root}: no class names are known for the {k}-class labels; write a dataset.json "
                         f"with {{\"names\": [...{k} names]}} in {root}")
    return k


def _split_base(root: Path, split: str, sub: str) -> Path:
    base = root / split
    if not (base / sub).is_dir():
        avail = sorted(p.name for p in root.iterdir() if (p / sub).is_dir())
        raise ValueError(f"unknown split {split!r}: {base / sub} does not exist; available splits in "
                         f"{root}: {', '.join(avail) or 'none'}")
    return base


def _names(root: Path, base: Path, split: str) -> list[str]:
    if (root / f"{split}.txt").is_file():
        return split_lines(root, split)
    return sorted(p.relative_to(base / "rgb").with_suffix("").as_posix() for p in (base / "rgb").rglob("*")
                  if p.suffix.lower() in RGB_SUFFIXES)


def read_nicr(root: Path, split: str, opts: dict) -> LayoutSpec:
    """nicr-scene-analysis-datasets NYUv2 / SUNRGBD, and the legacy ESANet tree (labels_K)."""
    base = _split_base(root, split, "rgb")
    names = _names(root, base, split)
    if (base / "semantic").is_dir():  # SUNRGBD: 37 classes, rotated depth, per-sensor folders
        layout, label_dir, k, encoding = "nicr_sunrgbd", "semantic", 37, "sunrgbd_rotated"
        found = {37: "semantic"}
        if opts.get("classes") not in (None, 37):
            raise ValueError(f"{root} is a SUNRGBD release with 37 classes only, not {opts['classes']}")
    else:
        found = _label_dirs(base, "semantic_") or _label_dirs(base, "labels_")
        layout = "nicr_nyuv2" if _label_dirs(base, "semantic_") else "esanet"
        k = _pick_label_set(found, opts.get("classes"), root)
        label_dir, encoding = found[k], "linear"
    sensors = [n.split("/")[0] for n in names] if layout == "nicr_sunrgbd" else None
    if sensors is not None and opts.get("sensors"):
        keep = _check_sensors(opts["sensors"], root)
        idx = [i for i, s in enumerate(sensors) if s in keep]
        if not idx:
            raise ValueError(f"{root} ({split}) has no frames of sensor(s) {', '.join(keep)}")
        names, sensors = [names[i] for i in idx], [sensors[i] for i in idx]
    files = [(find_image(base / "rgb", n), base / "depth" / f"{n}.png",
              base / label_dir / f"{n}.png") for n in names]
    names_k, colors = CLASS_SETS.get(k) or (tuple(f"class {i + 1}" for i in range(k)), palette(k))
    spec = LayoutSpec(layout, names, files, names_k, colors, depth_encoding=encoding, sensors=sensors,
                      label_sets=tuple(sorted(found)), source=f"{base / label_dir} ({k} classes)")
    return with_dataset_json(spec, root)


def _check_sensors(sensors, root) -> tuple[str, ...]:
    keep = tuple(s.strip() for s in (sensors.split(",") if isinstance(sensors, str) else sensors) if s.strip())
    bad = [s for s in keep if s not in SUNRGBD_SENSORS]
    if bad or not keep:
        raise ValueError(f"unknown SUNRGBD sensor(s) {bad or sensors!r} for {root}; use a comma list of "
                         f"{', '.join(SUNRGBD_SENSORS)}")
    return keep


def read_dformer(root: Path, split: str, opts: dict) -> LayoutSpec:
    """DFormer / CMX: RGB/, Depth/ (matplotlib Greys_r RGBA, per-image min-max), Label/ or labels/.

    The label folder tells the class set: DFormer's SUNRGBD uses `labels/` (37 classes), its
    NYUv2 `Label/` (40); a dataset.json with names overrides. Depth has no metric scale: it
    loads as relative depth in [0, 1] (the colormap inverted) with the "dformer" normalisation.
    """
    label_dir = "labels" if (root / "labels").is_dir() else "Label"
    k = 37 if label_dir == "labels" else 40
    if opts.get("classes") not in (None, k) and not (root / "dataset.json").is_file():
        raise ValueError(f"{root}: a DFormer {label_dir}/ folder holds {k} classes, not {opts['classes']}; "
                         f"write a dataset.json with the class names if yours differ")
    names, files = [], []
    for line in split_lines(root, split):
        rel = Path(line.split()[0])
        stem = rel.stem
        rgb = find_image(root / "RGB", stem) if not rel.suffix else (
            root / rel if rel.parent != Path(".") else root / "RGB" / rel)
        names.append(stem)
        files.append((rgb, root / "Depth" / f"{stem}.png", root / label_dir / f"{stem}.png"))
    warnings.warn(f"{root}: DFormer depth PNGs are 8-bit per-image min-max scaled, so metric depth is lost; "
                  f"they load as relative depth in [0, 1] with the 'dformer' normalisation", stacklevel=3)
    names_k, colors = CLASS_SETS[k]
    spec = LayoutSpec("dformer", names, files, names_k, colors, depth_unit=1.0, depth_16bit=False,
                      normalization="dformer", depth_encoding="matplotlib_greys_r", relative_depth=True,
                      source=f"{root / label_dir} (DFormer {'SUNRGBD' if k == 37 else 'NYUv2'} label folder)")
    return with_dataset_json(spec, root)


def read_hha_only(root: Path, split: str, opts: dict) -> LayoutSpec:
    raise ValueError(f"{root} has RGB/ and HHA/ but no Depth/ folder: HHA (horizontal disparity, height, "
                     f"angle) is a 3-channel encoding derived from depth, not depth, and AsymFormer's depth "
                     f"branch needs depth. Get the depth maps of the release (CMX/DFormer publish Depth/) "
                     f"and put them in {root / 'Depth'}")


def read_asymformer_npy(root: Path, split: str, opts: dict) -> LayoutSpec:
    """The authors' older NYUv2 release: images/*.npy (RGB), depths/*.npy (metres), labels40/*.npy."""
    names = split_lines(root, split)
    files = [(root / "images" / f"{n}.npy", root / "depths" / f"{n}.npy", root / "labels40" / f"{n}.npy")
             for n in names]
    names_k, colors = CLASS_SETS[40]
    return with_dataset_json(LayoutSpec("asymformer_npy", names, files, names_k, colors, depth_unit=1.0,
                                        source=f"{root / 'labels40'} (40 classes)"), root)


def _is_dir(root: Path, *names: str) -> bool:
    return all((root / n).is_dir() for n in names)


def _any_split(root: Path, pattern: str) -> bool:
    return any(p.is_dir() for split in ("train", "test", "val") for p in (root / split).glob(pattern)) \
        if root.is_dir() else False


# name -> (detector, reader, what it expects); the order is the auto-detection order.
LAYOUTS = {
    "custom": (lambda r: (r / "classes.json").is_file() and _is_dir(r, "rgb"), read_custom,
               "classes.json, rgb/, depth/, labels/, train.txt/test.txt"),
    "asymformer_nyuv2": (lambda r: _is_dir(r, "images", "depths", "labels"), read_asymformer_nyuv2,
                         "images/, depths/ (uint16 mm), labels/ (0 void, 1..40), train.txt/test.txt"),
    "asymformer_npy": (lambda r: _is_dir(r, "images", "depths", "labels40"), read_asymformer_npy,
                       "images/*.npy, depths/*.npy (metres), labels40/*.npy, train.txt/test.txt"),
    "asymformer_sunrgbd": (lambda r: _is_dir(r, "train_image") or _is_dir(r, "test_image"),
                           read_asymformer_sunrgbd,
                           "{train,test}_image/*.npy, {train,test}_depth/, {train,test}_label/, "
                           "train.txt/test.txt"),
    "nicr_nyuv2": (lambda r: _any_split(r, "semantic_*"), read_nicr,
                   "{train,test}/rgb/, {train,test}/depth/ (uint16 mm), {train,test}/semantic_40|13/"),
    "nicr_sunrgbd": (lambda r: _any_split(r, "semantic"), read_nicr,
                     "{train,test}/{rgb,depth,semantic}/<sensor>/<folder>/NNNNN, depth = toolbox depth_bfx"),
    "esanet": (lambda r: _any_split(r, "labels_*"), read_nicr,
               "{train,test}/rgb/, {train,test}/depth/ (uint16 mm), {train,test}/labels_40|13|37/"),
    "dformer": (lambda r: _is_dir(r, "RGB", "Depth") and (_is_dir(r, "Label") or _is_dir(r, "labels")),
                read_dformer, "RGB/, Depth/, Label/ (NYUv2) or labels/ (SUNRGBD), train.txt/test.txt"),
    "cmx_hha": (lambda r: _is_dir(r, "RGB", "HHA") and not _is_dir(r, "Depth"), read_hha_only,
                "(refused) RGB/ + HHA/ without Depth/"),
}


def detect_layout(root: Path) -> str:
    """The first layout whose folders are present in `root`, or a ValueError listing them all."""
    for name, (detect, _, _) in LAYOUTS.items():
        if detect(root):
            return name
    expected = "; ".join(f"{name}: {what}" for name, (_, _, what) in LAYOUTS.items() if name != "cmx_hha")
    raise ValueError(f"cannot recognise the dataset layout of {root}. Known layouts and what they "
                     f"expect: {expected}. Pass layout=... or arrange the files like one of them "
                     f"(see docs/data.md)")


__all__ = ["LAYOUTS", "SUNRGBD_SENSORS", "available_splits", "detect_layout"]
