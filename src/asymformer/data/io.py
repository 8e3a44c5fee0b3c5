"""Reading RGB / depth / label images with one clear error per bad file, and atomic PNG writes.

Every reader names the offending path, so a broken file deep inside a 10k-image dataset is
found without a debugger. Depth is returned in metres; the unit of the stored integers is
the caller's (layout's) knowledge, passed as `depth_unit` (metres per stored value).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image

from asymformer.deprecation import renamed_keyword
from asymformer.files import atomic_write_bytes  # noqa: F401 - the one atomic writer, re-exported

# The file kinds each reader accepts: the one list per role that layouts (which file of a frame
# to look for) and `predict` (which files of a folder to take) use. Files are told apart by
# suffix: .npy / .npz are read with numpy, everything else with PIL. They differ on purpose:
# JPEG is lossy, fine for colour but not for depth values or class indices.
# tests/data/test_io.py writes a file of every kind listed and reads it back, so a list cannot
# name a format its reader does not handle.
RGB_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".npy", ".npz")
DEPTH_SUFFIXES = (".png", ".tif", ".tiff", ".npy", ".npz")
LABEL_SUFFIXES = (".png", ".tif", ".tiff", ".npy", ".npz")
ANY_SUFFIXES = tuple(dict.fromkeys(RGB_SUFFIXES + DEPTH_SUFFIXES + LABEL_SUFFIXES))
DEPTH_ENCODINGS = ("linear", "sunrgbd_rotated", "matplotlib_greys_r")
SUNRGBD_MAX_MM = 8000  # read3dPoints.m clips the decoded depth at 8 m

# The 9 colorbrewer "Greys" anchors matplotlib interpolates (reversed for "Greys_r"): DFormer's
# depth PNGs hold these grey levels, not a linear function of depth.
_GREYS_R = (0.0, 0.1450980392156863, 0.3215686274509804, 0.45098039215686275, 0.5882352941176471,
            0.7411764705882353, 0.8509803921568627, 0.9411764705882353, 1.0)


def _check_exists(path: Path, what: str) -> None:
    if not path.is_file():
        raise FileNotFoundError(f"{what} file not found: {path}")


def _load_npz(path: Path, what: str) -> np.ndarray:
    with np.load(path, allow_pickle=False) as z:
        keys = list(z.keys())
        key = what if what in keys else (keys[0] if len(keys) == 1 else None)
        if key is None:
            raise ValueError(f"{what} file {path} holds arrays {keys}; store one array, or one named "
                             f"{what!r}")
        return z[key]


def _load(path, what: str) -> tuple[np.ndarray, str]:
    """Return (array, PIL mode or 'npy') for an image, .npy or .npz file."""
    path = Path(path)
    _check_exists(path, what)
    if path.suffix.lower() == ".exr":
        raise ValueError(f"{what} file {path} is OpenEXR, which is not supported; save float depth in metres as "
                         f"a 32-bit float .tiff, .npy or .npz")
    try:
        if path.suffix.lower() == ".npy":
            return np.load(path, allow_pickle=False), "npy"
        if path.suffix.lower() == ".npz":
            return _load_npz(path, what), "npy"
        with Image.open(path) as img:
            img.load()
            mode = img.mode
            if mode in ("RGBA", "LA", "P", "CMYK", "YCbCr", "1") and what == "RGB":
                img = img.convert("RGB")
            return np.array(img), mode  # a writable copy: transforms may edit in place
    except (OSError, ValueError, SyntaxError) as exc:
        if isinstance(exc, ValueError) and str(exc).startswith(what):
            raise
        raise ValueError(f"cannot read {what} file {path}: {exc} (is it a valid image?)") from None


def colour_scale(is_float: bool, lo: float, hi: float, what: str) -> float:
    """The one rule for colour values, for files, arrays and tensors alike: the factor to uint8.

    uint8-range integers are taken as they are; float colour in 0..1 (what float camera drivers
    and most libraries produce) is scaled by 255, float colour in 0..255 is rounded. Anything
    else (NaN, negative, 16-bit) is refused with the fix, never rounded into a black frame.
    A float frame whose brightest value is <= 1 is read as 0..1.
    """
    if is_float and not (np.isfinite(lo) and np.isfinite(hi)):
        raise ValueError(f"{what} holds NaN or inf values; expected colour in 0..1 (float) or 0..255")
    if lo < 0:
        raise ValueError(f"{what} holds negative values (min {lo:g}); expected colour in 0..1 (float) or 0..255 "
                         "(undo the normalisation first)")
    if is_float:
        if hi <= 1.0:
            return 255.0
        if hi <= 255.0:
            return 1.0
        raise ValueError(f"{what} holds float values up to {hi:g}; expected colour in 0..1 or 0..255")
    if hi > 255:
        raise ValueError(f"{what} holds values up to {hi:g}, outside 0..255 (16-bit colour?); expected uint8 "
                         "colour: convert 16-bit with (x >> 8).astype('uint8')")
    return 1.0


def colour_to_uint8(arr: np.ndarray, what: str) -> np.ndarray:
    """H×W×3 (or any shape) colour -> uint8 by `colour_scale`'s rule; uint8 passes through."""
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
        raise ValueError(f"{what} holds {arr.dtype} values; expected uint8 colour (or float in 0..1)")
    if arr.size == 0:
        return arr.astype(np.uint8)
    is_float = bool(np.issubdtype(arr.dtype, np.floating))
    scale = colour_scale(is_float, float(np.min(arr)), float(np.max(arr)), what)
    return np.rint(arr.astype(np.float32) * np.float32(scale)).clip(0, 255).astype(np.uint8)


