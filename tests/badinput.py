"""The malformed-input corpus's harness: a case is a `vtrlab` command line and the files it reads, all made by
the test in the case's own folder. Run in-process through the console entry point (`vtrlab.cli.main`), it must
exit with the documented code (2 bad input, 3 not found), print one line on stderr that names the culprit (the
file, key, option or URL), no traceback, and leave nothing behind (no temporary or partial output).

A family module lists its cases and hands them to `check`::

    CASES = [BadInput("shard-samples-zero", lambda d: ["data", "build", ..., "--shard-samples", "0"],
                      culprit="--shard-samples", leftover=lambda d: [d / "out"])]

    @pytest.mark.parametrize("case", CASES, ids=str)
    def test_build_options(case, tmp_path, capsys):
        check(case, tmp_path, capsys)
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

MAX_LINE = 1000  # a message is bounded: a value is cut after a few hundred characters


@dataclass(frozen=True)
class BadInput:
    """One malformed input. `argv(folder)` writes what the command reads into `folder` and returns the command
    line (without `vtrlab`); `culprit` is a text (or `culprit(folder)`) the error line must contain; `leftover`
    lists paths that must not exist afterwards (e.g. an output folder the refused command was pointed at)."""

    id: str
    argv: Callable[[Path], list[str]]
    culprit: str | Callable[[Path], str]
    code: int = 2
    leftover: Callable[[Path], list[Path]] = field(default=lambda folder: [])

    def __str__(self) -> str:
        return self.id


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """`vtrlab ARGV` in this process: (exit code, stdout, stderr)."""
    from vtrlab.cli import main

    capsys.readouterr()
    saved = sys.argv
    sys.argv = ["vtrlab", *argv]
    try:
        main()
        code = 0
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
    finally:
        sys.argv = saved
    out, err = capsys.readouterr()
    return code, out, err


def check(case: BadInput, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    """Run `case` and assert the contract; returns the error line."""
    folder = tmp_path / "case"
    folder.mkdir()
    argv = case.argv(folder)
    code, out, err = run_cli(argv, capsys)
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err, f"{case}: a traceback instead of one line:\n{err}"
    assert code == case.code, f"{case}: exit {code}, expected {case.code}\nstderr: {err}\nstdout: {out}"
    assert len(lines) == 1, f"{case}: expected one line on stderr, got {len(lines)}:\n{err}"
    line = lines[0]
    culprit = case.culprit(folder) if callable(case.culprit) else case.culprit
    assert culprit in line, f"{case}: the line does not name {culprit!r}: {line}"
    assert len(line) <= MAX_LINE, f"{case}: a {len(line)}-character line"
    left = [str(path) for path in case.leftover(folder) if path.exists()]
    assert not left, f"{case}: left behind {left}"
    partial = [str(p) for p in folder.rglob("*") if ".tmp" in p.name or p.name.startswith("vtrlab-shard-")]
    assert not partial, f"{case}: temporary files left behind {partial}"
    return line
