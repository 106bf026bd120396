"""``byok plan PATH... --target URL``: show what apply would change.

Plan decrypts the secrets when it can, to compare them by fingerprint; a
secret it cannot decrypt shows as "unknown" instead of failing. It needs no
store key: the store keeps fingerprints in clear beside the ciphertexts.
``-o plan.json`` saves the plan (no secrets) for ``byok apply plan.json``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
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


TARGET_HELP = (
    "sqlite:///relative.db, sqlite:////abs/path.db, "
    "postgresql://user@host:port/db or file:///dir (or BYOK_TARGET)."
)


def target_options(func: F, *, required: bool = True) -> F:
    """``--target`` (or ``BYOK_TARGET``) and ``--source``, shared by the
    store commands. Apply passes ``required=False``: a saved plan names
    its own target."""
    func = click.option(
        "--source",
        metavar="NAME",
        help="Which source's objects to manage "
        "(default: the git repository's name, else the config folder's).",
    )(func)
    func = click.option(
        "--target",
        envvar="BYOK_TARGET",
        required=required,
        metavar="URL",
        help=TARGET_HELP
        + (" A saved plan's own target by default." if not required else ""),
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
    """Plan ``paths`` against ``target``; the report carries the exit code.

    Plan never writes to the store: a store that does not exist yet is
    planned against as empty (apply will create it).
    """
    from byok_reconcile import reconcile
    from byok_reconcile.pipeline import load_and_check
    from byok_reconcile.savedplan import plan_document
    from byok_reconcile.store import canonical_target, check_target

    # 1. validate and decrypt what can be decrypted; no provider checks.
    check_target(target)
    result = load_and_check(list(paths), None)
    problems: list[Problem] = list(getattr(result.validation, "problems", []))
    config = result.config
    if config is None or any(p.severity == "error" for p in problems):
        return Report("plan", exit_code=EXIT_INVALID, problems=problems)

    # 2. diff against the store, read without the write lock.
    source = reconcile.check_source(
        source or reconcile.default_source(list(paths))
    )
    desired = reconcile.desired_state(config, source, result.secrets)
    state, display = read_state(target)
    plan = reconcile.make_plan(desired, state or _empty(), prune=prune)
    problems += secret_problems(config, result.secrets, plan)
    problems += _prune_warning(plan, display)

    # 3. save and report.
    if out:
        doc = plan_document(
            plan,
            target=canonical_target(target),
            paths=[str(Path(p).resolve()) for p in paths],
            config_digest=config.digest(),
        )
        _save(Path(out), doc)
    report = plan_report("plan", plan, display, problems, detailed_exitcode, out)
    report.data["secrets"] = blind_secrets(config, result.secrets, plan)
    report.data["storeExists"] = state is not None
    if state is None:
        report.summary += " The store does not exist yet; apply will create it."
    return report


def read_state(target: str) -> tuple[Any, str]:
    """The store's state (None when it does not exist yet) and its display.

    Opened without ``create``: plan never creates, migrates or writes.
    """
    from byok_reconcile.store import StoreMissingError, open_target, redact_url

    try:
        store = open_target(target, create=False)
    except StoreMissingError:
        return None, redact_url(target)
    try:
        return store.read(), store.display
    finally:
        store.close()


def _empty() -> Any:
    from byok_reconcile.store.rows import StoreState

    return StoreState(store_id="", schema_version=0, keys={}, features={})


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


def _secret_verdict(plan: Any, name: str) -> str:
    """How plan judged the secret of key ``name``: unchanged, changed ..."""
    for change in plan.changes:
        if change.kind == "key" and change.name == name:
            return str(change.secret or "unchanged")
    return "unchanged"


_BLIND_HINTS = {
    "unchanged": "its ciphertext is the one last applied, so plan shows the "
    "secret as unchanged",
    "changed": "its ciphertext changed since the last apply, so plan counts "
    "the secret as changed (fingerprint unknown)",
    "unknown": "plan shows the secret as unknown: it cannot tell whether it "
    "changed, and counts it as a pending change",
    "new": "the key is new",
}


def secret_problems(
    config: Any, secrets: Mapping[str, object], plan: Any
) -> list[Problem]:
    """A warning per key plan could not decrypt, saying how it judged it."""
    from byok_reconcile.pipeline import secret_problem

    found = []
    for name in sorted(secrets):
        error = secrets[name]
        if not isinstance(error, ByokError):
            continue
        problem = secret_problem(config.keys[name], error)
        why = _BLIND_HINTS[_secret_verdict(plan, name)]
        tail = problem.hint or "apply will need it"
        found.append(replace(problem, severity="warning", hint=f"{why}; {tail}"))
    return found


def blind_secrets(
    config: Any, secrets: Mapping[str, object], plan: Any
) -> dict[str, list[str]]:
    """The keys plan could not decrypt, by how it judged their secret."""
    groups: dict[str, list[str]] = {
        "unchangedByCiphertext": [],
        "changedByCiphertext": [],
        "unknown": [],
        "new": [],
    }
    names = {"unchanged": "unchangedByCiphertext", "changed": "changedByCiphertext"}
    for name in sorted(secrets):
        if isinstance(secrets[name], ByokError):
            verdict = _secret_verdict(plan, name)
            groups[names.get(verdict, verdict)].append(name)
    return groups


def _prune_warning(plan: Any, target: str) -> list[Problem]:
    from byok_reconcile.reconcile import big_prune

    if not big_prune(plan):
        return []
    deletes = plan.counts()["delete"]
    return [
        Problem(
            file=target,
            line=0,
            col=0,
            message=f"the prune deletes {deletes} of the {plan.managed} objects "
            f"that source {plan.source!r} manages (more than half)",
            code="prune-safety",
            severity="warning",
            hint="check --source and the paths; apply will refuse this "
            "without --force",
        )
    ]


def _save(path: Path, doc: dict[str, Any]) -> None:
    try:
        path.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    except OSError as exc:
        raise ByokError(
            f"cannot write the plan to {path}: {exc.strerror}",
            hint="check the folder exists and is writable",
        ) from exc
