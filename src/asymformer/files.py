"""The one place that writes files: atomic replacement with normal permissions, JSON, run locks.

Every file the tool writes (checkpoints, resume state, ONNX, JSON, CSV, PNG, HTML) goes through
`atomic_write` / `atomic_path`: the bytes land in a temporary file in the destination folder,
are flushed and fsynced, get the permissions a plain `open()` would have given them under the
user's umask (temporary files are created 0600), and replace the destination with one
`os.replace`. A reader therefore sees the old file or the new one, never half of one, and a
crash mid-write leaves the previous checkpoint intact. This module imports nothing from the
package, so every layer can use it.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import socket
import tempfile
import threading
import zlib
from pathlib import Path

_UMASK_LOCK = threading.Lock()


def current_umask() -> int:
    """The process umask (read from /proc where possible: os.umask can only be read by setting it)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def default_file_mode() -> int:
    """What `open(path, 'w')` would create: 0o666 minus the umask (0o644 under umask 022)."""
    return 0o666 & ~current_umask()


def _fsync_dir(folder: str) -> None:
    """Make the rename itself durable (a power cut must not resurrect the old file)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# What to do about a failed write, by errno: the second half of "cannot write PATH: reason (fix)".
_FIXES = {
    errno.ENOSPC: "the disk is full: free space or write to another disk",
    errno.EDQUOT: "the disk quota is used up: free space or write elsewhere",
    errno.EROFS: "the file system is read-only: choose a writable folder",
    errno.EACCES: "no permission to write there: choose a folder you can write to",
    errno.EPERM: "not permitted (an immutable file or folder?): choose another folder",
    errno.ENAMETOOLONG: "the name is too long for the file system: use a shorter name",
}


class WriteFailed(OSError):
    """A write that did not happen; written atomically, the destination still holds its old bytes.

    str() is the one line a user reads: "cannot write PATH: reason (fix)".
    """

    def __str__(self) -> str:
        fix = _FIXES.get(self.errno, "check the folder and the free space")
        return f"cannot write {self.filename}: {self.strerror} ({fix})"


def write_failed(path, exc: OSError) -> WriteFailed:
    """`exc` (raised while writing `path`, perhaps at a temporary name) as a WriteFailed naming `path`."""
    if isinstance(exc, WriteFailed):
        return exc
    return WriteFailed(exc.errno, exc.strerror or str(exc), os.fspath(path))


def make_folder(path) -> None:
    """os.makedirs(exist_ok=True) whose failure (read-only, full, not permitted) is a WriteFailed."""
    try:
        os.makedirs(path, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise NotADirectoryError(f"cannot write {path}: it (or a parent) is a file, not a folder") from None
    except OSError as exc:
        raise write_failed(path, exc) from None


def _prepare_folder(path: str) -> str:
    if os.path.isdir(path):
        raise IsADirectoryError(f"cannot write {path}: it is a folder; give a file name")
    folder = os.path.dirname(os.path.abspath(path))
    try:
        make_folder(folder)
    except NotADirectoryError:
        raise NotADirectoryError(f"cannot write {path}: {folder} (or a parent) is a file, not a folder") from None
    return folder


NAME_MAX = 255  # bytes in one file name on Linux, macOS and Windows file systems


def _temp_prefix(name: str, suffix: str) -> str:
    """'.NAME.' cut so the temporary name (prefix, 8 random characters, suffix) fits NAME_MAX bytes."""
    room = NAME_MAX - len(suffix.encode()) - 8 - 2
    raw = name.encode()
    if len(raw) > room:
        name = raw[:room].decode("utf-8", errors="ignore")
    return f".{name}."


def temp_sibling(path, suffix: str = ".tmp") -> Path:
    """A temporary name next to `path` for writers that create the file or folder themselves and
    are renamed over `path` when complete (a bag folder, a Rerun file sink). Hidden, tagged with
    this host and process (so shards of one job on a shared disk never meet), and cut to NAME_MAX
    bytes like atomic_path's names."""
    path = Path(path)
    host = zlib.crc32(socket.gethostname().encode()) & 0xFFFF
    tag = f"{host:04x}{os.getpid() & 0xFFFF:04x}"  # the 8 characters _temp_prefix leaves room for
    return path.parent / f"{_temp_prefix(path.name, suffix)}{tag}{suffix}"


