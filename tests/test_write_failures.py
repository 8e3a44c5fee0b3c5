"""Filesystem errors at the command boundary: a read-only or immutable --out, a read-only working
directory with a relative --out, a full disk, a file name near the 255-byte limit. Each command
ends with one line "cannot write PATH: reason (fix)" and exit 2, and leaves nothing half-written.

Tests run as root, for whom chmod does not stop a write, so the faults are injected by
monkeypatching the os calls every write goes through (os.open / os.mkdir / open for writing,
and os.replace for a disk that fills up after some files).
"""

import builtins
import errno
import io
import os

import numpy as np
import pytest
import torch
from PIL import Image

import asymformer
from asymformer.cli import main

TINY = dict(rgb_dims=(8, 8, 16, 16), rgb_depths=(1, 1, 1, 1), depth_dims=(8, 8, 16, 16), depth_heads=(1, 1, 2, 2),
            depth_depths=(1, 1, 1, 1), decoder_dim=8)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ck") / "tiny.safetensors"
    asymformer.save_model(asymformer.create_model("asymformer_b0_a", num_classes=10, **TINY).eval(), path)
    return path


@pytest.fixture(scope="module")
def frames(tmp_path_factory):
    root = tmp_path_factory.mktemp("frames")
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (32, 40, 3), dtype=np.uint8)).save(root / f"f{i}_rgb.png")
        Image.fromarray(rng.integers(500, 4000, (32, 40), dtype=np.uint16)).save(root / f"f{i}_depth.png")
    return root


def _under(path, root) -> bool:
    return os.path.abspath(os.fspath(path)).startswith(os.fspath(root))


def make_read_only(monkeypatch, root, code=errno.EROFS):
    """Every create / write / mkdir / rename under `root` fails with `code`, as on a read-only mount
    (EROFS) or an immutable folder (EPERM)."""
    real_open, real_os_open, real_mkdir, real_replace = builtins.open, os.open, os.mkdir, os.replace

    def fail(path):
        raise OSError(code, os.strerror(code), os.fspath(path))

    def os_open(path, flags, *a, **k):
        if _under(path, root) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            fail(path)
        return real_os_open(path, flags, *a, **k)

    def py_open(file, mode="r", *a, **k):
        if isinstance(file, (str, bytes, os.PathLike)) and _under(file, root) and set(mode) & set("wax+"):
            fail(file)
        return real_open(file, mode, *a, **k)

    def mkdir(path, *a, **k):
        if _under(path, root) and not os.path.isdir(path):
            fail(path)
        return real_mkdir(path, *a, **k)

    def replace(src, dst, *a, **k):
        if _under(dst, root):
            fail(dst)
        return real_replace(src, dst, *a, **k)

    monkeypatch.setattr(os, "open", os_open)
    monkeypatch.setattr(os, "mkdir", mkdir)
    monkeypatch.setattr(os, "replace", replace)
    monkeypatch.setattr(builtins, "open", py_open)
    monkeypatch.setattr(io, "open", py_open)


def fill_disk_after(monkeypatch, root, files: int):
    """The disk fills up once `files` files have been written under `root` (the write that fails is
    the rename of a finished temporary file, the last step of every atomic write)."""
    real_replace = os.replace
    done = []

    def replace(src, dst, *a, **k):
        if _under(dst, root):
            if len(done) >= files:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), os.fspath(src))
            done.append(dst)
        return real_replace(src, dst, *a, **k)

    monkeypatch.setattr(os, "replace", replace)


def _one_line(capsys, command):
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    lines = [x for x in err.strip().splitlines() if x.startswith("asymformer")]
    assert lines and lines[-1].startswith(f"asymformer {command}: error: cannot write "), err
    return lines[-1]


def _leftovers(root):
    return [os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs if ".tmp" in f]


def _commands(ckpt, frames, out):
    """Each writing command with its output at `out` (a folder, or a file in it)."""
    return {
        "predict": ["predict", "--checkpoint", str(ckpt), "--rgb", str(frames / "*_rgb.png"), "--depth",
                    str(frames / "*_depth.png"), "--out", str(out), "--device", "cpu", "--no-progress"],
        "evaluate": ["evaluate", "--checkpoint", str(ckpt), "--data", "synthetic:1:1", "--size", "32x32",
                     "--workers", "0", "--out", str(out), "--no-progress"],
        "export": ["export", "--checkpoint", str(ckpt), "--out", str(out / "m.onnx"), "--size", "32x32",
                   "--no-check", "--no-progress"],
        "prepare": ["prepare", "synthetic", "--out", str(out), "--train-frames", "2", "--test-frames", "1",
                    "--size", "32x32", "--no-progress"],
        "train": ["train", "--data", "synthetic:2:1", "--model", "asymformer_b0_a", "--out", str(out), "--epochs",
                  "1", "--batch-size", "2", "--crop-size", "32x32", "--eval-size", "32x32", "--workers", "0",
                  "--no-progress", "--device", "cpu"],
    }


@pytest.mark.parametrize("command", ["predict", "evaluate", "export", "prepare", "train"])
@pytest.mark.parametrize("code, fix", [(errno.EROFS, "read-only"), (errno.EPERM, "immutable"),
                                       (errno.EACCES, "no permission to write there")])