def read_rgb(path) -> np.ndarray:
    """H×W×3 uint8 from any of RGB_SUFFIXES; grey is repeated to 3 channels, alpha is dropped.
    Float colour (npy / tiff) in 0..1 or 0..255 is scaled by `colour_scale`'s rule."""
    arr, mode = _load(path, "RGB")
    if mode in ("I;16", "I;16B", "I"):
        raise ValueError(f"RGB file {path} is a {mode} (16-bit) image; expected 8-bit RGB or grey")
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise ValueError(f"RGB file {path} has shape {arr.shape}; expected H×W, H×W×3 or H×W×4")
    return np.ascontiguousarray(colour_to_uint8(arr[:, :, :3], f"RGB file {path}"))


def _single_channel(arr: np.ndarray, mode: str, path) -> np.ndarray:
    """Grey saved as RGB or RGBA (matplotlib's imsave always writes RGBA) -> H×W."""
    if arr.ndim == 3 and mode != "npy" and arr.shape[2] in (2, 3, 4):
        colour = arr[:, :, :3] if arr.shape[2] >= 3 else arr[:, :, :1]
        if not (colour == colour[:, :, :1]).all():
            raise ValueError(f"depth file {path} has {arr.shape[2]} different channels; expected a "
                             f"single-channel depth image (a colour-mapped picture of depth cannot be "
                             f"read back as depth)")
        if arr.shape[2] in (2, 4) and not (arr[:, :, -1] == arr[0, 0, -1]).all():
            raise ValueError(f"depth file {path} has a varying alpha channel; expected a depth image")
        arr = arr[:, :, 0]
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim != 2:
        raise ValueError(f"depth file {path} has shape {arr.shape}; expected H×W")
    return arr


def greys_r_table() -> tuple[np.ndarray, np.ndarray]:
    """(byte of each of matplotlib's 256 'Greys_r' entries, relative depth of each byte value)."""
    lut = np.interp(np.linspace(0.0, 1.0, 256), np.linspace(0.0, 1.0, len(_GREYS_R)), _GREYS_R)
    forward = (lut * 255).astype(np.uint8)  # matplotlib: to_rgba(bytes=True) truncates
    centre = (np.arange(256) + 0.5) / 256  # entry i holds normalised values in [i/256, (i+1)/256)
    known = np.unique(forward)
    pos = np.array([centre[forward == g].mean() for g in known])
    inverse = np.interp(np.arange(256), known, pos).astype(np.float32)
    inverse[0], inverse[255] = 0.0, 1.0
    return forward, inverse


