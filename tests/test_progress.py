"""Progress output: a redrawn bar on a terminal, plain timed lines (no carriage returns) in a log."""

import io
import os
import subprocess
import sys
from pathlib import Path

from asymformer.progress import progress_bar

REPO = Path(__file__).resolve().parents[1]


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_a_log_gets_lines_not_carriage_returns(monkeypatch):
    monkeypatch.setenv("ASYMFORMER_PROGRESS_SECONDS", "0")
    log = io.StringIO()
    bar = progress_bar(range(5), desc="predict", unit="frame", stream=log)
    for i in bar:
        bar.set_postfix(loss=f"{i:.1f}")
    text = log.getvalue()
    assert "\r" not in text and "\x1b" not in text
    lines = text.splitlines()
    assert lines[-1].startswith("predict: 5/5 frame (100%)") and "loss=4.0" in lines[-1]
    assert 2 <= len(lines) <= 7  # the start, timed updates (interval 0 here), the end


def test_a_log_line_waits_for_the_interval(monkeypatch):
    monkeypatch.setenv("ASYMFORMER_PROGRESS_SECONDS", "3600")
    log = io.StringIO()
    bar = progress_bar(range(1000), desc="evaluate", stream=log)
    for _ in bar:
        bar.set_postfix(x=1)  # must not force a line each time
    assert len(log.getvalue().splitlines()) == 2  # start and end only


def test_a_terminal_gets_the_redrawn_bar_and_disabled_means_silent():
    tty = _Terminal()
    for _ in progress_bar(range(3), desc="x", stream=tty, mininterval=0):
        pass
    assert "\r" in tty.getvalue()
    quiet = io.StringIO()
    for _ in progress_bar(range(3), desc="x", stream=quiet, enabled=False):
        pass
    assert quiet.getvalue() == ""


def test_a_redirected_command_writes_no_carriage_return(tmp_path):
    """The real CLI with stderr going to a file, as in a job script or `> log 2>&1`."""
    log = tmp_path / "log.txt"
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "ASYMFORMER_PROGRESS_SECONDS": "0"}
    with open(log, "w") as f:
        rc = subprocess.run([sys.executable, "-m", "asymformer", "prepare", "synthetic", "--out", str(tmp_path / "d"),
                             "--train-frames", "3", "--test-frames", "1", "--size", "48x64"],
                            stdout=f, stderr=subprocess.STDOUT, env=env, timeout=120).returncode
    text = log.read_text()
    assert rc == 0, text
    assert "\r" not in text and "Warning" not in text
    assert "prepare synthetic: 4/4 frame (100%)" in text