def test_read_only_or_immutable_out(ckpt, frames, tmp_path, monkeypatch, capsys, command, code, fix):
    out = tmp_path / "locked" / "out"
    out.mkdir(parents=True)
    make_read_only(monkeypatch, out, code)
    assert main(_commands(ckpt, frames, out)[command]) == 2
    line = _one_line(capsys, command)
    assert str(out) in line and fix in line
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("command", ["predict", "evaluate", "export", "prepare", "train"])
def test_read_only_working_directory_with_a_relative_out(ckpt, frames, tmp_path, monkeypatch, capsys, command):
    monkeypatch.chdir(tmp_path)
    make_read_only(monkeypatch, tmp_path)
    argv = [a if a != str(tmp_path / "rel") and a != str(tmp_path / "rel" / "m.onnx") else os.path.relpath(a)
            for a in _commands(ckpt, frames, tmp_path / "rel")[command]]
    assert main(argv) == 2
    assert "rel" in _one_line(capsys, command)
    assert not (tmp_path / "rel").exists()


def test_full_disk_in_predict_says_how_many_frames_were_written(ckpt, frames, tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    out.mkdir()
    fill_disk_after(monkeypatch, out, files=2 * 2 + 1)  # two whole frames, half of the third (no legend: no names)
    assert main(_commands(ckpt, frames, out)["predict"] + ["--save-labels"]) == 2
    line = _one_line(capsys, "predict")
    assert "No space left on device; 2 of 3 frames were written completely" in line and "disk is full" in line
    assert sorted(p.name for p in out.glob("f*.png")) == ["f0.png", "f0_labels.png", "f1.png", "f1_labels.png"]
    assert _leftovers(tmp_path) == [] and not (out / "predict.json").exists()
    monkeypatch.undo()
    fill_disk_after(monkeypatch, out, files=6)  # every frame, then no room for predict.json
    assert main(_commands(ckpt, frames, out)["predict"] + ["--save-labels", "--overwrite"]) == 2
    assert "predict.json: No space left on device; all 3 frames were written" in _one_line(capsys, "predict")


@pytest.mark.parametrize("command", ["evaluate", "export", "prepare", "train"])
def test_full_disk_elsewhere_is_one_line(ckpt, frames, tmp_path, monkeypatch, capsys, command):
    out = tmp_path / "out"
    fill_disk_after(monkeypatch, tmp_path, files=0)
    assert main(_commands(ckpt, frames, out)[command]) == 2
    assert "No space left on device (the disk is full" in _one_line(capsys, command)
    assert _leftovers(tmp_path) == []


def test_long_names_keep_temporary_names_within_255_bytes(ckpt, tmp_path, capsys):
    from asymformer.files import atomic_write_bytes

    atomic_write_bytes(tmp_path / ("é" * 125 + ".png"), b"x")  # 254 bytes: its temporary name must fit too
    assert os.listdir(tmp_path) == ["é" * 125 + ".png"]
    stem = "a" * 245
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(tmp_path / f"{stem}.png")
    Image.fromarray(np.full((32, 32), 1000, np.uint16)).save(tmp_path / "d.png")
    argv = ["predict", "--checkpoint", str(ckpt), "--rgb", str(tmp_path / f"{stem}.png"), "--depth",
            str(tmp_path / "d.png"), "--out", str(tmp_path / "o"), "--device", "cpu", "--no-progress"]
    assert main(argv) == 0 and (tmp_path / "o" / f"{stem}.png").exists()
    assert main([*argv, "--overlay", "--overwrite"]) == 2  # <stem>_overlay.png is 257 bytes: no file system takes it
    line = _one_line(capsys, "predict")
    assert "File name too long" in line and "shorter name" in line
    assert _leftovers(tmp_path) == []


def test_atomic_write_bytes_failing_midway_keeps_the_old_file_and_no_temp(tmp_path):
    """Planted bug: an atomic_write_bytes that wrote in place would leave half a file."""
    from asymformer.files import atomic_write_bytes

    target = tmp_path / "model.safetensors"
    atomic_write_bytes(target, b"old contents")

    def chunks():
        yield b"new first half"
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with pytest.raises(OSError, match="cannot write .*model.safetensors: No space left on device"):
        atomic_write_bytes(target, chunks())
    assert target.read_bytes() == b"old contents" and os.listdir(tmp_path) == ["model.safetensors"]


def test_errors_that_are_not_writes_are_not_called_writes():
    from asymformer.cli.common import describe_os_error
    from asymformer.files import WriteFailed

    denied = PermissionError(errno.EACCES, "Permission denied", "/data/frame.png")  # e.g. reading a file
    assert describe_os_error(denied) == ("cannot access /data/frame.png: Permission denied (check its permissions, "
                                         "or choose another path)")
    full = OSError(errno.ENOSPC, "No space left on device", "/out/a.png")
    assert describe_os_error(full).startswith("cannot write /out/a.png: No space left on device (the disk is full")
    assert str(WriteFailed(errno.EACCES, "Permission denied", "/out/a.png")).startswith(
        "cannot write /out/a.png: Permission denied (no permission to write there")


def test_temp_siblings_of_bags_and_rerun_files_stay_within_255_bytes(tmp_path):
    """Writers that create their own file or folder (a bag, a Rerun sink) get their temporary name from
    files.temp_sibling: hidden, next to the target, per host and process, and within NAME_MAX."""
    from asymformer.files import NAME_MAX, temp_sibling

    long = tmp_path / ("é" * 120 + ".rrd")  # 244 bytes: a hand-made '.NAME.pid.tmp' would pass 255
    tmp = temp_sibling(long, ".tmp")
    assert tmp.parent == tmp_path and tmp.name.startswith(".") and tmp.name.endswith(".tmp")
    assert len(tmp.name.encode()) <= NAME_MAX
    tmp.write_bytes(b"ok")  # the file system takes the name
    assert temp_sibling(long, ".tmp") == tmp  # stable within a process: a writer can find its own leftover
    assert temp_sibling(tmp_path / "bag", ".partial") != temp_sibling(tmp_path / "bag2", ".partial")