def resolve_depth_unit(dtype, depth_unit, path, arg: str = "depth_unit") -> float:
    """Metres per stored value: `depth_unit` when given (> 0), else float = metres, 16-bit = mm; 8-bit refused.

    The one rule for files (read_depth, `--depth-unit`) and arrays (Segmenter's depth_unit), so
    the CLI and the API agree on every input.
    """
    if depth_unit is not None:
        if (isinstance(depth_unit, bool) or not isinstance(depth_unit, int | float | np.integer | np.floating)
                or not 0 < depth_unit < float("inf")):
            raise ValueError(f"{arg} must be a positive number of metres per stored value "
                             f"(0.001 for millimetres, 1 for metres), got {depth_unit!r}")
        return float(depth_unit)
    if dtype is None or np.issubdtype(dtype, np.floating):
        return 1.0
    if dtype == np.uint8 or dtype == np.int8 or dtype == np.bool_:
        raise ValueError(f"{path} is 8-bit depth: its unit is unknown (usually a visualisation, not a "
                         f"measurement). Use the camera's 16-bit or float depth, or state the unit with "
                         f"--depth-unit <metres per value> (depth_unit=... in Python)")
    return 0.001


MAX_DEPTH_M = 100.0  # past any depth camera's range (and any room): a unit mistake
MIN_DEPTH_M = 0.01  # a frame whose farthest point is 1 cm away: metres read as millimetres
_UNITS = ((1.0, "metres"), (0.001, "millimetres"), (0.0001, "tenths of a millimetre"))


def check_depth_range(max_metres: float, unit: float, where, given: bool = True) -> None:
    """Refuse depth whose farthest valid point is implausible after the unit, whatever its source
    (--depth-unit, depth_unit=, a file's default), naming the unit the values most likely are in.

    `max_metres` is the largest valid depth after scaling by `unit` (metres per stored value).
    """
    if not max_metres > 0 or MIN_DEPTH_M <= max_metres <= MAX_DEPTH_M:  # no valid depth, or plausible
        return
    stored = max_metres / unit
    fits = [(u, name) for u, name in _UNITS if MIN_DEPTH_M * 10 <= stored * u <= MAX_DEPTH_M]
    how = f"depth_unit {unit:g} (given)" if given else f"depth_unit {unit:g} (the default for this kind of data)"
    hint = (f"the values look like {fits[0][1]}: pass --depth-unit {fits[0][0]:g} (depth_unit={fits[0][0]:g})"
            if fits else "pass the camera's metres per stored value as --depth-unit (depth_unit=...)")
    far = "beyond any depth camera's range" if max_metres > MAX_DEPTH_M else "closer than any depth camera sees"
    raise ValueError(f"{where}: depth reaches {max_metres:.4g} m with {how}, {far}, so the unit is wrong; {hint}")


def check_float_metres(max_value: float, path) -> None:
    """Float depth is metres by default; values past 100 are millimetres, which would be 1000× off."""
    check_depth_range(max_value, 1.0, path, given=False)


