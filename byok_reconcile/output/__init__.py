"""Reporters: one per ``--format``, chosen from one registry.

A reporter is a function ``(Report, Options) -> str``; :data:`REPORTERS` maps
each ``--format`` name to one. Nothing here ever sees a secret: reports carry
fingerprints only.

Conventional ``Report.data`` entries that reporters understand:
``features`` (a mapping ``name -> {key, model|deployment, provider}``), shown
by the markdown reporter. Everything in ``data`` appears in the JSON output.

Under GitHub Actions (``GITHUB_STEP_SUMMARY`` set) the text and github
formats also append the markdown report to the job summary.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
from collections.abc import Callable, Iterator, Mapping

import click

from byok_reconcile.errors import ByokError
from byok_reconcile.output.colour import paint, wants_colour
from byok_reconcile.output.common import Options
from byok_reconcile.results import Report

Reporter = Callable[[Report, Options], str]


class _Registry(Mapping[str, Reporter]):
    """``--format`` name -> reporter; a reporter's module is imported only
    when that format is used, so a run pays for one reporter, not four."""

    def __init__(self, modules: Mapping[str, str]) -> None:
        self._modules = dict(modules)

    def __getitem__(self, fmt: str) -> Reporter:
        module = importlib.import_module(self._modules[fmt])
        reporter: Reporter = module.render
        return reporter

    def __iter__(self) -> Iterator[str]:
        return iter(self._modules)

    def __len__(self) -> int:
        return len(self._modules)


REPORTERS: Mapping[str, Reporter] = _Registry(
    {
        "text": "byok_reconcile.output.text",
        "json": "byok_reconcile.output.jsonout",
        "github": "byok_reconcile.output.github",
        "markdown": "byok_reconcile.output.markdown",
    }
)
FORMATS = tuple(REPORTERS)
_SUMMARY_FORMATS = ("text", "github")

log = logging.getLogger("byok.output")

__all__ = [
    "FORMATS",
    "REPORTERS",
    "Options",
    "Reporter",
    "emit",
    "emit_error",
    "render",
]


def render(report: Report, fmt: str, opts: Options | None = None) -> str:
    """The report in format ``fmt`` as a string (no trailing newline needed)."""
    reporter = REPORTERS.get(fmt)
    if reporter is None:
        raise ValueError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
    return reporter(report, opts or Options())


def emit(
    report: Report,
    fmt: str,
    *,
    quiet: bool = False,
    verbose: int = 0,
    keys_streamed: bool = False,
) -> None:
    """Print ``report`` on stdout in format ``fmt``; fill the job summary.

    ``keys_streamed``: the key lines went out already as checks finished
    (:mod:`byok_reconcile.output.progress`); the text report leaves them out.
    The job summary always holds the whole report.
    """
    opts = Options(
        quiet=quiet, verbose=verbose, colour=_colour(fmt), keys_streamed=keys_streamed
    )
    body = render(report, fmt, opts)
    if body:
        click.echo(body, color=opts.colour)
    if fmt in _SUMMARY_FORMATS:
        append_step_summary(report)


def emit_error(exc: ByokError, command: str, fmt: str) -> None:
    """Report an error that stopped ``command``, in format ``fmt``.

    JSON and markdown get a whole document on stdout (so a CI step that
    captures it still has something to post); github gets an annotation;
    text gets one line on stderr.
    """
    if fmt == "json":
        from byok_reconcile.output import jsonout

        click.echo(jsonout.render_error(exc, command))
        return
    report = Report(command=command, exit_code=exc.exit_code, summary=str(exc))
    if fmt == "markdown":
        click.echo(REPORTERS["markdown"](report, Options()), nl=False)
        return
    if fmt == "github":
        from byok_reconcile.output import github

        title = f"byok {command}: {type(exc).__name__}"
        click.echo(github.command("error", str(exc), file=exc.file, title=title))
    else:
        colour = wants_colour(sys.stderr)
        click.echo(f"byok {command}: {paint('error', 'red', colour)}: {exc}", err=True)
    append_step_summary(report)


def append_step_summary(report: Report) -> None:
    """Append the markdown report to ``$GITHUB_STEP_SUMMARY`` when it is set."""
    path = os.environ.get("GITHUB_STEP_SUMMARY")
    if not path:
        return
    try:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(REPORTERS["markdown"](report, Options()))
    except OSError as exc:
        # The summary is a courtesy; the real output already went to stdout.
        log.warning("cannot write the job summary %s: %s", path, exc.strerror)


def _colour(fmt: str) -> bool:
    return fmt == "text" and wants_colour(sys.stdout)
