"""Options and plumbing shared by every subcommand."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

import click

from byok_reconcile.errors import ByokError
from byok_reconcile.results import Report

F = TypeVar("F", bound=Callable[..., Any])

# Kept equal to byok_reconcile.output.FORMATS (a test checks) so that building
# the CLI does not import the reporters.
FORMATS = ("text", "json", "github", "markdown")
LOGGER_NAME = "byok"


def paths_argument(func: F) -> F:
    """PATHS...: files or folders, at least one, that must exist."""
    return click.argument(
        "paths",
        nargs=-1,
        required=True,
        type=click.Path(exists=True, dir_okay=True, file_okay=True),
    )(func)


def output_options(func: F) -> F:
    """``--format``, ``-v`` and ``-q``, common to every command.

    The command also gets its logging set up from ``-v``/``-q`` before it
    runs, so every command logs the same way without asking.
    """
    func = _with_logging(func)
    func = click.option(
        "--format",
        "fmt",
        type=click.Choice(FORMATS),
        default="text",
        show_default=True,
        help="Output format: text for people, json for machines, github for "
        "workflow annotations, markdown for a pull-request comment.",
    )(func)
    func = click.option(
        "-v",
        "--verbose",
        count=True,
        help="More detail; -vv logs every external call (never a secret).",
    )(func)
    func = click.option("-q", "--quiet", is_flag=True, help="Only errors.")(func)
    return func


def _with_logging(func: F) -> F:
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        setup_logging(kwargs.get("verbose", 0) or 0, bool(kwargs.get("quiet")))
        return func(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def setup_logging(verbose: int, quiet: bool) -> None:
    """The ``byok`` logger on stderr: WARNING, -v INFO, -vv DEBUG, -q ERROR."""
    from byok_reconcile.output import logs

    logs.configure(verbose, quiet)


def finish(
    report: Report, fmt: str, *, quiet: bool = False, verbose: int = 0
) -> NoReturn:
    """Print the report in the chosen format and exit with its code."""
    from byok_reconcile import output

    output.emit(report, fmt, quiet=quiet, verbose=verbose)
    sys.exit(report.exit_code)


def fail(exc: ByokError, command: str, fmt: str) -> NoReturn:
    """Report an expected error as one readable line, and exit with its code."""
    from byok_reconcile import output

    output.emit_error(exc, command, fmt)
    sys.exit(exc.exit_code)