def read_depth(path, depth_unit: float | None = None, expect_16bit: bool = True, encoding: str = "linear", *,
               unit: float | None = None, report: dict | None = None) -> np.ndarray:
    """H×W float32 metres (0 = invalid) from any of DEPTH_SUFFIXES (png / tiff / npy / npz).

    depth_unit: metres per stored value; None = float files are metres, integer files millimetres,
    8-bit files an error (their unit cannot be known). encoding: "linear" (value × depth_unit),
    "sunrgbd_rotated" (the SUNRGBD toolbox PNG: 16-bit mm rotated left by 3 bits, decoded and
    clipped at 8 m as read3dPoints.m does) or "matplotlib_greys_r" (DFormer's plt.imsave PNGs:
    relative depth in [0, 1], not metres). An 8-bit PNG where 16-bit is expected loads with a
    warning naming the file. `unit` is the deprecated name of depth_unit (0.1). Depth whose farthest
    point is implausible after the unit (past 100 m, under 1 cm) is refused naming the likely unit.
    `report`, a dict, receives `invalid_depth` of the stored values (before invalid pixels become 0).
    """
    depth_unit = renamed_keyword("read_depth", "unit", "depth_unit", unit, depth_unit)
    if encoding not in DEPTH_ENCODINGS:
        raise ValueError(f"unknown depth encoding {encoding!r}; use one of {', '.join(DEPTH_ENCODINGS)}")
    arr, mode = _load(path, "depth")
    arr = _single_channel(arr, mode, path)
    if encoding == "matplotlib_greys_r":
        if arr.dtype != np.uint8:
            raise ValueError(f"depth file {path} is {arr.dtype}; a matplotlib 'Greys_r' depth PNG is 8-bit")
        return greys_r_table()[1][arr]
    if encoding == "sunrgbd_rotated":
        if arr.dtype != np.uint16:
            raise ValueError(f"depth file {path} is {arr.dtype}; SUNRGBD toolbox depth PNGs are uint16")
        v = arr.astype(np.uint32)
        mm = ((v >> 3) | (v << 13)) & 0xFFFF
        return (np.minimum(mm, SUNRGBD_MAX_MM).astype(np.float32) * np.float32(0.001))
    if expect_16bit and arr.dtype == np.uint8 and depth_unit is not None:
        warnings.warn(f"depth file {path} is 8-bit; expected 16-bit depth, metric precision is lost",
                      stacklevel=2)
    if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
        raise ValueError(f"depth file {path} holds {arr.dtype} values; expected numbers")
    scale = resolve_depth_unit(arr.dtype, depth_unit, f"depth file {path}")
    if report is not None:
        report.update(invalid_depth(arr))
    depth = arr.astype(np.float32) * np.float32(scale)
    depth[~np.isfinite(depth) | (depth < 0)] = 0.0
    if depth.size:
        check_depth_range(float(depth.max()), scale, f"depth file {path}", given=depth_unit is not None)
    return depth


def invalid_depth(arr) -> dict:
    """{"invalid_fraction", "cause"} of stored depth: which share of pixels carries no depth
    (0, NaN/inf or negative) and the likely reason when most do, for one warning per run."""
    arr = np.asarray(arr)
    n = max(arr.size, 1)
    nan = int(np.count_nonzero(~np.isfinite(arr))) if np.issubdtype(arr.dtype, np.floating) else 0
    with np.errstate(invalid="ignore"):
        neg = int(np.count_nonzero(arr < 0))
        zero = int(np.count_nonzero(arr == 0))
    counts = {"zero (no return, or depth not registered to this image)": zero,
              "NaN/inf (the driver's invalid marker)": nan,
              "negative (a sign-flipped depth camera: negate the depth)": neg}
    cause = max(counts, key=counts.get)
    return {"invalid_fraction": (zero + nan + neg) / n, "cause": cause if counts[cause] else None}


def read_label(path) -> np.ndarray:
    """H×W int64 class indices exactly as stored (palette PNGs give their indices, not colours);
    any of LABEL_SUFFIXES."""
    arr, mode = _load(path, "label")
    if arr.ndim != 2:
        raise ValueError(f"label file {path} has shape {arr.shape} (mode {mode}); expected a "
                         f"single-channel index image, not colours")
    if not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"label file {path} holds {arr.dtype} values; expected integers")
    return arr.astype(np.int64)


def write_png(path, array) -> None:
    """Atomically write uint8 (H×W, H×W×3) or uint16 (H×W) as PNG."""
    import io

    arr = np.asarray(array)
    ok = (arr.dtype == np.uint8 and (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] == 3))) or (
        arr.dtype == np.uint16 and arr.ndim == 2)
    if not ok:
        raise ValueError(f"write_png({path}): expected uint8 H×W / H×W×3 or uint16 H×W, "
                         f"got {arr.dtype} {arr.shape}")
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(arr)).save(buf, format="PNG")
    atomic_write_bytes(path, buf.getvalue())
