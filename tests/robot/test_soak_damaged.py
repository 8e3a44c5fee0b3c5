"""Soak: 200 tiny recordings, each with random damage of a random kind (or none), in all formats,
run as ONE `predict --bag` batch. Every recording must end processed or failed with a reason, the
batch must not hang, and nothing may print a traceback."""

from __future__ import annotations

import io
import json
import threading
from contextlib import redirect_stderr, redirect_stdout

import numpy as np

from asymformer.cli import main

from . import bagfiles as B
from . import damage as D
from . import rosmsgs as R

N = 200
H, W = 32, 40
KINDS = ("good", "garble", "crc", "zstd", "bytes", "cut", "metadata", "offset", "short_rows", "ros1_bytes",
         "ros1_cut", "db3_bytes", "db3_cut")


def _messages(rng, ros1: bool):
    n = int(rng.integers(2, 5))
    return B.realsense(n=n, h=H, w=W, jitter_ms=(int(rng.integers(-5, 6)),), ts=R.TS1 if ros1 else R.TS2)


def _recording(folder, i: int, kind: str, rng):
    """Recording number i, written good and then damaged as `kind` says."""
    name = f"r{i:03d}_{kind}"
    msgs = _messages(rng, kind.startswith("ros1"))
    if kind in ("crc", "zstd"):
        path = B.write_foxglove_mcap(folder / f"{name}.mcap", msgs, chunk_size=2500, crcs=bool(rng.integers(0, 2)))
        chunk = int(rng.integers(0, len(D.chunk_offsets(path))))
        if kind == "crc":
            D.flip_chunk_crc(path, chunk)
        else:
            D.noise_in_chunk(path, chunk, n=int(rng.integers(4, 64)), seed=i, where=float(rng.uniform(0, 1)))
        return path
    if kind.startswith("ros1"):
        path = B.write_ros1(folder / f"{name}.bag", msgs)
    elif kind.startswith("db3"):
        path = B.write_rosbag2(folder / name, msgs, storage="sqlite3") / f"{name}.db3"
    else:
        if kind == "offset":
            for topic, _, _, m in msgs:
                if topic == B.RS_DEPTH:
                    m.header.stamp.sec += int(rng.integers(1, 20))
        if kind == "short_rows":
            for topic, _, _, m in msgs:
                if topic == B.RS_COLOR:
                    m.step += 3
        path = B.write_rosbag2(folder / name, msgs)
    if kind == "garble":
        D.garble_record(path, msgs[int(rng.integers(0, len(msgs)))][2])
    elif kind in ("bytes", "ros1_bytes", "db3_bytes"):
        D.overwrite(path, float(rng.uniform(0.05, 0.95)), int(rng.integers(1, 600)), seed=i)
    elif kind in ("cut", "ros1_cut", "db3_cut"):
        D.cut(path, float(rng.uniform(0.3, 0.97)))
    elif kind == "metadata":
        D.set_declared_counts(path, {B.RS_COLOR: int(rng.integers(0, 8)), B.RS_DEPTH: int(rng.integers(0, 8))})
    return path


def test_two_hundred_randomly_damaged_recordings_in_one_batch(tmp_path, tiny_checkpoint):
    rng = np.random.default_rng(28)
    inputs = tmp_path / "in"
    inputs.mkdir()
    kinds = [KINDS[int(k)] for k in rng.integers(0, len(KINDS), N)]
    for i, kind in enumerate(kinds):
        _recording(inputs, i, kind, rng)
    rep, out = tmp_path / "report.json", tmp_path / "out"
    argv = ["predict", "--checkpoint", str(tiny_checkpoint), "--bag", str(inputs), "--rgb-topic", B.RS_COLOR,
            "--depth-topic", B.RS_DEPTH, "--camera-info-topic", B.RS_INFO, "--out", str(out), "--report", str(rep),
            "--no-progress", "--outputs", "labels", "--no-copy-input", "--device", "cpu"]
    stdout, stderr, code = io.StringIO(), io.StringIO(), []

    def run():
        with redirect_stdout(stdout), redirect_stderr(stderr):
            code.append(main(argv))

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(240)
    assert not worker.is_alive(), "the batch hung"
    err = stderr.getvalue()
    assert "Traceback" not in err and code == [2]
    assert all(line.startswith("asymformer predict: ") for line in err.splitlines()), err
    summary = json.loads(rep.read_text())
    assert len(summary["bags"]) == N
    failed = 0
    for kind, r in zip(kinds, summary["bags"], strict=True):
        if r.get("failed"):
            failed += 1
            assert isinstance(r["failed"], str) and len(r["failed"]) > 20 and "\n" not in r["failed"]
            assert r["failed"] in err or r["failed"].split(": ", 1)[-1][:40] in err
        else:
            assert r["frames"] >= 1 and (out / r["out"].rsplit("/", 1)[-1] / "metadata.yaml").is_file(), (kind, r)
        if kind in ("good",):
            assert not r.get("failed"), r
        if kind in ("crc", "offset", "short_rows", "garble"):  # zstd noise in a stored block: only a CRC sees it
            assert r.get("failed"), (kind, r)
    assert summary["failed"] == failed and 0 < failed < N
    assert not [p for p in out.rglob(".*")]  # no temporary folder left behind
