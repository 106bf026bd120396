"""``byok apply PATH... --target URL``: make the store match the configuration.

Validate, decrypt, check (unless ``--no-check``), then plan and write in one
locked transaction. ``--prune`` deletes what the source no longer declares;
a prune of more than half of what the source manages also needs ``--force``.

``byok apply plan.json --target URL`` applies a plan saved by ``plan -o``.
The plan holds no secrets, so apply re-reads the config paths the plan
recorded, refuses if their digest changed, and refuses if any row the plan
looked at changed in the store since.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
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
from byok_reconcile.commands.plan import TARGET_HELP, plan_report, target_options
from byok_reconcile.errors import ByokError, UsageError
from byok_reconcile.pipeline import CheckOptions
from byok_reconcile.results import Report


def _optional_target(func: Any) -> Any:
    return target_options(func, required=False)


@click.command("apply", help="Make the target store match the configuration.")
@paths_argument
@_optional_target
@click.option("--store-key-file", type=click.Path(dir_okay=False), metavar="FILE",
              help="File holding the store key (else BYOK_STORE_KEY).")
@click.option("--prune", is_flag=True, help="Delete objects gone from git.")
@click.option("--force", is_flag=True, help="Allow a prune of more than half.")
@click.option("--no-check", is_flag=True, help="Skip the provider checks.")
@check_options
@output_options
def command(
    paths: tuple[str, ...],
    target: str | None,
    source: str | None,
    store_key_file: str | None,
    prune: bool,
    force: bool,
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
        report = run(
            paths, target, source=source, store_key_file=store_key_file,
            prune=prune, force=force, options=options,
        )
    except ByokError as exc:
        fail(exc, "apply", fmt)
        return
    finish(report, fmt, quiet=quiet, verbose=verbose)


def run(
    paths: Sequence[str],
    target: str | None,
    *,
    source: str | None = None,
    store_key_file: str | None = None,
    prune: bool = False,
    force: bool = False,
    options: CheckOptions | None = None,
) -> Report:
    """Apply ``paths`` (or one saved plan) to ``target``.

    ``target`` None is allowed only for a saved plan, which then goes to
    the target it was made for. ``options`` None skips the provider checks.
    Raises a ByokError for a missing store key, an unreachable store,
    ownership clashes, a stale plan or a refused prune; returns a failing
    Report for an invalid config or a rejected key. Nothing is written
    unless everything passed.
    """
    from byok_reconcile import reconcile
    from byok_reconcile.pipeline import load_and_check
    from byok_reconcile.store import check_target
    from byok_reconcile.store.crypto import load_key

    # 1. a saved plan fixes the paths, source, prune and target to what
    #    was reviewed.
    saved = load_saved_plan(paths)
    if saved is not None:
        paths, source, prune = saved["paths"], saved["source"], saved["prune"]
        target = saved_target(saved, target)
    if target is None:
        raise UsageError(
            "apply needs --target (or BYOK_TARGET)", hint=f"use {TARGET_HELP}"
        )
    check_target(target)
    store_key = load_key(store_key_file)

    # 2. validate, decrypt, check: nothing reaches the store unless all pass.
    result = load_and_check(list(paths), options)
    config = result.config
    if config is None or result.exit_code:
        return Report(
            "apply", exit_code=result.exit_code or 1,
            problems=result.problems, keys=result.results,
        )

    # 3. plan and write under the store's lock.
    source = reconcile.check_source(
        source or reconcile.default_source(list(paths))
    )
    verdicts = {r.key: r.verdict for r in result.results}
    desired = reconcile.desired_state(config, source, result.secrets, verdicts)
    opts = reconcile.ApplyOptions(
        prune=prune, force=force, saved=saved,
        git_revision=reconcile.git_revision(list(paths)),
    )
    store = _open_for(target, saved)
    try:
        outcome = reconcile.apply(store, desired, store_key, opts)
    finally:
        store.close()
    report = plan_report("apply", outcome.plan, store.display, result.problems, False)
    report.keys = result.results
    report.data["written"] = outcome.written
    report.summary = _summary(outcome, store.display)
    return report


def saved_target(saved: Mapping[str, Any], given: str | None) -> str:
    """The target a saved plan goes to: its own, which ``given`` must match."""
    from byok_reconcile.store import canonical_target

    recorded = saved.get("target")
    if not isinstance(recorded, str) or not recorded:
        raise UsageError("the saved plan records no target",
                         hint="run plan again with this byok")
    if given is None:
        if "***" in recorded:  # a password or token was left out
            raise UsageError(
                f"the plan was made for {recorded}, whose credentials are not saved",
                hint="pass that target with --target (or BYOK_TARGET)",
            )
        return recorded
    if canonical_target(given) != recorded:
        raise UsageError(
            f"the plan was made for the target {recorded}, not "
            f"{canonical_target(given)}",
            hint="apply it without --target, or run plan against the new target",
        )
    return given


def _open_for(target: str, saved: Mapping[str, Any] | None) -> Any:
    """Open ``target`` for writing; a plan made against an existing store
    never creates a new one in its place."""
    from byok_reconcile.store import StoreMissingError, open_target

    if saved is None or not saved.get("storeId"):
        return open_target(target)
    try:
        open_target(target, create=False).close()
    except StoreMissingError as exc:
        raise StoreMissingError(
            f"{exc.message}, but the plan was made against an existing store "
            f"(id {saved['storeId']})",
            hint="check the target; run plan again if the store was removed",
        ) from None
    return open_target(target)


def load_saved_plan(paths: Sequence[str]) -> dict[str, Any] | None:
    """The saved plan when ``paths`` is one plan JSON file, else None.

    A plan file that is malformed is a usage error (exit 2); one edited
    after it was saved is refused (exit 1).
    """
    from byok_reconcile.savedplan import check_plan

    if len(paths) != 1 or not paths[0].endswith(".json"):
        return None
    path = Path(paths[0])
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        why = getattr(exc, "strerror", None) or f"it is not JSON ({exc})"
        raise UsageError(
            f"{path} is not a byok plan file: {why}",
            hint="pass config paths, or a file written by `byok plan -o`",
        ) from None
    return check_plan(doc, str(path))


def _summary(outcome: Any, target: str) -> str:
    if not outcome.written:
        return f"No changes for source {outcome.plan.source!r}; nothing written."
    counts = outcome.plan.counts()
    return (
        f"Applied to {target} for source {outcome.plan.source!r}: "
        f"{counts['create']} created, {counts['update']} updated, "
        f"{counts['delete']} deleted."
    )
