"""``byok plan PATH... --target URL``: show what apply would change.

Plan decrypts the secrets when it can, to compare them by fingerprint; a
secret it cannot decrypt shows as "unknown" instead of failing. It needs no
store key: the store keeps fingerprints in clear beside the ciphertexts.
``-o plan.json`` saves the plan (no secrets) for ``byok apply plan.json``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import click

from byok_reconcile.commands.common import (
    fail,
    finish,
    output_options,
    paths_argument,
)
from byok_reconcile.errors import EXIT_CHANGES, EXIT_INVALID, ByokError
from byok_reconcile.results import Problem, Report

F = TypeVar("F", bound=Callable[..., Any])


def target_options(func: F) -> F:
    """``--target`` (or ``BYOK_TARGET``) and ``--source``, shared by the
    store commands."""
    func = click.option(
        "--source",
        metavar="NAME",
        help="Which source's objects to manage "
        "(default: the git repository's name, else the config folder's).",
    )(func)
    func = click.option(
        "--target",
        envvar="BYOK_TARGET",
        required=True,
        metavar="URL",
        help="sqlite:///path, postgresql://user@host:port/db or file:///dir "
        "(or BYOK_TARGET).",
    )(func)
    return func


@click.command("plan", help="Show what apply would change in the target store.")
@paths_argument
@target_options
@click.option("--prune", is_flag=True, help="Plan deletes of objects gone from git.")
@click.option(
    "-o", "--out", type=click.Path(dir_okay=False), help="Save the plan as JSON."
)
@click.option(
    "--detailed-exitcode", is_flag=True, help="Exit 4 when there are changes."
)
@output_options
def command(
    paths: tuple[str, ...],
    target: str,
    source: str | None,
    prune: bool,
    out: str | None,
    detailed_exitcode: bool,
    fmt: str,
    verbose: int,
    quiet: bool,
) -> None:
    from byok_reconcile.output.logs import configure

    configure(verbose, quiet)
    try:
        report = run(
            paths, target, source=source, prune=prune, out=out,
            detailed_exitcode=detailed_exitcode,
        )
    except ByokError as exc:
        fail(exc, "plan", fmt)
        return
    finish(report, fmt, quiet=quiet, verbose=verbose)


def run(
    paths: Sequence[str],
    target: str,
    *,
    source: str | None = None,
    prune: bool = False,
    out: str | None = None,
    detailed_exitcode: bool = False,
) -> Report:
    """Plan ``paths`` against ``target``; the report carries the exit code."""
    from byok_reconcile import reconcile
    from byok_reconcile.pipeline import load_and_check
    from byok_reconcile.store import open_target

    # 1. validate and decrypt what can be decrypted; no provider checks.
    result = load_and_check(list(paths), None)
    problems: list[Problem] = list(getattr(result.validation, "problems", []))
    config = result.config
    if config is None or any(p.severity == "error" for p in problems):
        return Report("plan", exit_code=EXIT_INVALID, problems=problems)
    problems += [_unknown_secret(p) for p in result.report_problems]

    # 2. diff against the store, read without the write lock.
    source = source or reconcile.default_source(list(paths))
    desired = reconcile.desired_state(config, source, result.secrets)
    store = open_target(target)
    try:
        plan = reconcile.make_plan(desired, store.read(), prune=prune)
    finally:
        store.close()

    # 3. save and report.
    if out:
        doc = reconcile.plan_document(
            plan,
            target=store.display,
            paths=[str(Path(p).resolve()) for p in paths],
            config_digest=config.digest(),
        )
        _save(Path(out), doc)
    return plan_report("plan", plan, store.display, problems, detailed_exitcode, out)


def plan_report(
    command: str,
    plan: Any,
    target: str,
    problems: list[Problem],
    detailed_exitcode: bool,
    out: str | None = None,
) -> Report:
    """The Report for a plan (also used by apply)."""
    problems = problems + list(plan.conflicts)
    code = 0
    if any(p.severity == "error" for p in problems):
        code = EXIT_INVALID
    elif detailed_exitcode and plan.has_changes:
        code = EXIT_CHANGES
    data: dict[str, object] = {
        "target": target,
        "source": plan.source,
        "prune": plan.prune,
        "planDigest": plan.digest(),
        "stateDigest": plan.state_digest(),
        "wouldPrune": list(plan.would_prune),
    }
    if out:
        data["saved"] = out
    return Report(
        command,
        exit_code=code,
        problems=problems,
        changes=list(plan.changes),
        data=data,
        summary=_summary(plan, target),
    )


def _summary(plan: Any, target: str) -> str:
    text = f"source {plan.source!r} on {target}"
    if plan.would_prune:
        names = ", ".join(plan.would_prune[:5])
        more = " ..." if len(plan.would_prune) > 5 else ""
        text += (
            f"; {len(plan.would_prune)} would be pruned with --prune: {names}{more}"
        )
    return text + "."


def _unknown_secret(problem: Problem) -> Problem:
    return replace(
        problem,
        severity="warning",
        hint="plan shows this key's secret change as unknown; "
        + (problem.hint or "apply will need it"),
    )


def _save(path: Path, doc: dict[str, Any]) -> None:
    try:
        path.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    except OSError as exc:
        raise ByokError(
            f"cannot write the plan to {path}: {exc.strerror}",
            hint="check the folder exists and is writable",
        ) from exc
