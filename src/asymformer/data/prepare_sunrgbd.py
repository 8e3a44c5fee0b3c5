"""`asymformer prepare sunrgbd`: SUNRGBD toolbox files -> the custom layout at native size.

Inputs (from the SUNRGBD toolbox, structure as documented by it and used by RedNet/ESANet;
only fabricated copies were available while writing this, see docs/data.md):
- SUNRGBDMeta.mat (MATLAB v5): struct array `SUNRGBDMeta` with `rgbpath` / `depthpath`
  absolute paths under /n/fs/sun3d/data/SUNRGBD/...; we keep the part after "SUNRGBD/".
- SUNRGBD2Dseg.mat (v7.3/HDF5): `SUNRGBD2Dseg.seglabel`, one object reference per frame to a
  W×H (h5py axis order) array of 37-class labels, 0 = void.
- allsplit.mat (MATLAB v5): `alltrain` (5285) / `alltest` (5050) sequence folders.

Output: rgb/NNNNN.jpg (the original JPEG bytes, copied), depth/NNNNN.png (uint16 mm decoded
from the toolbox's 3-bit circular shift, clipped at 8 m as the toolbox does; from the filled
depth_bfx/ by default, like NYUv2's in-painted depths, or depth/ with depth="raw"), labels/NNNNN.png
(uint8, 0 void, 1..37), classes.json, train.txt, test.txt. NNNNN = 1-based index into
SUNRGBDMeta. Images keep their native (camera-dependent) size; transforms resize to 480×640.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from asymformer.files import atomic_path, write_json
from asymformer.progress import progress_bar

from .classes import SUN37_CLASSES, SUN37_COLORS
from .io import atomic_write_bytes, write_png

SUN_SPLIT_SIZES = {"train": 5285, "test": 5050}
MAX_DEPTH_MM = 8000


def sample_name(index1: int) -> str:
    return f"{index1:05d}"


def decode_depth(raw: np.ndarray) -> np.ndarray:
    """Toolbox depth PNG -> uint16 mm: undo the 3-bit circular shift, clip at 8 m (0 stays invalid)."""
    v = np.asarray(raw).astype(np.uint16)
    mm = (v >> np.uint16(3)) | (v << np.uint16(13))
    return np.minimum(mm, MAX_DEPTH_MM).astype(np.uint16)


def _relative(path: str) -> str:
    """'/n/fs/sun3d/data/SUNRGBD/kv1/x/' -> 'kv1/x' (paths in the toolbox are Princeton-absolute)."""
    path = str(path).replace("\\", "/").rstrip("/")
    marker = "SUNRGBD/"
    return path.split(marker, 1)[1] if marker in path else path.lstrip("/")


def _require(path, flag: str) -> Path:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{flag} {path}: not found")
    return path


def _loadmat(path: Path, flag: str, key_hint: str) -> dict:
    import scipy.io

    try:
        return scipy.io.loadmat(path, squeeze_me=True, struct_as_record=False)
    except NotImplementedError:
        raise ValueError(f"{flag} {path} is a MATLAB v7.3 file; expected the toolbox's v5 {key_hint}") from None
    except (ValueError, OSError, scipy.io.matlab.MatReadError) as exc:
        raise ValueError(f"{flag} {path}: cannot read it as a .mat file ({exc})") from None


def load_meta(path) -> list[tuple[str, str]]:
    """SUNRGBDMeta.mat -> [(rgb relative path, depth relative path)] in toolbox order."""
    path = _require(path, "--meta")
    mat = _loadmat(path, "--meta", "SUNRGBDMeta.mat")
    if "SUNRGBDMeta" not in mat:
        raise ValueError(f"--meta {path} has no SUNRGBDMeta struct (found: {_keys(mat)}); pass "
                         f"SUNRGBDtoolbox/Metadata/SUNRGBDMeta.mat")
    entries = []
    for i, m in enumerate(np.atleast_1d(mat["SUNRGBDMeta"])):
        if not hasattr(m, "rgbpath") or not hasattr(m, "depthpath"):
            raise ValueError(f"--meta {path}: entry {i + 1} lacks rgbpath/depthpath")
        entries.append((_relative(m.rgbpath), _relative(m.depthpath)))
    return entries


def load_split(path) -> dict[str, set[str]]:
    """allsplit.mat -> {"train": {sequence folders}, "test": {...}} relative to the SUNRGBD root."""
    path = _require(path, "--split")
    mat = _loadmat(path, "--split", "allsplit.mat")
    if "alltrain" not in mat or "alltest" not in mat:
        raise ValueError(f"--split {path} has no alltrain/alltest (found: {_keys(mat)}); pass "
                         f"SUNRGBDtoolbox/traintestSUNRGBD/allsplit.mat")
    return {split: {_relative(p) for p in np.atleast_1d(mat[key])}
            for split, key in (("train", "alltrain"), ("test", "alltest"))}


def _keys(mat: dict) -> list[str]:
    return sorted(k for k in mat if not k.startswith("__"))


def open_seg(path):
    """SUNRGBD2Dseg.mat (HDF5) -> (file, flat array of per-frame references)."""
    import h5py

    path = _require(path, "--seg")
    if not h5py.is_hdf5(path):
        raise ValueError(f"--seg {path} is not a MATLAB v7.3 (HDF5) file; pass "
                         f"SUNRGBDtoolbox/Metadata/SUNRGBD2Dseg.mat")
    f = h5py.File(path, "r")
    if "SUNRGBD2Dseg" not in f or "seglabel" not in f["SUNRGBD2Dseg"]:
        f.close()
        raise ValueError(f"--seg {path} has no SUNRGBD2Dseg/seglabel dataset")
    return f, np.ravel(f["SUNRGBD2Dseg"]["seglabel"][()])


def _outputs(out: Path, name: str, rgb_src: Path) -> dict[str, Path]:
    ext = ".jpg" if rgb_src.suffix.lower() in (".jpg", ".jpeg") else ".png"
    return {"rgb": out / "rgb" / f"{name}{ext}", "depth": out / "depth" / f"{name}.png",
            "labels": out / "labels" / f"{name}.png"}


def _convert(rgb_src: Path, depth_src: Path, label: np.ndarray, files: dict) -> None:
    with Image.open(rgb_src) as im:
        width, height = im.size
        if files["rgb"].suffix == ".png":
            write_png(files["rgb"], np.asarray(im.convert("RGB")))
    with Image.open(depth_src) as im:
        depth = decode_depth(np.asarray(im))
    for what, arr in (("depth", depth), ("label", label)):
        if arr.shape != (height, width):
            raise ValueError(f"{what} of {rgb_src} is {arr.shape[0]}x{arr.shape[1]} but the image is "
                             f"{height}x{width} ({depth_src if what == 'depth' else '--seg'})")
    if label.max() > len(SUN37_CLASSES):
        raise ValueError(f"seglabel of {rgb_src} has value {int(label.max())} > 37")
    if files["rgb"].suffix == ".jpg":
        with atomic_path(files["rgb"]) as tmp:
            shutil.copyfile(rgb_src, tmp)
    write_png(files["depth"], depth)
    write_png(files["labels"], label.astype(np.uint8))


def _assign_splits(entries, splits) -> dict[str, list[int]]:
    """1-based meta indices per split, matching each frame's sequence folder (rgbpath minus image/x.jpg)."""
    result = {"train": [], "test": []}
    for i, (rgb_rel, _) in enumerate(entries, start=1):
        seq = str(Path(rgb_rel).parent.parent)
        for split, folders in splits.items():
            if seq in folders:
                result[split].append(i)
    return result


