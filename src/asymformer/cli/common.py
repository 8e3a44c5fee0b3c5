"""Pieces every subcommand's parser shares: errors and exit codes, argument types, the CLI's one
vocabulary (`--size HxW`, `--batch-size`, `--x/--no-x`, `--progress`) and its deprecated spellings."""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import sys
import warnings

from asymformer.deprecation import notice


class CLIError(Exception):
    """An error whose message is meant for the user, printed without a traceback."""


# Exit status: 0 finished; EXIT_STOPPED when training stopped resumably (signal, --time-limit,
# --stop-after) so a job script can requeue `asymformer train --resume RUN`; 2 for bad input or a
# failed run (the message says what to fix); 130 when a second Ctrl-C aborted.
EXIT_STOPPED = 75  # EX_TEMPFAIL in sysexits.h: "try again later"
EXIT_ERROR = 2


@contextlib.contextmanager
def warnings_as_lines(command: str):
    """Warnings during a command print as one line, "asymformer COMMAND: warning: ...", not as Python's
    "file:line: UserWarning:" plus a source line (which names our code, not the user's input)."""
    def show(message, category, filename, lineno, file=None, line=None):
        kind = "deprecated" if issubclass(category, DeprecationWarning) else "warning"
        print(f"asymformer {command}: {kind}: {message}", file=file or sys.stderr)

    with warnings.catch_warnings():
        warnings.showwarning = show
        yield


def describe_os_error(exc: OSError) -> str:
    """The one line for a filesystem error reaching the command boundary: "cannot write PATH:
    reason (fix)" for the errors a write meets (full, read-only, immutable, name too long)."""
    from asymformer.files import WriteFailed, write_failed

    if isinstance(exc, WriteFailed):
        return str(exc)
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS) and exc.filename is not None:  # only writes meet these
        return str(write_failed(exc.filename, exc))
    if exc.errno in (errno.EACCES, errno.EPERM) and exc.filename is not None:  # a read or a write
        return f"cannot access {exc.filename}: {exc.strerror} (check its permissions, or choose another path)"
    if exc.filename is not None:
        return f"{exc.filename}: {exc.strerror or exc}"
    return str(exc) or type(exc).__name__


def _at_least(minimum: int):
    """argparse type for whole numbers >= minimum, with one message naming the rule."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value
    return parse


_positive = _at_least(1)  # counts and sizes
_non_negative = _at_least(0)  # data workers, prediction counts


def _check_out_file(path: str | None, flag: str = "--out") -> None:
    """A file output must not be a folder and its folder must be creatable (checked before long work)."""
    if path is None:
        return
    if os.path.isdir(path):
        raise CLIError(f"{flag} {path} is a folder; give a file name, e.g. {os.path.join(path, 'benchmark.json')}")
    parent = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise CLIError(f"{flag} {path}: {parent} is a file, not a folder")


def _check_out_dir(path: str | None, flag: str = "--out") -> None:
    """A folder output must not be an existing file."""
    if path is not None and os.path.exists(path) and not os.path.isdir(path):
        raise CLIError(f"{flag} {path} is an existing file; give a folder")


def _parse_hw(text: str) -> tuple[int, int]:
    """Parse 'HxW' (e.g. 480x640) into (H, W)."""
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HxW like 480x640, got {text!r}") from None
    if h <= 0 or w <= 0:
        raise argparse.ArgumentTypeError(f"sizes must be positive, got {text!r}")
    return h, w


# --------------------------------------------------------------------------- one vocabulary
# Every command spells a concept the same way: --size HxW, --batch-size, --depth-unit, on/off
# options as --x / --no-x, --progress / --no-progress on every long command. The 0.1 spellings
# are hidden aliases that print one deprecation line to stderr and set the new option's value.
_OLD_ON_OFF = ("--expect-counts",)  # 0.1 took `on` / `off` values; now --x / --no-x


def _deprecated(old: str, new: str) -> None:
    print(f"asymformer: {notice(old, new)}", file=sys.stderr)


class _HelpFormatter(argparse.HelpFormatter):
    """Every option's help shows its default: appended as "(default X)" unless the text already says
    it (a default that depends on the input is worded in the help itself, e.g. "default: the
    checkpoint's"). On/off options read "on" / "off", sizes "HxW". tests/test_cli_help.py checks it."""

    def _get_help_string(self, action):
        text = action.help or ""
        default = action.default
        if (text is argparse.SUPPRESS or not action.option_strings or action.required or "default" in text
                or default is None or default is argparse.SUPPRESS
                or isinstance(action, (argparse._HelpAction, argparse._VersionAction))):
            return text
        if isinstance(default, bool):
            shown = "on" if default else "off"
        elif isinstance(default, tuple) and len(default) == 2 and all(isinstance(v, int) for v in default):
            shown = f"{default[0]}x{default[1]}"
        else:
            shown = "%(default)s"
        return f"{text} (default {shown})".strip()


class _Parser(argparse.ArgumentParser):
    """argparse that also reads 0.1's `--expect-counts on|off` (now --expect-counts / --no-expect-counts).

    Subparsers are built with the same class, so each rewrites only the options it owns.
    """

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)

    def parse_args(self, args=None, namespace=None):
        """argparse's, plus the fix for a shell-expanded glob: many leftover file names."""
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            files = [e for e in extras if not e.startswith("-") and (os.path.exists(e) or os.sep in e
                                                                      or os.path.splitext(e)[1])]
            if files:
                more = " ..." if len(extras) > 3 else ""
                self.error(f"unrecognized arguments: {' '.join(extras[:3])}{more} ({len(files)} file "
                           f"name{'s' * (len(files) > 1)} left over: the shell expanded an unquoted glob); quote "
                           "the pattern so asymformer expands it, e.g. --rgb 'frames/*_rgb.png'")
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        return parsed

    def parse_known_args(self, args=None, namespace=None):
        args, i = list(sys.argv[1:] if args is None else args), 0
        while i < len(args):
            name, _, value = args[i].partition("=")
            if name in _OLD_ON_OFF and name in self._option_string_actions:
                if not value and i + 1 < len(args) and args[i + 1] in ("on", "off"):
                    value = args.pop(i + 1)
                if value in ("on", "off"):
                    args[i] = name if value == "on" else f"--no-{name[2:]}"
                    _deprecated(f"{name} {value}", args[i])
            i += 1
        return super().parse_known_args(args, namespace)


