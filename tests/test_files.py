"""The one file writer: atomic, normal permissions under the umask, no NaN in JSON, run locks."""

import os
import stat

import pytest

from asymformer.files import DirLock, LockHeld, atomic_path, atomic_write, atomic_write_bytes, current_umask


@pytest.fixture
def umask():
    old = os.umask(0o022)
    yield lambda mask: os.umask(mask)
    os.umask(old)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_files_get_the_permissions_of_a_plain_open(tmp_path, umask):
    atomic_write_bytes(tmp_path / "a.bin", b"x")
    assert _mode(tmp_path / "a.bin") == 0o644 and current_umask() == 0o022
    umask(0o027)
    atomic_write_bytes(tmp_path / "sub" / "b.bin", [b"x", b"y"])
    assert _mode(tmp_path / "sub" / "b.bin") == 0o640 and (tmp_path / "sub" / "b.bin").read_bytes() == b"xy"
    with atomic_path(tmp_path / "c.onnx", suffix=".tmp.onnx") as tmp:
        assert tmp.endswith(".tmp.onnx") and os.path.dirname(tmp) == str(tmp_path)
        with open(tmp, "wb") as f:
            f.write(b"onnx")
    assert _mode(tmp_path / "c.onnx") == 0o640


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "state.pt"
    atomic_write_bytes(target, b"good")
    with pytest.raises(RuntimeError, match="disk full"):
        with atomic_write(target) as f:
            f.write(b"half")
            raise RuntimeError("disk full")
    assert target.read_bytes() == b"good" and os.listdir(tmp_path) == ["state.pt"]
    with pytest.raises(IsADirectoryError, match="it is a folder"):
        atomic_write_bytes(tmp_path, b"x")
    with pytest.raises(NotADirectoryError, match="is a file, not a folder"):
        atomic_write_bytes(target / "x.json", b"x")


def test_dir_lock_is_exclusive_and_released(tmp_path):
    first = DirLock(tmp_path / "run").acquire()
    with pytest.raises(LockHeld) as info:
        DirLock(tmp_path / "run").acquire()
    assert str(info.value) == str(os.getpid())
    first.release()
    with DirLock(tmp_path / "run"):
        pass