def _sources(root: Path, entries, indices, depth: str) -> dict[int, tuple[Path, Path]]:
    """Source (rgb, depth) files per index; all missing ones reported at once."""
    sources, missing = {}, []
    for i in indices:
        rgb_rel, depth_rel = entries[i - 1]
        depth_path = Path(depth_rel)
        if depth == "filled":
            depth_path = depth_path.parent.parent / "depth_bfx" / depth_path.name
        sources[i] = (root / rgb_rel, root / depth_path)
        missing += [str(p) for p in sources[i] if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"{len(missing)} source file(s) are missing under --root {root}, e.g. "
                                f"{missing[:5]}; --root must be the SUNRGBD folder holding kv1/, kv2/, ...")
    return sources


def prepare_sunrgbd(root, meta, seg, split, out, depth: str = "filled", expect_counts: bool = True,
                    overwrite: bool = False, progress: bool = True) -> dict:
    """Convert SUNRGBD; returns {"train", "test", "written", "skipped", "out"}."""
    if depth not in ("filled", "raw"):
        raise ValueError(f"depth must be 'filled' (depth_bfx/) or 'raw' (depth/), got {depth!r}")
    root = _require(root, "--root")
    entries = load_meta(meta)
    split_idx = _assign_splits(entries, load_split(split))
    counts = {k: len(v) for k, v in split_idx.items()}
    if expect_counts and counts != SUN_SPLIT_SIZES:
        raise ValueError(f"matched {counts} frames of --meta {meta} to --split {split}, expected "
                         f"{SUN_SPLIT_SIZES}; check the files (or pass --no-expect-counts for a subset)")
    if not counts["train"] and not counts["test"]:
        raise ValueError(f"no frame of --meta {meta} belongs to a sequence listed in --split {split}")
    wanted = sorted(set(split_idx["train"]) | set(split_idx["test"]))
    sources = _sources(Path(root), entries, wanted, depth)
    out = Path(out)
    written = skipped = 0
    f, refs = open_seg(seg)
    with f:
        if len(refs) != len(entries):
            raise ValueError(f"--seg {seg} has {len(refs)} labels but --meta {meta} has {len(entries)} frames")
        for i in progress_bar(wanted, desc="prepare sunrgbd", unit="frame", enabled=progress):
            files = _outputs(out, sample_name(i), sources[i][0])
            if not overwrite and all(p.is_file() for p in files.values()):
                skipped += 1
                continue
            label = np.asarray(f[refs[i - 1]][()]).T
            _convert(*sources[i], label, files)
            written += 1
    for name, idx in split_idx.items():
        atomic_write_bytes(out / f"{name}.txt", "".join(sample_name(i) + "\n" for i in idx).encode())
    classes = {"names": list(SUN37_CLASSES), "colors": SUN37_COLORS.tolist(), "depth_unit": 0.001,
               "labels": "one_based", "dataset": "sunrgbd", "depth": depth}
    write_json(out / "classes.json", classes)
    return {**counts, "written": written, "skipped": skipped, "out": str(out)}
