"""Read an .rrd back with the pinned rerun-sdk's own reader (`rerun.chunk.RrdReader`) into plain
Python: entity path -> rows (dicts of column name -> value, timelines as int nanoseconds / ints),
sorted by the `frame` timeline. Shared by the Rerun tests."""

from __future__ import annotations

import numpy as np


def read_rrd(path) -> dict[str, list[dict]]:
    import pyarrow as pa
    import rerun.chunk as rc

    out: dict[str, list[dict]] = {}
    for chunk in rc.RrdReader(str(path)).stream().to_chunks():
        batch = chunk.to_record_batch()
        cols = {}
        for name in batch.schema.names:
            col = batch.column(name)
            if pa.types.is_timestamp(col.type):
                col = col.cast(pa.int64())
            cols[name] = col.to_pylist()
        rows = [dict(zip(cols, values, strict=True)) for values in zip(*cols.values(), strict=True)]
        out.setdefault(chunk.entity_path, []).extend(rows)
    for rows in out.values():
        rows.sort(key=lambda r: r.get("frame") or 0)
    return out


def image_of(row: dict, archetype: str, dtype, shape) -> np.ndarray:
    """An image component's bytes as an array (Rerun stores the raw buffer plus a format)."""
    return np.frombuffer(bytes(row[f"{archetype}:buffer"][0]), dtype=dtype).reshape(shape)
