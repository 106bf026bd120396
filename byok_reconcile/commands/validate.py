"""``byok validate PATH...``: parse, schema, cross-references, secret hygiene.

Needs no secret and runs no subprocess, so it is safe on pull requests from
forks. Exit 0 when there is no error (warnings allowed), 1 otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import click

from byok_reconcile.commands.common import finish, output_options, paths_argument
from byok_reconcile.errors import EXIT_INVALID, EXIT_OK
from byok_reconcile.model import Config
from byok_reconcile.results import Report
from byok_reconcile.validate import ValidationResult, validate_paths


@click.command("validate", help="Check documents, schemas, references and secrets.")
@paths_argument
@output_options
def command(paths: tuple[str, ...], fmt: str, verbose: int, quiet: bool) -> None:
    report = run(paths, fmt)
    finish(report, fmt, quiet=quiet, verbose=verbose)


def run(paths: Sequence[str | Path], fmt: str = "text") -> Report:
    """Validate ``paths``; the report carries the problems and the exit code."""
    result = validate_paths(paths)
    errors = result.config is None
    return Report(
        command="validate",
        exit_code=EXIT_INVALID if errors else EXIT_OK,
        problems=list(result.problems),
        data=_data(result),
        summary=summary(result),
    )


def summary(result: ValidationResult) -> str:
    """``N files, N keys, N features: valid`` or ``N errors in N files``."""
    if result.config is None:
        errors = [p for p in result.problems if p.severity == "error"]
        files = len({p.file for p in errors})
        return f"{_count(len(errors), 'error')} in {_count(files, 'file')}"
    config = result.config
    return (
        f"{_count(len(result.files), 'file')}, {_count(len(config.keys), 'key')}, "
        f"{_count(len(config.features), 'feature')}: valid"
    )


def _count(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _data(result: ValidationResult) -> dict[str, object]:
    data: dict[str, object] = {"files": [f.display for f in result.files]}
    config = result.config
    if config is not None:
        data["keys"] = sorted(config.keys)
        data["features"] = {
            name: _feature_row(config, name) for name in sorted(config.features)
        }
    return data


def _feature_row(config: Config, name: str) -> dict[str, str]:
    feature = config.features[name]
    row = {"key": feature.key, "provider": config.keys[feature.key].provider}
    if feature.deployment:
        row["deployment"] = feature.deployment
    else:
        row["model"] = feature.model or ""
    return row