@contextlib.contextmanager
def atomic_path(path, suffix: str = ".tmp"):
    """Yield a temporary path next to `path`; on success it is fsynced, chmod-ed and moved over `path`.

    For writers that need a file name rather than a file object (the ONNX exporter). `suffix`
    keeps an extension some writers look at. Any OSError on the way (a full disk, a read-only
    folder, a name too long) is raised as a `WriteFailed` naming `path`, and the temporary file
    is removed, so nothing half-written is left.
    """
    path = os.fspath(path)
    folder = _prepare_folder(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=_temp_prefix(os.path.basename(path), suffix), suffix=suffix)
    except OSError as exc:
        raise write_failed(path, exc) from None
    os.close(fd)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, default_file_mode())
        os.replace(tmp, path)
        _fsync_dir(folder)
    except OSError as exc:
        raise write_failed(path, exc) from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@contextlib.contextmanager
def atomic_write(path, mode: str = "wb", encoding: str | None = None, newline: str | None = None):
    """Yield an open file; on success it replaces `path` atomically (binary by default)."""
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_write mode must be 'wb' or 'w', got {mode!r}")
    with atomic_path(path) as tmp:
        text = {} if "b" in mode else {"encoding": encoding or "utf-8", "newline": newline}
        with open(tmp, mode, **text) as f:
            yield f
            f.flush()


def atomic_write_bytes(path, data) -> None:
    """Write `data` (bytes, or an iterable of byte chunks) to `path` atomically."""
    with atomic_write(path) as f:
        if isinstance(data, (bytes, bytearray, memoryview)):
            f.write(data)
        else:
            for chunk in data:
                f.write(chunk)


def atomic_write_text(path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def _first_non_finite(obj, where: str = "") -> str | None:
    if isinstance(obj, float) and not math.isfinite(obj):
        return where or "(top level)"
    if isinstance(obj, dict):
        items = obj.items()
    elif isinstance(obj, (list, tuple)):
        items = enumerate(obj)
    else:
        return None
    for key, value in items:
        found = _first_non_finite(value, f"{where}.{key}" if where else str(key))
        if found:
            return found
    return None


def write_json(path, payload, indent: int | None = 1) -> Path:
    """Atomic JSON write that refuses NaN/inf (not valid JSON) by naming the offending key."""
    try:
        text = json.dumps(payload, indent=indent, allow_nan=False)
    except ValueError:
        key = _first_non_finite(payload)
        raise ValueError(f"{path}: refusing to write a non-finite number at {key!r} "
                         "(NaN/inf is not valid JSON)") from None
    atomic_write_text(path, text + "\n")
    return Path(path)


def save_image(image, path) -> Path:
    """Atomic PNG write of a PIL image."""
    with atomic_write(path) as f:
        image.save(f, format="PNG")
    return Path(path)


def torch_save(obj, path) -> None:
    """torch.save through the atomic writer (resume state: fsynced before it replaces the old one)."""
    import torch

    with atomic_write(path) as f:
        torch.save(obj, f)


class LockHeld(RuntimeError):
    """Another process holds the lock."""


class DirLock:
    """An exclusive advisory lock on `folder/.lock` (fcntl.flock), released when the process ends.

    Two `asymformer train` processes writing the same run directory would overwrite each
    other's checkpoints and logs; the second one must refuse instead. flock dies with its
    process, so a killed run never leaves a stale lock behind.
    """

    def __init__(self, folder, name: str = ".lock"):
        self.path = Path(folder) / name
        self._fd = None

    def acquire(self) -> DirLock:
        import fcntl

        make_folder(self.path.parent)
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, default_file_mode())
        except OSError as exc:
            raise write_failed(self.path, exc) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            owner = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise LockHeld(owner) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None

    def __enter__(self) -> DirLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