class _OldName(argparse.Action):
    """A 0.1 spelling of another option: hidden from --help; prints the notice, then sets its value."""

    def __init__(self, option_strings, dest, new: str, **kwargs):
        super().__init__(option_strings, dest, default=argparse.SUPPRESS, help=argparse.SUPPRESS, **kwargs)
        self.new = new

    def __call__(self, parser, namespace, values, option_string=None):
        _deprecated(option_string, self.new)
        setattr(namespace, self.dest, values)


class _OldSide(_OldName):
    """0.1's --height / --width: one side of --size HxW."""

    def __call__(self, parser, namespace, values, option_string=None):
        _deprecated(option_string, self.new)
        h, w = getattr(namespace, self.dest) or (480, 640)  # 0.1's default where today's depends on the model
        setattr(namespace, self.dest, (values, w) if option_string == "--height" else (h, values))


def _flag(p, name: str, help: str, default=False) -> None:
    """An on/off option as --x / --no-x; default None means "the config file's value"."""
    help += " (default on)" if default is True else ""
    p.add_argument(name, action=argparse.BooleanOptionalAction, default=default, help=help)


def _add_progress(p, default=True) -> None:
    _flag(p, "--progress", "progress bars (--no-progress for logs and scripts)", default)


def _add_size(p, default: tuple[int, int] | None, help: str, default_text: str = "") -> None:
    """--size HxW; default None means "depends on the input", said in `default_text`."""
    shown = f"{default[0]}x{default[1]}" if default else default_text
    p.add_argument("--size", type=_parse_hw, default=default, metavar="HxW", help=f"{help} (default {shown})")
    for old in ("--height", "--width"):
        p.add_argument(old, dest="size", type=_positive, action=_OldSide, new="--size HxW")


def _add_batch_size(p, help: str) -> None:
    p.add_argument("--batch-size", type=_positive, default=1, help=f"{help} (default 1)")
    p.add_argument("--batch", dest="batch_size", type=_positive, action=_OldName, new="--batch-size")


def _threads(text: str):
    """argparse type for --threads: 'auto' or a whole number >= 1."""
    return "auto" if text.strip().lower() == "auto" else _positive(text)


def _add_threads(p) -> None:
    """--threads on every command that computes on the CPU (one setting for torch, ONNX Runtime, OpenVINO)."""
    p.add_argument("--threads", type=_threads, default="auto", metavar="N|auto",
                   help="CPU threads for torch, ONNX Runtime and OpenVINO; auto: $OMP_NUM_THREADS if set, else half "
                        "the usable cores, which stays fast when other processes share the CPU")


def _apply_threads(args) -> int:
    """Apply the command's --threads (before any parallel work) and return the count used."""
    from asymformer.devices import set_threads

    return set_threads(getattr(args, "threads", "auto"))


def _add_figure_format(p, default, what: str) -> None:
    """--figure-format png|pdf|svg for the matplotlib figures a command writes (needs asymformer[figures])."""
    shown = "" if default else " (default: the config's, else png)"
    p.add_argument("--figure-format", choices=("png", "pdf", "svg"), default=default,
                   help=f"file format of {what}: png, or pdf / svg for papers{shown}")
