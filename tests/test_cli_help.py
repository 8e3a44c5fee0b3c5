"""Help that explains: every option of every subcommand has a help text that shows its default, the
usage line marks required options as required, and help never names a command that does not exist."""

import argparse
import re

import pytest

from asymformer.cli import build_parser


def _parsers(parser, path=("asymformer",)):
    """(command path, parser) for the top parser and every subparser, recursively."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, (*path, name))


PARSERS = list(_parsers(build_parser()))


def _options(parser):
    for action in parser._actions:
        if not action.option_strings or action.help is argparse.SUPPRESS:
            continue  # positionals / subcommands, and hidden 0.1 aliases
        if isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
            continue
        yield action


def test_every_option_has_help_that_shows_its_default():
    missing, no_default = [], []
    for path, parser in PARSERS:
        formatter = parser._get_formatter()
        for action in _options(parser):
            name = f"{' '.join(path)} {action.option_strings[-1]}"
            if not (action.help or "").strip():
                missing.append(name)
                continue
            text = formatter._expand_help(action) if "%" in formatter._get_help_string(action) else \
                formatter._get_help_string(action)
            if action.default is not None and not action.required and "default" not in text:
                no_default.append(name)
    assert not missing, f"options without help: {missing}"
    assert not no_default, f"help does not show the default: {no_default}"


def test_defaults_are_rendered_readably():
    text = dict(PARSERS)[("asymformer", "export")].format_help()
    assert "(default 480x640)" in dict(PARSERS)[("asymformer", "benchmark")].format_help()
    assert "(default 17)" in text and "the size the checkpoint was validated at" in text
    assert "(default off)" in text and "(default on)" in text
    assert "(default False)" not in text and "(default (480, 640))" not in text


def test_help_names_only_commands_that_exist():
    commands = {path[1] for path, _ in PARSERS if len(path) > 1}
    for path, parser in PARSERS:
        for named in re.findall(r"\basymformer (\w+)", parser.format_help()):
            assert named in commands, f"{' '.join(path)} --help names `asymformer {named}`, which does not exist"


def test_required_options_are_shown_as_required_in_usage():
    for path, parser in PARSERS:
        usage = parser.format_usage()
        for action in _options(parser):
            if action.required or path[-1] == "synthetic" and action.dest == "train_frames":  # checked in its handler
                flag = action.option_strings[-1]
                assert re.search(rf"(?<!\[){re.escape(flag)}\b", usage), f"{' '.join(path)}: {flag} shown as optional"


@pytest.mark.parametrize("command", ["train", "evaluate", "info", "benchmark", "demo"])
def test_named_options_from_the_issue_have_help(command):
    text = dict(PARSERS)[("asymformer", command)].format_help()
    assert "default" in text
    if command == "train":
        for flag in ("--epochs", "--batch-size", "--lr", "--weight-decay", "--warmup-epochs", "--workers", "--seed"):
            line = text[text.index(flag):].split("\n  -")[0]
            assert "default" in line, f"train {flag}: {line!r}"


def test_train_help_defaults_are_the_configs():
    """train's flags default to "the config's"; their help spells TrainConfig's values out (without
    importing torch for --help): this catches the two drifting apart."""
    from asymformer.engine.config import TrainConfig

    parser = dict(PARSERS)[("asymformer", "train")]
    cfg = TrainConfig()
    for action in _options(parser):
        key = action.dest
        if not hasattr(cfg, key) or "(default " not in (action.help or "") or key == "workers":
            continue
        shown = action.help.rsplit("(default ", 1)[1].rstrip(")")
        value = getattr(cfg, key)
        expected = f"{value[0]}x{value[1]}" if isinstance(value, tuple) else str(value)
        assert shown.split(",")[0].split(" ")[0] == expected, f"train --{key}: help says {shown!r}, config {value!r}"
