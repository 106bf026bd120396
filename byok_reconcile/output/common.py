"""Helpers that several reporters share: counts, status words, values."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from byok_reconcile.results import Change, KeyResult, Report, TargetResult

ACTION_SIGNS = {"create": "+", "update": "~", "delete": "-", "noop": " "}


@dataclass(frozen=True)
class Options:
    """How a reporter renders: ``quiet`` keeps errors only, ``colour`` ANSI,
    ``keys_streamed`` leaves out the key lines that were shown already."""

    quiet: bool = False
    verbose: int = 0
    colour: bool = False
    # Key lines were already printed as each check finished (see progress).
    keys_streamed: bool = False


@dataclass(frozen=True)
class Feature:
    """A feature row for the reporters, read from ``Report.data``."""

    name: str
    key: str
    target: str
    provider: str = ""


def status_word(report: Report) -> str:
    """One plain word for the outcome: passed, failed, changes or unavailable."""
    if report.exit_code == 4:
        return "changes pending"
    if report.exit_code == 3:
        return "unavailable"
    if report.exit_code or report.errors:
        return "failed"
    return "passed"


def pending(changes: list[Change]) -> list[Change]:
    """The changes that do something (``noop`` ones dropped)."""
    return [c for c in changes if c.action != "noop"]


def plan_counts(changes: list[Change]) -> str:
    """``2 to create, 1 to update, 0 to delete`` as terraform says it."""
    counts = {a: sum(1 for c in changes if c.action == a) for a in ACTION_SIGNS}
    return (
        f"{counts['create']} to create, {counts['update']} to update, "
        f"{counts['delete']} to delete"
    )


def problem_counts(report: Report) -> str:
    """``2 errors, 1 warning`` (or ``no problems``)."""
    errors = len(report.errors)
    warnings = len(report.problems) - errors
    parts = []
    if errors:
        parts.append(_plural(errors, "error"))
    if warnings:
        parts.append(_plural(warnings, "warning"))
    return ", ".join(parts) or "no problems"


def key_failures(key: KeyResult) -> list[str]:
    """``target: verdict - detail (request id)`` for each failing model or
    deployment of ``key``; the request id only where it is not the key's."""
    return [target_line(key, t) for t in key.targets if t.verdict != "valid"]


def target_line(key: KeyResult, target: TargetResult) -> str:
    """One target's verdict, its detail and its own request id, if any."""
    text = f"{target.target}: {target.verdict}"
    if target.detail:
        text += f" - {target.detail}"
    if target.request_id and target.request_id != key.request_id:
        text += f" {request_note(target.request_id)}"
    return text


def request_note(request_id: str) -> str:
    """How a provider's request id is shown: ``(request req_abc123)``."""
    return f"(request {request_id})"


def plural(n: int, word: str) -> str:
    """``1 key``, ``2 keys``: ``word`` gets an ``s`` unless ``n`` is 1."""
    return _plural(n, word)


_CONTROL = {c: f"\\x{c:02x}" for c in [*range(0x20), 0x7F]}
_CONTROL.update({ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): " "})


def printable(text: str) -> str:
    """``text`` on one line, control characters shown as escapes.

    Config values reach the terminal and CI logs through messages; a raw
    newline could forge a line (or a workflow command) and ESC could drive
    the terminal.
    """
    return text.translate(_CONTROL)


def show_value(value: object) -> str:
    """A field value as JSON text; secrets reach here only as fingerprints."""
    if value is None:
        return "(none)"
    return json.dumps(value, sort_keys=True, default=str, ensure_ascii=False)


def features(report: Report) -> list[Feature]:
    """The features a command put in ``data["features"]``.

    Accepted shapes: a mapping ``name -> {key, model|deployment, provider}``
    or a list of such mappings each with a ``name``.
    """
    raw = report.data.get("features")
    return sorted(_iter_features(raw), key=lambda f: f.name)


def _iter_features(raw: object) -> Iterator[Feature]:
    items: list[Mapping[str, object]]
    if isinstance(raw, Mapping):
        items = [{**v, "name": n} for n, v in raw.items() if isinstance(v, Mapping)]
    elif isinstance(raw, list):
        items = [v for v in raw if isinstance(v, Mapping)]
    else:
        return
    for item in items:
        target = item.get("model") or item.get("deployment") or ""
        yield Feature(
            name=str(item.get("name", "")),
            key=str(item.get("key", "")),
            target=str(target),
            provider=str(item.get("provider", "")),
        )


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"
