"""Sanity checks run when a dataset is opened: catch a wrong unit, encoding or class set early.

A handful of frames spread over the split are read. A loader that silently returns depth 8×
too large (SUNRGBD's 3-bit rotation read as millimetres) or labels of another class set trains
for days before anyone notices; one message at opening, naming the likely cause and the option
that fixes it, costs a few image reads.
"""

from __future__ import annotations

import numpy as np

METRIC_RANGE = (0.2, 15.0)  # plausible median indoor depth in metres
SAMPLE_FRAMES = 8
# factor the median is off by -> what usually causes it
_CAUSES = ((8.0, "the SUNRGBD toolbox depth encoding (millimetres rotated left by 3 bits, ~8x too large)",
            "depth_encoding='sunrgbd_rotated' (CLI --depth-encoding sunrgbd_rotated)"),
           (1000.0, "millimetres read as metres", "depth_unit=0.001 (CLI --depth-unit 0.001)"),
           (10.0, "0.1 mm units read as millimetres", "depth_unit=0.0001 (CLI --depth-unit 0.0001)"),
           (0.001, "metres read as millimetres", "depth_unit=1 (CLI --depth-unit 1)"),
           (0.1, "millimetres read as 0.1 mm", "depth_unit=0.001 (CLI --depth-unit 0.001)"))


def sample_indices(n: int, k: int = SAMPLE_FRAMES) -> list[int]:
    return sorted({int(i) for i in np.linspace(0, n - 1, min(n, k))}) if n else []


def check_dataset(ds) -> None:
    """Read a few frames of a LayoutDataset; raise ValueError naming the cause and fix of a problem."""
    depths = []
    for i in sample_indices(len(ds)):
        try:
            sample = ds.load_sample(i)
        except ValueError as exc:
            raise ValueError(_explain(ds, str(exc))) from None
        d = sample["depth"]
        depths.append(d[d > 0])
    if ds.relative_depth or not depths:
        return
    valid = np.concatenate(depths)
    if valid.size == 0:
        raise ValueError(f"{ds.root} ({ds.layout}): the sampled frames have no valid (> 0) depth at all; "
                         f"check that depth/ holds the depth images")
    median = float(np.median(valid))
    lo, hi = METRIC_RANGE
    if lo <= median <= hi:
        return
    for factor, cause, fix in _CAUSES:
        if lo <= median / factor <= hi and (ds.depth_encoding == "linear" or factor != 8.0):
            hint = f"likely cause: {cause}; fix: open it with {fix}"
            break
    else:
        hint = "state the unit with depth_unit=<metres per stored value> (CLI --depth-unit)"
    raise ValueError(f"{ds.root} ({ds.layout}): the median valid depth of {len(depths)} sampled frames is "
                     f"{median:.3g} m, outside the {lo}-{hi} m of indoor scenes (depth unit "
                     f"{ds.depth_unit:g} m, encoding {ds.depth_encoding}); {hint}")


def _explain(ds, message: str) -> str:
    """Add the likely cause and fix to a sample error raised while checking."""
    if "outside" in message and "label file" in message:
        sets = f" this release has label sets {', '.join(map(str, ds.label_sets))};" if ds.label_sets else ""
        return (f"{message}. The class list ({ds.num_classes} classes) came from {ds.class_source or ds.layout};"
                f"{sets} choose the right one with classes=K (CLI --classes K), or give the class names in "
                f"{ds.root}/dataset.json")
    if "must have the same size" in message:
        return (f"{message}. Likely cause: depth not registered to the colour camera, or files of different "
                f"frames paired; fix the files (open_dataset(check=False) skips this check)")
    return message
