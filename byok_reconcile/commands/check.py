"""``byok check PATH...``: ask each provider whether each key works.

Validate first (an invalid configuration exits 1 unchecked), decrypt, check,
report. Exit 0 when every key works, 1 when a provider rejected a key or a
model, 3 when a provider or a secret was unavailable (unless
``--unreachable=warn``).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import click

from byok_reconcile.commands.checkopts import build_options, check_options
from byok_reconcile.commands.common import fail, output_options, paths_argument
from byok_reconcile.errors import ByokError
from byok_reconcile.pipeline import (
    CheckOptions,
    OnResult,
    PipelineResult,
    load_and_check,
)
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
    from byok_reconcile import output
    from byok_reconcile.output.logs import configure
    from byok_reconcile.output.progress import CheckProgress

    configure(verbose, quiet)
    try:
        options = build_options(**check)
    except ByokError as exc:
        fail(exc, "check", fmt)
        return
    progress = CheckProgress(fmt, quiet=quiet, verbose=verbose)
    report = run(paths, options, progress.on_result)
    progress.done()
    output.emit(
        report, fmt, quiet=quiet, verbose=verbose,
        keys_streamed=progress.streams_keys,
    )
    sys.exit(report.exit_code)


def run(
    paths: Sequence[str], options: CheckOptions, on_result: OnResult | None = None
) -> Report:
    """Check the keys of ``paths``; the report carries the exit code.

    ``on_result`` sees each key's result as soon as its check finishes.
    """
    if options.deep:
        click.echo(DEEP_NOTICE, err=True)
    result = load_and_check(paths, options, on_result=on_result)
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
    """``3 keys checked: 2 working, 1 not working.`` (or ``1 key checked``)."""
    from byok_reconcile.output.common import plural

    if not results:
        return ""
    working = sum(r.working for r in results)
    text = f"{plural(len(results), 'key')} checked: {working} working"
    failing = len(results) - working
    if failing:
        text += f", {failing} not working"
    unreachable = sum(r.verdict == UNREACHABLE for r in results)
    if unreachable and options.unreachable == "warn":
        text += f"; {unreachable} unreachable, not counted as failures"
    return text + "."
