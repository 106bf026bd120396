"""Options and plumbing shared by every subcommand."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from byok_reconcile.errors import ByokError
from byok_reconcile.results import Report

F = TypeVar("F", bound=Callable[..., Any])

FORMATS = ("text", "json", "github", "markdown")
LOGGER_NAME = "byok"


def paths_argument(func: F) -> F:
    return click.argument(
        "paths",
        nargs=-1,
        required=True,
        type=click.Path(exists=True, dir_okay=True, file_okay=True),
    )(func)


def output_options(func: F) -> F:
    """``--format``, ``-v`` and ``-q``, common to every command."""
    func = click.option(
        "--format",
        "fmt",
        type=click.Choice(FORMATS),
        default="text",
        show_default=True,
        help="Output format.",
    )(func)
    func = click.option(
        "-v", "--verbose", count=True, help="More detail; -vv logs every external call."
    )(func)
    func = click.option("-q", "--quiet", is_flag=True, help="Only errors.")(func)
    return func


def setup_logging(verbose: int, quiet: bool) -> None:
    level = logging.WARNING
    if verbose >= 2:
        level = logging.DEBUG
    elif verbose == 1:
        level = logging.INFO
    if quiet:
        level = logging.ERROR
    logger = logging.getLogger(LOGGER_NAME)
    logger.setLevel(level)
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("byok: %(levelname)s: %(message)s"))
        logger.addHandler(handler)
    logger.propagate = False


def finish(report: Report, fmt: str, *, quiet: bool = False, verbose: int = 0) -> None:
    """Print the report in the chosen format and exit with its code."""
    from byok_reconcile import output

    output.emit(report, fmt, quiet=quiet, verbose=verbose)
    sys.exit(report.exit_code)


def fail(exc: ByokError, command: str, fmt: str) -> None:
    """Report an expected error as one readable line, and exit with its code."""
    from byok_reconcile import output

    output.emit_error(exc, command, fmt)
    sys.exit(exc.exit_code)
