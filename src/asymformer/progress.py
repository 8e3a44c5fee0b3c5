"""Progress bars that suit where the output goes: the one place every long loop gets its bar.

On a terminal: a normal tqdm bar, redrawn in place. In a log (stderr redirected to a file, a
pipe, a job scheduler): a redrawn bar is a stream of carriage returns that fills the file with
thousands of updates, so instead one plain line is written every `ASYMFORMER_PROGRESS_SECONDS`
(default 30) seconds, plus the final count. A leaf module (imports nothing from asymformer).
"""

from __future__ import annotations

import io
import os
import sys

LOG_FORMAT = ("{desc}: {n_fmt}/{total_fmt} {unit} ({percentage:.0f}%), {elapsed} elapsed, {remaining} left, "
              "{rate_fmt}{postfix}")
LOG_FORMAT_NO_TOTAL = "{desc}: {n_fmt} {unit}, {elapsed} elapsed, {rate_fmt}{postfix}"


def log_interval() -> float:
    """Seconds between two lines in a log ($ASYMFORMER_PROGRESS_SECONDS, default 30)."""
    try:
        return max(0.0, float(os.environ.get("ASYMFORMER_PROGRESS_SECONDS", "30")))
    except ValueError:
        return 30.0


class _Lines(io.TextIOBase):
    """What tqdm writes, as whole lines: its carriage returns and padding are dropped and each
    non-empty refresh becomes one line (tqdm redraws by rewriting the line after a '\\r')."""

    def __init__(self, stream):
        self.stream = stream

    def write(self, text: str) -> int:
        line = text.replace("\r", "").strip()
        if line:
            self.stream.write(line + "\n")
        return len(text)

    def flush(self) -> None:
        self.stream.flush()


def progress_bar(iterable=None, *, enabled: bool = True, stream=None, **kwargs):
    """A tqdm bar over `iterable` (or a manual one with `total=`), shown only when `enabled`.

    `stream` is where it goes (default sys.stderr): a terminal gets tqdm's redrawn bar, anything
    else one line per `log_interval()` seconds and at the end. kwargs are tqdm's (desc, total, unit, ...).
    """
    from tqdm import tqdm

    stream = sys.stderr if stream is None else stream
    kwargs.setdefault("dynamic_ncols", True)
    if enabled and not _is_terminal(stream):
        every = log_interval()
        total = kwargs.get("total", len(iterable) if hasattr(iterable, "__len__") else None)
        kwargs.update(file=_Lines(stream), mininterval=every, maxinterval=max(every, 1.0), miniters=1,
                      dynamic_ncols=False, ncols=None,
                      bar_format=LOG_FORMAT if total else LOG_FORMAT_NO_TOTAL)
        kwargs.setdefault("unit", "it")
        return _log_bar_class(tqdm)(iterable, disable=False, **kwargs)
    return tqdm(iterable, disable=not enabled, file=stream, **kwargs)


def _log_bar_class(tqdm):
    """tqdm whose postfix / description changes wait for the next timed line instead of forcing
    one (the trainer updates its loss every few iterations: that would be a line each time)."""

    class LogBar(tqdm):
        def set_postfix(self, ordered_dict=None, refresh=True, **kwargs):
            super().set_postfix(ordered_dict, refresh=False, **kwargs)

        def set_description(self, desc=None, refresh=True):
            super().set_description(desc, refresh=False)

    return LogBar


def _is_terminal(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # a closed or file-like stream without isatty
        return False
