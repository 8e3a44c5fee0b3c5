"""The `asymformer` command line.

Each subcommand is one `_add_<name>` function that builds its parser and sets `func`; the
work itself lives in engine/, deploy/ and data/. Imports happen inside the handlers so
`asymformer --help` stays fast and a missing optional dependency only affects its command.
"""

from __future__ import annotations

import argparse
import os
import re
import sys

from asymformer import __version__

from .common import EXIT_ERROR, EXIT_STOPPED, CLIError, _Parser, describe_os_error, warnings_as_lines
from .data import _add_info, _add_prepare
from .demo import _add_demo
from .deploy import _add_benchmark, _add_export, _add_predict
from .engine import _add_evaluate, _add_train

__all__ = ["EXIT_ERROR", "EXIT_STOPPED", "CLIError", "build_parser", "main"]


# --------------------------------------------------------------------------- entry point
def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="asymformer", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"asymformer {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (_add_info, _add_prepare, _add_train, _add_evaluate, _add_predict, _add_export,
                _add_benchmark, _add_demo):
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        with warnings_as_lines(args.command):
            return int(args.func(args) or 0)
    except (CLIError, ValueError, FileNotFoundError, NotADirectoryError, FileExistsError, IsADirectoryError,
            FloatingPointError) as exc:
        if os.environ.get("ASYMFORMER_DEBUG"):
            raise
        print(f"asymformer {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except OSError as exc:  # a full disk, a read-only or immutable folder, a name too long: one line, no traceback
        if os.environ.get("ASYMFORMER_DEBUG"):
            raise
        print(f"asymformer {args.command}: error: {describe_os_error(exc)}", file=sys.stderr)
        return EXIT_ERROR
    except (MemoryError, RuntimeError) as exc:  # running out of memory is bad input (a size), not a bug
        text = str(exc)
        if not isinstance(exc, MemoryError) and "can't allocate memory" not in text and "out of memory" not in text:
            raise
        if os.environ.get("ASYMFORMER_DEBUG"):
            raise
        wanted = re.search(r"allocate (\d+) bytes", text)
        need = f": one tensor needed {int(wanted.group(1)) / 1e9:,.1f} GB" if wanted else ""
        print(f"asymformer {args.command}: error: out of memory{need}; lower --batch-size or --size",
              file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
