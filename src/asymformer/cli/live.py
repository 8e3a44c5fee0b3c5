"""The live-view options shared by `predict` (files, --bag, --realtime): --rerun / --rerun-save.

Kept apart from cli/deploy.py and cli/robot.py, which both use them, so that neither has to
import the other for them (cli/deploy.py already imports cli/robot.py).
"""

from __future__ import annotations

from .common import CLIError, _check_out_file, _flag


def add_rerun_options(p) -> None:
    """--rerun / --rerun-save: the live view of predict (files, bags, --realtime) and the node."""
    _flag(p, "--rerun", "show every frame in a Rerun viewer (spawned; needs asymformer[viewing])")
    p.add_argument("--rerun-save", metavar="FILE.rrd",
                   help="write a Rerun recording (RGB, depth, segmentation, confidence, points, latency)")


def open_rerun_view(args, segmenter):
    """The RerunView the options ask for (None without them); a bad file name or a missing
    rerun-sdk is one CLI error line."""
    if not args.rerun and not args.rerun_save:
        return None
    from pathlib import Path

    from asymformer.files import make_folder
    from asymformer.outputs.rerun_view import RerunView

    if args.rerun_save:
        if Path(args.rerun_save).is_dir():  # the shared check's example names a .json; a Rerun file is .rrd
            raise CLIError(f"--rerun-save {args.rerun_save} is a folder; give a file name, e.g. "
                           f"{Path(args.rerun_save) / 'recording.rrd'}")
        _check_out_file(args.rerun_save, "--rerun-save")
        make_folder(Path(args.rerun_save).parent)
        probe_writable(args.rerun_save)
    try:
        return RerunView(segmenter.class_names, segmenter.colors, save=args.rerun_save, spawn=args.rerun)
    except (ImportError, ValueError, FileNotFoundError) as exc:
        raise CLIError(str(exc)) from None
    except RuntimeError as exc:  # rerun's own "Failed to create file": name the file and the reason
        raise CLIError(f"--rerun-save {args.rerun_save}: cannot create the file ({' '.join(str(exc).split())})") \
            from None


def probe_writable(path) -> None:
    """Create and remove a file next to `path` before the work starts: a read-only or full file
    system fails now, as one line naming `path` and the reason (files.WriteFailed), not after an
    hour of work or as a library's traceback."""
    import os
    import tempfile

    from asymformer.files import write_failed

    folder = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".asymformer-probe-")
    except OSError as exc:
        raise write_failed(path, exc) from None
    os.close(fd)
    os.unlink(tmp)
