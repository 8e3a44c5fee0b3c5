"""Class names and colours of NYUv2-40, SUNRGBD-37 and NYUv2-13 (metadata; drawing is asymformer.viz).

The NYUv2 names follow `className` in Gupta et al.'s classMapping40.mat (index i = class i+1 on
disk); SUNRGBD's 37 classes are the first 37 of them. Their colours are the standard palette
(`asymformer.viz.palette`: distinct, black reserved for void).
"""

from __future__ import annotations

from asymformer.deprecation import moved_names
from asymformer.viz import palette

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

NYU40_COLORS = palette(40)
SUN37_COLORS = NYU40_COLORS[:37].copy()
NYU13_COLORS = palette(13)

# label-set size -> (names, colours) of the public NYUv2 / SUNRGBD class sets
CLASS_SETS = {40: (NYU40_CLASSES, NYU40_COLORS), 37: (SUN37_CLASSES, SUN37_COLORS),
              13: (NYU13_CLASSES, NYU13_COLORS)}


# 0.1 drew with these; they live in asymformer.viz since 0.2 (removed in 0.3).
__getattr__ = moved_names(__name__, {"colorize": "asymformer.viz:colorize", "make_palette": "asymformer.viz:palette"})
