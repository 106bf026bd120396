"""Reporters: one per ``--format``, chosen from one registry.

A reporter turns a :class:`~byok_reconcile.results.Report` into text on
stdout. Nothing here ever sees a secret: reports carry fingerprints only.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Callable

import click

from byok_reconcile.errors import ByokError
from byok_reconcile.results import Report

Reporter = Callable[[Report, bool, int], str]


def _text(report: Report, quiet: bool, verbose: int) -> str:
    lines = [str(p) for p in report.problems if not quiet or p.severity == "error"]
    for key in report.keys:
        lines.append(f"key {key.key} ({key.provider}): {key.verdict} {key.detail}")
    for change in report.changes:
        lines.append(f"{change.action} {change.kind} {change.name}")
    if report.summary and not quiet:
        lines.append(report.summary)
    return "\n".join(lines)


def _json(report: Report, quiet: bool, verbose: int) -> str:
    body = {
        "command": report.command,
        "exitCode": report.exit_code,
        "summary": report.summary,
        "problems": [dataclasses.asdict(p) for p in report.problems],
        "keys": [dataclasses.asdict(k) for k in report.keys],
        "changes": [dataclasses.asdict(c) for c in report.changes],
        "data": report.data,
    }
    return json.dumps(body, indent=2, sort_keys=True, default=str)


REPORTERS: dict[str, Reporter] = {"text": _text, "json": _json}


def emit(report: Report, fmt: str, *, quiet: bool = False, verbose: int = 0) -> None:
    reporter = REPORTERS.get(fmt, _text)
    text = reporter(report, quiet, verbose)
    if text:
        click.echo(text)


def emit_error(exc: ByokError, command: str, fmt: str) -> None:
    if fmt == "json":
        body = {"command": command, "exitCode": exc.exit_code, "error": str(exc)}
        click.echo(json.dumps(body, indent=2, sort_keys=True))
        return
    click.echo(f"byok {command}: error: {exc}", err=True)
    sys.stderr.flush()
