"""Class names and colour palettes of NYUv2-40 and SUNRGBD-37, and label colourisation.

The NYUv2 names follow `className` in Gupta et al.'s classMapping40.mat (index i = class i+1 on
disk); SUNRGBD's 37 classes are the first 37 of them. Colours come from a bit-interleaving
palette (the PASCAL VOC construction, skipping black), so every class gets a distinct colour
and black stays reserved for void.
"""

from __future__ import annotations

import numpy as np

VOID = 255

NYU40_CLASSES = (
    "wall", "floor", "cabinet", "bed", "chair", "sofa", "table", "door", "window", "bookshelf",
    "picture", "counter", "blinds", "desk", "shelves", "curtain", "dresser", "pillow", "mirror",
    "floor mat", "clothes", "ceiling", "books", "refrigerator", "television", "paper", "towel",
    "shower curtain", "box", "whiteboard", "person", "night stand", "toilet", "sink", "lamp",
    "bathtub", "bag", "otherstructure", "otherfurniture", "otherprop",
)
SUN37_CLASSES = NYU40_CLASSES[:37]
# NYUv2-13 (Couprie et al.; class13Mapping.mat order, as nicr-scene-analysis-datasets names them)
NYU13_CLASSES = ("bed", "books", "ceiling", "chair", "floor", "furniture", "objects", "picture", "sofa",
                 "table", "tv", "wall", "window")


def make_palette(num: int) -> np.ndarray:
    """`num` distinct non-black colours (num × 3 uint8), stable across releases."""
    if num < 0:
        raise ValueError(f"make_palette: num must be >= 0, got {num}")
    colors = np.zeros((num, 3), dtype=np.uint8)
    for i in range(num):
        code, rgb = i + 1, [0, 0, 0]
        for shift in range(7, -1, -1):
            for c in range(3):
                rgb[c] |= ((code >> c) & 1) << shift
            code >>= 3
        colors[i] = rgb
    return colors


NYU40_COLORS = make_palette(40)
SUN37_COLORS = NYU40_COLORS[:37].copy()
NYU13_COLORS = make_palette(13)

# label-set size -> (names, colours) of the public NYUv2 / SUNRGBD class sets
CLASS_SETS = {40: (NYU40_CLASSES, NYU40_COLORS), 37: (SUN37_CLASSES, SUN37_COLORS),
              13: (NYU13_CLASSES, NYU13_COLORS)}


def colorize(label, colors) -> np.ndarray:
    """Map an H×W class map (0..K-1, 255 = void) to an H×W×3 uint8 image (void -> black)."""
    label = np.asarray(label)
    colors = np.asarray(colors, dtype=np.uint8)
    if label.ndim != 2 or not np.issubdtype(label.dtype, np.integer):
        raise ValueError(f"colorize: label must be an H×W integer array, got {label.dtype} {label.shape}")
    if colors.ndim != 2 or colors.shape[1] != 3:
        raise ValueError(f"colorize: colors must be K×3, got shape {colors.shape}")
    k = len(colors)
    if k > VOID:
        raise ValueError(f"colorize: at most 255 classes are supported (255 is void), got {k}")
    bad = (label != VOID) & ((label < 0) | (label >= k))
    if bad.any():
        values = np.unique(label[bad])[:10].tolist()
        raise ValueError(f"colorize: label values {values} are outside 0..{k - 1} (and 255 = void) "
                         f"for a palette of {k} colours")
    lut = np.zeros((256, 3), dtype=np.uint8)
    lut[:k] = colors
    return lut[label.astype(np.intp)]


def model_colors(num_classes: int, colors=None) -> np.ndarray:
    """The palette a model's predictions are drawn with: the training dataset's colours when the
    checkpoint recorded them (`model.info.colors`), else the standard palette, which is the
    NYUv2-40 / SUNRGBD-37 / NYUv2-13 datasets' own."""
    if colors is not None:
        arr = np.asarray(colors)
        if arr.shape == (num_classes, 3) and arr.min() >= 0 and arr.max() <= 255:
            return arr.astype(np.uint8)
    return make_palette(num_classes)
