import argparse
import json
import re
import subprocess
import sys

import pytest

from asymformer import __version__, list_models
from asymformer.cli import build_parser, main


def test_version_console_script():
    out = subprocess.run([sys.executable, "-m", "asymformer", "--version"], capture_output=True, text=True)
    assert out.returncode == 0
    assert out.stdout.strip() == f"asymformer {__version__}"


def _parsers() -> dict[str, argparse.ArgumentParser]:
    """Every runnable subcommand ("prepare nyuv2", "train", ...) and its parser."""
    def walk(parser, name):
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs:
            yield name, parser
        for action in subs:
            for key, child in action.choices.items():
                yield from walk(child, f"{name} {key}".strip())
    return dict(walk(build_parser(), ""))


# What each command's --help must offer (a representative set, not every option).
KEY_OPTIONS = {
    "info": "--size --num-classes --json",
    "prepare nyuv2": "--mat --splits --mapping --out --classes --raw-depth --overwrite --no-overwrite",
    "prepare sunrgbd": "--root --meta --seg --split --out --depth --expect-counts --no-expect-counts",
    "prepare synthetic": "--out --train-frames --test-frames --size --seed --overwrite",
    "train": "--data --out --config --resume --init-from --model --batch-size --crop-size --depth-unit --amp "
             "--compile --no-compile --channels-last --no-channels-last --deterministic --no-deterministic "
             "--zero-depth --save-every --pretrained-rgb --pretrained-depth --stop-after --time-limit",
    "evaluate": "--checkpoint --data --size --batch-size --scales --flip --no-flip --depth-unit --precision "
                "--save-predictions",
    "predict": "--checkpoint --rgb --depth --out --size --depth-unit --overlay --no-overlay --save-labels",
    "export": "--checkpoint --out --size --batch-size --dynamic --check --no-check --int8 --calibration-frames",
    "benchmark": "--size --batch-size --backends --threads --compare --out",
    "demo": "--out --minutes --size --quick",
}
LONG_COMMANDS = set(KEY_OPTIONS) - {"info"}
OLD_SPELLINGS = {"--height", "--width", "--batch", "--num", "--num-test"}


def test_every_subcommand_offers_its_options_in_one_vocabulary():
    parsers = _parsers()
    assert set(parsers) == set(KEY_OPTIONS)
    for name, parser in parsers.items():
        text = parser.format_help()
        shown = set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", text))
        assert set(KEY_OPTIONS[name].split()) <= shown, (name, set(KEY_OPTIONS[name].split()) - shown)
        assert not OLD_SPELLINGS & shown, (name, OLD_SPELLINGS & shown)
        offered = {s for a in parser._actions if a.help != argparse.SUPPRESS for s in a.option_strings}
        assert not OLD_SPELLINGS & offered and "on|off" not in text
        for action in parser._actions:  # every on/off option has its negative form
            if action.nargs == 0 and not isinstance(action, argparse._HelpAction):
                assert isinstance(action, argparse.BooleanOptionalAction), (name, action.option_strings)
        if name in LONG_COMMANDS:
            assert {"--progress", "--no-progress"} <= shown, name


SUN = ["--root", "r", "--meta", "m", "--seg", "s", "--split", "x", "--out", "o"]
EXPORT = ["export", "--checkpoint", "c.safetensors", "--out", "m.onnx"]
RENAMED = [  # (0.1 spelling, current spelling, the options the notices name)
    ([*EXPORT, "--height", "64", "--width", "96", "--batch", "2"], [*EXPORT, "--size", "64x96", "--batch-size", "2"],
     ["--height", "--width", "--batch"]),
    (["benchmark", "--batch", "3", "--width", "96"], ["benchmark", "--batch-size", "3", "--size", "480x96"],
     ["--batch", "--width"]),
    (["info", "--height", "64"], ["info", "--size", "64x640"], ["--height"]),
    (["prepare", "synthetic", "--out", "o", "--num", "5", "--num-test", "2", "--height", "20", "--width", "28"],
     ["prepare", "synthetic", "--out", "o", "--train-frames", "5", "--test-frames", "2", "--size", "20x28"],
     ["--num", "--num-test", "--height", "--width"]),
    (["prepare", "sunrgbd", *SUN, "--expect-counts", "off"], ["prepare", "sunrgbd", *SUN, "--no-expect-counts"],
     ["--expect-counts off"]),
    (["prepare", "sunrgbd", *SUN, "--expect-counts=on"], ["prepare", "sunrgbd", *SUN, "--expect-counts"],
     ["--expect-counts on"]),
    (["evaluate", "--checkpoint", "c", "--data", "d", "--batch", "4"],
     ["evaluate", "--checkpoint", "c", "--data", "d", "--batch-size", "4"], ["--batch"]),
]


