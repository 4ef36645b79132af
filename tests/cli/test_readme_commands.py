"""The README's command reference is checked against the real CLI, so the docs cannot drift."""

from __future__ import annotations

import importlib
import importlib.util
import re
from pathlib import Path

import click
import pytest

from nexusmon.cli.main import COMMANDS
from nexusmon.cli.main import cli as nexusmon_group

README = Path(__file__).resolve().parents[2] / "README.md"
SECTION = "Command reference"


def available() -> list[str]:
    return [name for name, (module, _, _) in COMMANDS.items() if importlib.util.find_spec(module) is not None]


def command(name: str) -> click.Command:
    module, attr, _ = COMMANDS[name]
    found: click.Command = getattr(importlib.import_module(module), attr)
    return found


def subcommands() -> list[tuple[str, str]]:
    pairs = []
    for name in available():
        group = command(name)
        if isinstance(group, click.Group):
            pairs += [(name, sub) for sub in group.commands]
    return pairs


def reference_section() -> str:
    if not README.exists():
        pytest.skip("README.md is not written yet")
    text = README.read_text(encoding="utf-8")
    match = re.search(rf"^(#+) {SECTION}\s*$", text, re.MULTILINE)
    assert match, f"README.md has no '{SECTION}' heading"
    level = len(match.group(1))
    rest = text[match.end():]
    end = re.search(rf"^#{{1,{level}}} ", rest, re.MULTILINE)
    return rest[: end.start()] if end else rest


def code_of(markdown: str) -> list[str]:
    """Inline code spans and fenced code lines, with table-escaped pipes restored."""
    fenced = re.findall(r"^```[^\n]*\n(.*?)^```", markdown, re.MULTILINE | re.DOTALL)
    outside = re.sub(r"^```[^\n]*\n.*?^```", "", markdown, flags=re.MULTILINE | re.DOTALL)
    spans = re.findall(r"`([^`\n]+)`", outside)
    lines = [line for block in fenced for line in block.splitlines()]
    return [s.replace("\\|", "|") for s in spans + lines]


def usages() -> list[tuple[str, list[str]]]:
    """Every ``nexusmon <command> ...`` in the section as (command, following words)."""
    found = []
    for code in code_of(reference_section()):
        words = code.split()
        for i, word in enumerate(words):
            if word == "nexusmon" and i + 1 < len(words) and re.fullmatch(r"[a-z][a-z-]*", words[i + 1]):
                tail = words[i + 2:]
                stop = tail.index("nexusmon") if "nexusmon" in tail else len(tail)
                found.append((words[i + 1], tail[:stop]))
    return found


def option_names(cmd: click.Command) -> set[str]:
    names = {opt for p in cmd.params for opt in (*p.opts, *p.secondary_opts)}
    if isinstance(cmd, click.Group):
        for sub in cmd.commands.values():
            names |= option_names(sub)
    return names


def choices_of(cmd: click.Command, option: str) -> set[str] | None:
    for param in cmd.params:
        if option in param.opts and isinstance(param.type, click.Choice):
            return {str(c) for c in param.type.choices}
    return None


def test_every_available_command_is_in_the_reference() -> None:
    documented = {name for name, _ in usages()}
    missing = [name for name in available() if name not in documented]
    assert missing == [], f"README.md '{SECTION}' does not mention: {missing}"


def test_every_documented_command_exists() -> None:
    unknown = sorted({name for name, _ in usages() if name not in available()})
    assert unknown == [], f"README.md documents commands the CLI does not have: {unknown}"


def test_documented_subcommands_exist_and_every_subcommand_is_documented() -> None:
    mentioned: dict[str, set[str]] = {}
    for name, tail in usages():
        if name in available() and isinstance(command(name), click.Group) and tail:
            words = re.split(r"[|\[\]]", tail[0])
            mentioned.setdefault(name, set()).update(w for w in words if re.fullmatch(r"[a-z][a-z-]*", w))
    for name, sub in subcommands():
        assert sub in mentioned.get(name, set()), f"README.md does not mention `nexusmon {name} {sub}`"
    for name, subs in mentioned.items():
        group = command(name)
        assert isinstance(group, click.Group)
        assert subs <= set(group.commands), f"README.md documents unknown `nexusmon {name}` subcommands"


def test_documented_options_exist() -> None:
    global_options = option_names(nexusmon_group)
    for name, tail in usages():
        if name not in available():
            continue
        known = option_names(command(name)) | global_options
        for word in tail:
            for option in re.findall(r"(?<![\w-])(--?[A-Za-z][\w-]*)", word):
                assert option in known, f"README.md documents `{option}` for `nexusmon {name}`, which has no such option"


def test_documented_choices_match_the_cli() -> None:
    for name, tail in usages():
        if name not in available():
            continue
        for option, value in zip(tail, tail[1:]):
            option, value = option.strip("[]"), value.strip("[]")
            choices = choices_of(command(name), option) if "|" in value else None
            if choices is not None:
                assert set(value.split("|")) == choices, f"`nexusmon {name} {option}` choices differ from README.md"


@pytest.mark.parametrize("name", available())
def test_command_help_has_an_example(name: str, cli, tmp_path) -> None:
    code, out, err = cli([name, "--help"], tmp_path)
    assert (code, err) == (0, "")
    assert "Example" in out, f"`nexusmon {name} --help` has no example"


@pytest.mark.parametrize(("name", "sub"), subcommands())
def test_subcommand_help_has_an_example(name: str, sub: str, cli, tmp_path) -> None:
    code, out, err = cli([name, sub, "--help"], tmp_path)
    assert (code, err) == (0, "")
    assert "Example" in out, f"`nexusmon {name} {sub} --help` has no example"


def test_top_level_help_lists_every_available_command(cli, tmp_path) -> None:
    code, out, _ = cli(["--help"], tmp_path)
    assert code == 0 and "Example" in out
    listed = re.findall(r"^  ([a-z][a-z-]*)\s", out.split("Commands:", 1)[1], re.MULTILINE)
    assert listed == available()
