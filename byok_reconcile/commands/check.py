"""``byok check PATH...``: ask each provider whether each key works.

Validate first (an invalid configuration exits 1 unchecked), decrypt, check,
report. Exit 0 when every key works, 1 when a provider rejected a key or a
model, 3 when a provider or a secret was unavailable (unless
``--unreachable=warn``).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any, TextIO

import click

from byok_reconcile.commands.checkopts import build_options, check_options
from byok_reconcile.commands.common import (
    fail,
    finish,
    output_options,
    paths_argument,
)
from byok_reconcile.errors import ByokError
from byok_reconcile.pipeline import CheckOptions, PipelineResult, load_and_check
from byok_reconcile.results import UNREACHABLE, KeyResult, Report

DEEP_NOTICE = (
    "byok check: --deep sends one real request per model or deployment; "
    "it spends tokens."
)


@click.command("check", help="Ask each provider whether each key works.")
@paths_argument
@check_options
@output_options
def command(
    paths: tuple[str, ...], fmt: str, verbose: int, quiet: bool, **check: Any
) -> None:
    from byok_reconcile.output.logs import configure

    configure(verbose, quiet)
    try:
        options = build_options(**check)
    except ByokError as exc:
        fail(exc, "check", fmt)
        return
    progress = Progress(sys.stderr, enabled=fmt == "text" and not quiet)
    report = run(paths, options, progress)
    finish(report, fmt, quiet=quiet, verbose=verbose)


def run(
    paths: Sequence[str], options: CheckOptions, progress: Progress | None = None
) -> Report:
    """Check the keys of ``paths``; the report carries the exit code."""
    progress = progress or Progress(sys.stderr, enabled=False)
    if options.deep:
        click.echo(DEEP_NOTICE, err=True)
    result = load_and_check(paths, options, on_result=progress.on_result)
    progress.done()
    return make_report(result, options)


def make_report(result: PipelineResult, options: CheckOptions) -> Report:
    return Report(
        command="check",
        exit_code=result.exit_code,
        problems=result.problems,
        keys=result.results,
        summary=summary(result.results, options),
    )


def summary(results: Sequence[KeyResult], options: CheckOptions) -> str:
    if not results:
        return ""
    working = sum(r.working for r in results)
    text = f"{len(results)} keys checked: {working} working"
    failing = len(results) - working
    if failing:
        text += f", {failing} not"
    unreachable = sum(r.verdict == UNREACHABLE for r in results)
    if unreachable and options.unreachable == "warn":
        text += f" ({unreachable} unreachable, not counted as failures)"
    return text + "."


class Progress:
    """Progress while checks run: a rewritten line on a TTY, else one line
    per key as it finishes. Writes to stderr; stdout is the report's."""

    def __init__(self, stream: TextIO, *, enabled: bool) -> None:
        self.stream = stream
        self.enabled = enabled
        self.tty = enabled and stream.isatty()
        self.count = 0

    def on_result(self, result: KeyResult) -> None:
        self.count += 1
        if not self.enabled:
            return
        if self.tty:
            self.stream.write(f"\rchecking keys: {self.count} done")
        else:
            self.stream.write(f"checked {result.key}: {result.verdict}\n")
        self.stream.flush()

    def done(self) -> None:
        if self.tty and self.count:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
