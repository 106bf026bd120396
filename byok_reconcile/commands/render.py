"""``byok render PATH... -o FILE``: write the resolved mapping artifact.

Validate, decrypt, check (unless ``--no-check``), then write the artifact
atomically. Any failure that would make ``byok check`` fail writes nothing,
so an older artifact stays as it was. ``-o -`` writes the artifact on
stdout; the report then goes to stderr.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from byok_reconcile.commands.checkopts import build_options, check_options
from byok_reconcile.commands.common import (
    fail,
    finish,
    output_options,
    paths_argument,
)
from byok_reconcile.errors import EXIT_OK, ByokError, UnavailableError, UsageError
from byok_reconcile.pipeline import CheckOptions, PipelineResult, load_and_check
from byok_reconcile.results import Report
from byok_reconcile.secret import Secret

STDOUT = "-"


@click.command("render", help="Validate, check and write the resolved mapping.")
@paths_argument
@click.option(
    "-o",
    "--output",
    required=True,
    metavar="FILE",
    help="Where to write the artifact; - for stdout.",
)
@click.option(
    "--no-check",
    is_flag=True,
    help="Do not ask the providers; the artifact records that it was not checked.",
)
@check_options
@output_options
def command(
    paths: tuple[str, ...],
    output: str,
    no_check: bool,
    fmt: str,
    verbose: int,
    quiet: bool,
    **check: Any,
) -> None:
    from byok_reconcile.output.logs import configure

    configure(verbose, quiet)
    try:
        options = None if no_check else build_options(**check)
        report = run(paths, output, options)
    except ByokError as exc:
        fail(exc, "render", fmt)
        return
    # With -o -, stdout carries the artifact; the report must not mix in.
    sink = sys.stderr if output == STDOUT else sys.stdout
    with contextlib.redirect_stdout(sink):
        finish(report, fmt, quiet=quiet, verbose=verbose)


def run(paths: Sequence[str], output: str, options: CheckOptions | None) -> Report:
    """Render ``paths`` to ``output`` (``-`` for stdout).

    ``options`` None means ``--no-check``. The report carries the exit code;
    the artifact is written only when it is 0.
    """
    target = None if output == STDOUT else _target(output)
    result = load_and_check(paths, options)
    report = _report(result)
    if result.exit_code != EXIT_OK or result.config is None:
        report.summary = "artifact not written: fix the problems above."
        return report

    data = artifact_bytes(result, paths, options)
    if target is None:
        _write_stdout(data)
    else:
        _write_file(data, target)
    report.data["artifact"] = output
    report.data["features"] = _features(result)
    report.summary = _summary(result, output, options)
    return report


def artifact_bytes(
    result: PipelineResult, paths: Sequence[str], options: CheckOptions | None
) -> bytes:
    """The artifact for a successful pipeline run, as canonical bytes."""
    from byok_reconcile import render

    assert result.config is not None
    config = render.portable(result.config, paths)
    prints = {
        n: s.fingerprint for n, s in result.secrets.items() if isinstance(s, Secret)
    }
    results = {r.key: r for r in result.results} if options is not None else None
    deep = options is not None and options.deep
    artifact = render.build_artifact(
        config, results, prints, options is not None, deep=deep
    )
    return render.dump_artifact(artifact)


def _target(output: str) -> Path:
    """The output path, refused before any check is spent on a bad one."""
    path = Path(output)
    if path.is_dir():
        raise UsageError(f"-o {output}: is a folder", hint="name a file")
    if not path.absolute().parent.is_dir():
        raise UsageError(
            f"-o {output}: folder {path.parent} does not exist",
            hint="create it first",
        )
    return path


def _write_file(data: bytes, path: Path) -> None:
    from byok_reconcile.render import write_artifact

    try:
        write_artifact(data, path)
    except OSError as exc:
        raise UnavailableError(
            f"cannot write {path}: {exc.strerror or exc}",
            hint="check that the folder is writable",
        ) from exc


def _write_stdout(data: bytes) -> None:
    sys.stdout.flush()
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()


def _report(result: PipelineResult) -> Report:
    return Report(
        command="render",
        exit_code=result.exit_code,
        problems=result.problems,
        keys=result.results,
    )


def _features(result: PipelineResult) -> dict[str, dict[str, str]]:
    """The mapping in the shape the markdown reporter shows."""
    assert result.config is not None
    shown: dict[str, dict[str, str]] = {}
    for name, spec in sorted(result.config.features.items()):
        provider = result.config.keys[spec.key].provider
        where = "deployment" if spec.deployment else "model"
        shown[name] = {"key": spec.key, where: spec.target, "provider": provider}
    return shown


def _summary(result: PipelineResult, output: str, options: CheckOptions | None) -> str:
    assert result.config is not None
    where = "stdout" if output == STDOUT else output
    checked = "checked" if options is not None else "not checked (--no-check)"
    keys, features = len(result.config.keys), len(result.config.features)
    return f"wrote {where}: {keys} keys, {features} features, {checked}."
