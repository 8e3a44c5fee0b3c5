"""Reading RGB / depth / label images with one clear error per bad file, and atomic PNG writes.

Every reader names the offending path, so a broken file deep inside a 10k-image dataset is
found without a debugger. Depth is returned in metres; the unit of the stored integers is
the caller's (layout's) knowledge, passed as `unit`.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image

from asymformer.files import atomic_write_bytes  # noqa: F401 - the one atomic writer, re-exported

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".npy")


def _check_exists(path: Path, what: str) -> None:
    if not path.is_file():
        raise FileNotFoundError(f"{what} file not found: {path}")


def _load(path, what: str) -> tuple[np.ndarray, str]:
    """Return (array, PIL mode or 'npy') for an image or .npy file."""
    path = Path(path)
    _check_exists(path, what)
    try:
        if path.suffix.lower() == ".npy":
            return np.load(path, allow_pickle=False), "npy"
        with Image.open(path) as img:
            img.load()
            mode = img.mode
            if mode in ("RGBA", "LA", "P", "CMYK", "YCbCr", "1") and what == "RGB":
                img = img.convert("RGB")
            return np.array(img), mode  # a writable copy: transforms may edit in place
    except (OSError, ValueError, SyntaxError) as exc:
        raise ValueError(f"cannot read {what} file {path}: {exc} (is it a valid image?)") from None


def read_rgb(path) -> np.ndarray:
    """H×W×3 uint8 from png/jpg/npy; grey is repeated to 3 channels, alpha is dropped."""
    arr, mode = _load(path, "RGB")
    if mode in ("I;16", "I;16B", "I", "F"):
        raise ValueError(f"RGB file {path} is a {mode} (16-bit/float) image; expected 8-bit RGB or grey")
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise ValueError(f"RGB file {path} has shape {arr.shape}; expected H×W, H×W×3 or H×W×4")
    arr = arr[:, :, :3]
    if arr.dtype != np.uint8:
        if not np.issubdtype(arr.dtype, np.number) or arr.min() < 0 or arr.max() > 255:
            raise ValueError(f"RGB file {path} holds {arr.dtype} values outside 0..255; expected uint8")
        arr = np.rint(arr).astype(np.uint8)
    return np.ascontiguousarray(arr)


def read_depth(path, unit: float, expect_16bit: bool = True) -> np.ndarray:
    """H×W float32 metres (= stored value × unit; 0 stays 0 = invalid).

    An 8-bit PNG where 16-bit is expected usually means a visualisation was saved instead of
    the measurement; it still loads, with a warning naming the file.
    """
    arr, mode = _load(path, "depth")
    if arr.ndim == 3 and mode != "npy":
        if not (arr == arr[:, :, :1]).all():
            raise ValueError(f"depth file {path} has {arr.shape[2]} different channels; expected a "
                             f"single-channel depth image")
        arr = arr[:, :, 0]  # grey saved as RGB (some DFormer releases)
    if arr.ndim != 2:
        raise ValueError(f"depth file {path} has shape {arr.shape}; expected H×W")
    if expect_16bit and arr.dtype == np.uint8:
        warnings.warn(f"depth file {path} is 8-bit; expected 16-bit depth, metric precision is lost",
                      stacklevel=2)
    depth = arr.astype(np.float32) * np.float32(unit)
    depth[~np.isfinite(depth) | (depth < 0)] = 0.0
    return depth


def read_label(path) -> np.ndarray:
    """H×W int64 class indices exactly as stored (palette PNGs give their indices, not colours)."""
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
