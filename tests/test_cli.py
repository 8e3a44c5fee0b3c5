import subprocess
import sys

from asymformer import __version__
from asymformer.cli import build_parser, main


def test_version_console_script():
    out = subprocess.run([sys.executable, "-m", "asymformer", "--version"], capture_output=True, text=True)
    assert out.returncode == 0
    assert out.stdout.strip() == f"asymformer {__version__}"


def test_every_subcommand_has_help(capsys):
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert {"info", "prepare", "train", "evaluate", "predict", "export", "benchmark", "demo"} <= set(sub.choices)


def test_user_errors_are_one_line(capsys):
    # A missing file must give a one-line error and exit code 2, never a traceback.
    rc = main(["evaluate", "--checkpoint", "/nonexistent/ckpt.pth", "--data", "/nonexistent"])
    err = capsys.readouterr().err
    assert rc == 2
    assert "Traceback" not in err and err.count("\n") == 1
