"""The real CLI in-process, as users see it, with click 8.1 and 8.2+ alike.

``run_cli`` goes through the console script's error boundary
(`nexusmon.cli.common.run_boundary`), so exit codes and messages are exactly
what users see. Test modules import it from here; ``conftest`` hands it out as
the ``cli`` fixture.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import NamedTuple, Union

from click.testing import CliRunner

from nexusmon.cli.common import run_boundary
from nexusmon.cli.main import cli as nexusmon_group

PathLike = Union[str, "os.PathLike[str]"]


class CliResult(NamedTuple):
    """What a user sees from one command: exit code, stdout, stderr."""

    exit_code: int
    stdout: str
    stderr: str


class RawResult(NamedTuple):
    """One command's exit code and undecoded output."""

    exit_code: int
    stdout: bytes
    stderr: bytes


@contextlib.contextmanager
def _working_directory(path: PathLike | None) -> Iterator[None]:
    """Run in ``path``, and back where the test was afterwards (`-C DIR` changes directory)."""
    before = os.getcwd()
    if path is not None:
        os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


def _runner() -> CliRunner:
    try:  # click 8.1 mixes stderr into stdout unless told otherwise
        return CliRunner(mix_stderr=False)  # type: ignore[call-arg]
    except TypeError:  # click >= 8.2 always keeps them apart
        return CliRunner()


def run_cli_raw(
    args: Sequence[str],
    cwd: PathLike | None = None,
    env: Mapping[str, str | None] | None = None,
    input: str | None = None,
) -> RawResult:
    """Run ``nexusmon ARGS`` in-process from ``cwd`` with ``NEXUSMON_*`` unset unless ``env`` sets it."""
    clean: dict[str, str | None] = {k: None for k in os.environ if k.startswith("NEXUSMON_")}
    clean.update(env or {})
    with _working_directory(cwd), _runner().isolation(input=input, env=clean) as streams:
        code = run_boundary(nexusmon_group, [str(a) for a in args])
        # click 8.2 yields (stdout, stderr, output); 8.1 yields (stdout, stderr) and closes them on exit
        return RawResult(code, streams[0].getvalue(), streams[1].getvalue())


def run_cli(
    args: Sequence[str],
    cwd: PathLike | None = None,
    env: Mapping[str, str | None] | None = None,
    input: str | None = None,
) -> CliResult:
    """:func:`run_cli_raw` with stdout and stderr decoded as UTF-8."""
    code, out, err = run_cli_raw(args, cwd, env, input)
    return CliResult(code, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"))
