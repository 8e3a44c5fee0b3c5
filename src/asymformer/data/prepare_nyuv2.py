"""`asymformer prepare nyuv2`: nyu_depth_v2_labeled.mat -> the official AsymFormer NYUv2 layout.

Output (loaded by `open_dataset(out, split)`, layout "asymformer_nyuv2"):
images/NNNN.png (RGB), depths/NNNN.png (uint16 mm, in-painted `depths`), optional
raw_depths/NNNN.png (uint16 mm, `rawDepths`, 0 = no measurement), labels/NNNN.png (uint8,
0 void, 1..40 via classMapping40 `mapClass`), train.txt (795) / test.txt (654), dataset.json.
NNNN is the 1-based frame index, zero-padded to 4 digits, as in ESANet ("0001" ... "1449").

The .mat is 2.8 GB, so frames are read one at a time; finished frames are skipped, so an
interrupted run resumes where it stopped.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from asymformer.files import write_json
from asymformer.progress import progress_bar

from .classes import NYU13_COLORS, NYU40_CLASSES, NYU40_COLORS
from .io import atomic_write_bytes, write_png

NYU_SPLIT_SIZES = {"train": 795, "test": 654}
NUM_RAW_CLASSES = 894


def frame_name(index1: int) -> str:
    """1-based frame index -> file stem ("0001")."""
    return f"{index1:04d}"


def _require_file(path, flag: str) -> Path:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{flag} {path}: file not found")
    return path


def _loadmat(path: Path, flag: str) -> dict:
    import scipy.io

    try:
        return scipy.io.loadmat(path)
    except (NotImplementedError, ValueError, OSError, scipy.io.matlab.MatReadError) as exc:
        raise ValueError(f"{flag} {path}: cannot read it as a MATLAB v5 .mat ({exc})") from None


def load_splits(path) -> dict[str, list[int]]:
    """splits.mat -> {"train": [1-based indices], "test": [...]}."""
    path = _require_file(path, "--splits")
    mat = _loadmat(path, "--splits")
    if "trainNdxs" not in mat or "testNdxs" not in mat:
        keys = sorted(k for k in mat if not k.startswith("__"))
        raise ValueError(f"--splits {path} has no trainNdxs/testNdxs (found: {keys}); pass the NYUv2 "
                         f"splits.mat")
    return {"train": sorted(int(i) for i in np.ravel(mat["trainNdxs"])),
            "test": sorted(int(i) for i in np.ravel(mat["testNdxs"]))}


def load_class_lut(path) -> np.ndarray:
    """classMapping40.mat -> uint8 lookup table of 895 entries: lut[label894] = label40 (0 void)."""
    path = _require_file(path, "--mapping")
    mat = _loadmat(path, "--mapping")
    if "mapClass" not in mat:
        keys = sorted(k for k in mat if not k.startswith("__"))
        raise ValueError(f"--mapping {path} has no mapClass (found: {keys}); pass classMapping40.mat")
    mapping = np.ravel(mat["mapClass"]).astype(np.int64)
    if mapping.size != NUM_RAW_CLASSES or mapping.min() < 1 or mapping.max() > 40:
        raise ValueError(f"--mapping {path}: mapClass must hold {NUM_RAW_CLASSES} values in 1..40, got "
                         f"{mapping.size} values in {mapping.min()}..{mapping.max()}")
    return np.concatenate([[0], mapping]).astype(np.uint8)


def load_class13(path) -> tuple[np.ndarray, list[str]]:
    """class13Mapping.mat (Couprie et al.; bundled with nicr-scene-analysis-datasets) ->
    (41-entry lut40to13 with 0 = void, the 13 class names as the file spells them)."""
    path = _require_file(path, "--mapping13")
    mat = _loadmat(path, "--mapping13")
    if "classMapping13" not in mat:
        keys = sorted(k for k in mat if not k.startswith("__"))
        raise ValueError(f"--mapping13 {path} has no classMapping13 (found: {keys}); pass class13Mapping.mat")
    rec = mat["classMapping13"]
    rec = rec[0, 0] if getattr(rec, "shape", ()) == (1, 1) else rec
    try:
        m13 = np.ravel(rec["labels13"]).astype(np.int64)
        names = [str(np.ravel(n)[0]) for n in np.ravel(rec["classNames"])]
    except (KeyError, ValueError, IndexError, TypeError):
        raise ValueError(f"--mapping13 {path}: classMapping13 needs fields labels13 (40 values) and "
                         f"classNames (13 names)") from None
    if m13.size != 40 or m13.min() < 1 or m13.max() > 13 or len(names) != 13:
        raise ValueError(f"--mapping13 {path}: labels13 must hold 40 values in 1..13 and classNames 13 names, "
                         f"got {m13.size} values in {m13.min()}..{m13.max()} and {len(names)} names")
    return np.concatenate([[0], m13]).astype(np.uint8), names


def open_labeled_mat(path, raw_depth: bool = False):
    """Open nyu_depth_v2_labeled.mat (v7.3 = HDF5) and check the datasets it must have."""
    import h5py

    path = _require_file(path, "--mat")
    if not h5py.is_hdf5(path):
        with open(path, "rb") as f:
            head = f.read(20)
        kind = "a MATLAB v5 .mat" if head.startswith(b"MATLAB 5.0") else "not an HDF5 file"
        raise ValueError(f"--mat {path} is {kind}; expected the MATLAB v7.3 (HDF5) "
                         f"nyu_depth_v2_labeled.mat (2.8 GB) from the NYU Depth V2 site")
    f = h5py.File(path, "r")
    needed = ["images", "depths", "labels"] + (["rawDepths"] if raw_depth else [])
    missing = [k for k in needed if k not in f]
    if missing:
        f.close()
        raise ValueError(f"--mat {path} lacks dataset(s) {missing}; is it nyu_depth_v2_labeled.mat?")
    n, c, w, h = f["images"].shape if f["images"].ndim == 4 else (0, 0, 0, 0)
    for key in needed[1:]:
        if c != 3 or f[key].shape != (n, w, h):
            f.close()
            raise ValueError(f"--mat {path}: unexpected shapes images {f['images'].shape}, {key} "
                             f"{f[key].shape}; expected (N, 3, W, H) and (N, W, H)")
    return f


def _outputs(out: Path, name: str, raw_depth: bool) -> dict[str, Path]:
    files = {k: out / k / f"{name}.png" for k in ("images", "depths", "labels")}
    if raw_depth:
        files["raw_depths"] = out / "raw_depths" / f"{name}.png"
    return files


def metres_to_mm(depth: np.ndarray) -> np.ndarray:
    """float metres -> uint16 millimetres (non-finite/negative -> 0, clipped at 65.535 m)."""
    depth = np.nan_to_num(depth, nan=0.0, posinf=0.0, neginf=0.0)
    return np.clip(np.rint(depth * 1000.0), 0, 65535).astype(np.uint16)


def _convert_frame(data: dict, i: int, lut: np.ndarray, files: dict) -> None:
    """Frame i (0-based) of the .mat's datasets -> its PNGs (h5py axes are reversed: transpose)."""
    write_png(files["images"], np.ascontiguousarray(data["images"][i].transpose(2, 1, 0)).astype(np.uint8))
    write_png(files["depths"], metres_to_mm(data["depths"][i].T))
    if "raw_depths" in files:
        write_png(files["raw_depths"], metres_to_mm(data["rawDepths"][i].T))
    label = np.asarray(data["labels"][i].T)
    if label.max() > NUM_RAW_CLASSES:
        raise ValueError(f"frame {i + 1}: label value {int(label.max())} exceeds {NUM_RAW_CLASSES}")
    write_png(files["labels"], lut[label.astype(np.intp)])


