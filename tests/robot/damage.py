"""Damaging good recordings as disks, power cuts and cut-short copies do: each helper takes a file a
test just wrote and changes its bytes (or its metadata.yaml) in one known way."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np


def storage_file(bag) -> Path:
    """The .mcap / .db3 file of a rosbag2 folder, or the file itself."""
    p = Path(bag)
    if p.is_dir():
        return next(f for f in sorted(p.iterdir()) if f.suffix in (".mcap", ".db3"))
    return p


def garble_record(bag, log_time_ns: int) -> None:
    """Turn the MCAP message record logged at `log_time_ns` into an unknown record whose length
    runs past the chunk: a reader skips it and everything after it in the chunk, without a CRC to
    notice (rosbags' writer sets none) - the silent loss a few overwritten bytes cause."""
    f = storage_file(bag)
    data = bytearray(f.read_bytes())
    # message record: opcode 0x05, uint64 length, uint16 channel, uint32 sequence, uint64 log time
    key, at = struct.pack("<Q", log_time_ns), -1
    while (at := data.find(key, at + 1)) >= 0:  # the same bytes may be a chunk's start time
        if at >= 15 and data[at - 15] == 0x05 and data[at + 8:at + 16] == key:  # log time == publish time
            break
    assert at >= 0, "no message record at that log time"
    at -= 1 + 8 + 2 + 4
    data[at] = 0x7F
    data[at + 1:at + 9] = struct.pack("<Q", 1 << 40)
    f.write_bytes(bytes(data))


def chunk_offsets(mcap_file) -> list[tuple[int, int]]:
    """(start offset, compressed size) of each chunk of an MCAP file, from its summary."""
    from mcap.reader import make_reader

    with open(mcap_file, "rb") as fh:
        summary = make_reader(fh).get_summary()
    return [(c.chunk_start_offset, c.compressed_size) for c in summary.chunk_indexes]


def flip_chunk_crc(mcap_file, index: int) -> None:
    """Change one bit of chunk `index`'s CRC: the reader must refuse that chunk."""
    start, _ = chunk_offsets(mcap_file)[index]
    f = Path(mcap_file)
    data = bytearray(f.read_bytes())
    data[start + 9 + 24] ^= 0x01  # opcode, length, start, end, uncompressed size, then the CRC
    f.write_bytes(bytes(data))


def noise_in_chunk(mcap_file, index: int, n: int = 64, seed: int = 0, where: float = 0.5) -> None:
    """Overwrite `n` bytes of chunk `index`'s (zstd) data at fraction `where` of it: at 0 the zstd
    frame header (it no longer decompresses), in the middle most likely a stored block (only the
    chunk's CRC, where the writer set one, notices)."""
    start, size = chunk_offsets(mcap_file)[index]
    f = Path(mcap_file)
    data = bytearray(f.read_bytes())
    header = 9 + 8 + 8 + 8 + 4 + 4 + len("zstd") + 8
    at = start + header + max(0, int(size * where) - n // 2)
    data[at:at + n] = np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()
    f.write_bytes(bytes(data))


def overwrite(path, at: float, n: int, seed: int = 0) -> None:
    """Overwrite `n` random bytes at fraction `at` of the file (a disk error)."""
    f = storage_file(path)
    data = bytearray(f.read_bytes())
    i = int(len(data) * at)
    data[i:i + n] = np.random.default_rng(seed).integers(0, 256, len(data[i:i + n]), dtype=np.uint8).tobytes()
    f.write_bytes(bytes(data))


def cut(path, keep: float) -> None:
    """Keep the first `keep` fraction of the file (a copy cut short, a recorder killed mid-write)."""
    f = storage_file(path)
    data = f.read_bytes()
    f.write_bytes(data[: int(len(data) * keep)])


def set_declared_counts(bag, counts: dict[str, int]) -> None:
    """Edit metadata.yaml's message_count of some topics (and the total to match)."""
    import yaml

    meta = Path(bag) / "metadata.yaml"
    doc = yaml.safe_load(meta.read_text())
    info = doc["rosbag2_bagfile_information"]
    for entry in info["topics_with_message_count"]:
        name = entry["topic_metadata"]["name"]
        if name in counts:
            entry["message_count"] = counts[name]
    info["message_count"] = sum(e["message_count"] for e in info["topics_with_message_count"])
    meta.write_text(yaml.safe_dump(doc))