@pytest.mark.parametrize("old, new, named", RENAMED, ids=[" ".join(r[2]) for r in RENAMED])
def test_old_spellings_parse_to_the_same_values_with_one_notice_each(old, new, named, capsys):
    parser = build_parser()
    current = vars(parser.parse_args(new))
    assert capsys.readouterr().err == ""  # the current spelling is silent
    assert vars(parser.parse_args(old)) == current
    notices = capsys.readouterr().err.splitlines()
    pattern = r"asymformer: (.+) is deprecated, use (--[\w-]+)( HxW)? \(it will be removed in 0\.3\)"
    assert [re.fullmatch(pattern, line)[1] for line in notices] == named


def test_on_off_values_only_apply_to_the_option_that_took_them(capsys):
    # "off" after another option is that option's value, never a rewritten --expect-counts.
    ns = build_parser().parse_args(["prepare", "sunrgbd", *SUN[:-1], "off", "--expect-counts"])
    assert ns.out == "off" and ns.expect_counts is True and capsys.readouterr().err == ""


def test_info_lists_every_variant_with_its_numbers(capsys):
    assert main(["info", "--size", "64x96"]) == 0
    table_text, note = capsys.readouterr().out.split("\n\n")
    header, *lines = table_text.splitlines()
    assert header.split() == ["variant", "params", "GMACs", "GMACs+attn"]
    assert "at 64x96, batch 1, 40 classes, smallest first" in note and "attention products" in note
    table = {cells[0]: cells[1:] for cells in (line.split() for line in lines)}
    assert sorted(table) == sorted(list_models())
    gmacs = [float(cells[1]) for cells in table.values()]
    assert gmacs == sorted(gmacs)  # ordered by size, not by name
    assert main(["info", "--size", "128x192", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert list(rows) == list(table)
    # The released network's size (40 classes), as docs/architecture.md lists it.
    assert rows["asymformer_b0_t"]["params"] == 33_059_576 and rows["asymformer_b0_a"]["params"] == 7_697_920
    for name, r in rows.items():
        assert (r["height"], r["width"]) == (128, 192)
        assert int(table[name][0].replace(",", "")) == r["params"]
        # Convolutions and linear layers cost 4x at twice the height and width.
        assert 4 * float(table[name][1]) == pytest.approx(r["gmacs"], abs=0.021)
        assert r["gmacs_with_attention"] > r["gmacs"] > 0


@pytest.mark.parametrize("progress", ["--progress", "--no-progress"])
def test_prepare_progress_flag_reaches_the_bar(tmp_path, capsys, progress):
    assert main(["prepare", "synthetic", "--out", str(tmp_path / "s"), "--train-frames", "1", "--test-frames", "0",
                 "--size", "32x32", progress]) == 0
    shown = bool(re.search(r"prepare synthetic: 1/1 frame \(100%\)", capsys.readouterr().err))
    assert shown == (progress == "--progress")
    assert main(["prepare", "synthetic", "--out", str(tmp_path / "t")]) == 2  # still required, by its new name
    assert "--train-frames N is required" in capsys.readouterr().err


def test_user_errors_are_one_line(capsys):
    # A missing file must give a one-line error and exit code 2, never a traceback.
    rc = main(["evaluate", "--checkpoint", "/nonexistent/ckpt.pth", "--data", "/nonexistent"])
    err = capsys.readouterr().err
    assert rc == 2
    assert "Traceback" not in err and err.count("\n") == 1


@pytest.mark.parametrize("argv, message", [
    (["train", "--data", "{tmp}/d", "--out", "{tmp}/run", "--depth-unit", "0"], "--depth-unit must be a positive"),
    (["evaluate", "--checkpoint", "{tmp}/c.safetensors", "--data", "{tmp}/d", "--depth-unit", "-1"],
     "--depth-unit must be a positive"),
    (["predict", "--checkpoint", "{tmp}/c.safetensors", "--rgb", "r", "--depth", "d", "--out", "{tmp}/out",
      "--size", "16x16"], "--size must be at least 32x32, got 16x16"),
])
def test_bad_values_are_one_line_naming_the_flag(tmp_path, capsys, argv, message):
    (tmp_path / "c.safetensors").write_bytes(b"")
    argv = [a.format(tmp=tmp_path) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(f"asymformer {argv[0]}: error: {message}"), err
