"""Every command the README shows must run as written: known subcommands and flags, real make targets.

Commands come from the README's code blocks (`asymformer ...`, `torchrun ... -m asymformer ...`) and
from inline code spans that start with `asymformer ` (spans holding "..." are abbreviations and are
skipped). Each is parsed by the real parser, so a renamed flag breaks this test, not a newcomer.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from asymformer import cli

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


def _fenced(text: str) -> list[tuple[str, str]]:
    """(language, body) of every fenced block, pairing fences line by line."""
    out, lang, body = [], None, []
    for line in text.splitlines():
        if line.startswith("```"):
            if lang is None:
                lang, body = line[3:].strip(), []
            else:
                out.append((lang, "\n".join(body)))
                lang = None
        elif lang is not None:
            body.append(line)
    return out


def _blocks(text: str) -> list[str]:
    return [body for lang, body in _fenced(text) if lang in ("", "bash", "sh", "console")]


def _without_blocks(text: str) -> str:
    return re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)


def asymformer_commands(text: str) -> list[str]:
    """The argument strings (after `asymformer`) of every runnable command in the README."""
    found = []
    for block in _blocks(text):
        for line in block.splitlines():
            line = line.split(" #", 1)[0].strip()
            m = re.match(r"^(?:\S*/)?(?:torchrun\s.*?-m\s+)?asymformer(\s.*|$)", line)
            if m:
                found.append(m.group(1).strip())
    for span in re.findall(r"`([^`\n]+)`", _without_blocks(text)):
        if span.startswith("asymformer ") and "..." not in span:
            found.append(span[len("asymformer "):].strip())
    return found


def make_targets(text: str) -> set[str]:
    names = set()
    for block in _blocks(text):
        names.update(re.findall(r"^\s*make\s+([\w-]+)", block, flags=re.M))
    names.update(re.findall(r"`make\s+([\w-]+)`", _without_blocks(text)))
    return names


def parse(args: str):
    """Parse like the CLI does; argparse's exit on an unknown flag becomes a test failure."""
    try:
        return cli.build_parser().parse_args(shlex.split(args))
    except SystemExit as exc:
        if exc.code == 0:  # --help / --version
            return None
        pytest.fail(f"README command does not parse: asymformer {args}")


README_TEXT = README.read_text()
COMMANDS = list(dict.fromkeys(asymformer_commands(README_TEXT)))


def test_readme_has_the_two_commands_and_many_cli_examples():
    assert "## Two commands" in README_TEXT
    assert {"demo", "test"} <= make_targets(README_TEXT)
    subcommands = {c.split()[0] for c in COMMANDS if c}
    assert {"demo", "predict", "prepare", "train", "evaluate", "export", "benchmark"} <= subcommands


@pytest.mark.parametrize("args", COMMANDS)
def test_readme_command_parses_in_current_spelling(args, capsys):
    ns = parse(args)
    assert "deprecated" not in capsys.readouterr().err, f"README shows an old spelling: asymformer {args}"
    if ns is not None:
        assert callable(ns.func)


def test_make_targets_named_in_readme_exist():
    makefile = (ROOT / "Makefile").read_text()
    defined = set(re.findall(r"^([\w-]+)\s*:", makefile, flags=re.M))
    missing = make_targets(README_TEXT) - defined
    assert not missing, f"README names make targets the Makefile lacks: {sorted(missing)}"


def test_readme_links_point_to_files():
    links = re.findall(r"\]\(((?:docs|examples|benchmarks)/[^)#]+)\)", README_TEXT)
    assert links
    missing = [p for p in links if not (ROOT / p).exists()]
    assert not missing, f"README links to missing files: {missing}"


def test_readme_has_no_unfilled_placeholders():
    assert not re.search(r"\b(DEMO_MIOU|DEMO_DETAILS|LAT_[A-Z]|TODO|TBD)\b", README_TEXT)


def test_extractor_catches_a_wrong_flag():
    """The check itself must bite: a misspelt flag in a README code block fails to parse."""
    cmds = asymformer_commands("```bash\nasymformer train --dataa x  # comment\n```\n")
    assert cmds == ["train --dataa x"]
    with pytest.raises(pytest.fail.Exception):
        parse(cmds[0])
    assert asymformer_commands("```bash\ntorchrun --nproc_per_node 2 -m asymformer info\n```") == ["info"]