def _write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def prepare_nyuv2(mat, splits, mapping, out, raw_depth: bool = False, overwrite: bool = False,
                  expect_counts: bool = True, classes: int = 40, mapping13=None, progress: bool = True) -> dict:
    """Convert the labeled NYUv2 .mat; returns {"train", "test", "written", "skipped", "out"}.

    classes=13 maps the 40 classes on to NYUv2-13 with `mapping13` (class13Mapping.mat) and
    takes the class names from that file.
    """
    split_idx = load_splits(splits)
    if expect_counts and {k: len(v) for k, v in split_idx.items()} != NYU_SPLIT_SIZES:
        raise ValueError(f"--splits {splits}: expected {NYU_SPLIT_SIZES} indices, got "
                         f"{ {k: len(v) for k, v in split_idx.items()} }")
    lut = load_class_lut(mapping)
    names, colors = list(NYU40_CLASSES), NYU40_COLORS.tolist()
    if classes == 13:
        if mapping13 is None:
            raise ValueError("--classes 13 needs --mapping13 class13Mapping.mat (the 40 -> 13 mapping)")
        lut13, names = load_class13(mapping13)
        lut, colors = lut13[lut], NYU13_COLORS.tolist()
    elif classes != 40:
        raise ValueError(f"--classes must be 40 or 13, got {classes}")
    out = Path(out)
    _check_same_classes(out, names, overwrite)
    written = skipped = 0
    with open_labeled_mat(mat, raw_depth) as f:
        frames = f["images"].shape[0]
        wanted = sorted(set(split_idx["train"]) | set(split_idx["test"]))
        if wanted[0] < 1 or wanted[-1] > frames:
            raise ValueError(f"--splits {splits} indexes frames {wanted[0]}..{wanted[-1]} but --mat "
                             f"{mat} has {frames} frames")
        data = {k: f[k] for k in ("images", "depths", "labels", "rawDepths") if k in f}
        for index1 in progress_bar(wanted, desc="prepare nyuv2", unit="frame", enabled=progress):
            files = _outputs(out, frame_name(index1), raw_depth)
            if not overwrite and all(p.is_file() for p in files.values()):
                skipped += 1
                continue
            _convert_frame(data, index1 - 1, lut, files)
            written += 1
    for split, idx in split_idx.items():
        _write_text(out / f"{split}.txt", "".join(frame_name(i) + "\n" for i in idx))
    meta = {"dataset": "nyuv2", "layout": "asymformer_nyuv2", "names": names,
            "colors": colors, "depth_unit": 0.001, "labels": "one_based",
            "raw_depths": bool(raw_depth), "name_format": "1-based frame index, 4 digits"}
    write_json(out / "dataset.json", meta)
    _verify(out, [frame_name(i) for i in wanted], raw_depth)
    return {"train": len(split_idx["train"]), "test": len(split_idx["test"]), "written": written,
            "skipped": skipped, "out": str(out)}


def _check_same_classes(out: Path, names: list[str], overwrite: bool) -> None:
    """Resuming into a folder prepared with another label set would mix label files."""
    meta = out / "dataset.json"
    if overwrite or not meta.is_file():
        return
    try:
        old = json.loads(meta.read_text()).get("names")
    except (OSError, ValueError):
        return
    if old and len(old) != len(names):
        raise ValueError(f"{out} was prepared with {len(old)} classes; pass --overwrite to rewrite it with "
                         f"{len(names)}, or use another --out")


def _verify(out: Path, names: list[str], raw_depth: bool) -> None:
    """Every listed frame has all its files (catches a disk filling up mid-run)."""
    missing = [p for n in names for p in _outputs(out, n, raw_depth).values() if not p.is_file()]
    if missing:
        raise ValueError(f"{len(missing)} output file(s) are missing after conversion, e.g. "
                         f"{[str(p) for p in missing[:5]]}; rerun the command to resume")
