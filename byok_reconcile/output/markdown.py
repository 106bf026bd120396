"""The markdown reporter: a pull-request comment body.

A status line, a table of keys (provider, verdict, fingerprint), the
features, the plan's changes, and the problems folded in ``<details>``.
Every cell is escaped: ``|`` cannot split a row and HTML cannot render.
"""

from __future__ import annotations

import html

from byok_reconcile.output.common import (
    ACTION_SIGNS,
    Options,
    features,
    key_failures,
    pending,
    plan_counts,
    printable,
    problem_counts,
    show_value,
    status_word,
)
from byok_reconcile.results import Change, FieldChange, KeyResult, Report

MARKER = "<!-- byok-reconcile report -->"


def cell(value: object) -> str:
    """Text made safe for one table cell (and for any markdown line).

    HTML is escaped, ``|`` cannot end the cell, newlines become ``<br>``, and
    ``@`` cannot mention a user or team from a PR comment.
    """
    text = html.escape(str(value), quote=False)
    text = text.replace("|", "\\|").replace("@", "&#64;")
    lines = text.replace("\r\n", "\n").split("\n")
    return "<br>".join(printable(line) for line in lines)


def render(report: Report, opts: Options) -> str:
    """The comment body; ``quiet`` has no effect: a comment is read later."""
    parts = [MARKER, _status(report)]
    parts += _stored_keys(report) or _keys(report)
    parts += _features(report) + _plan(report) + _problems(report)
    return "\n\n".join(parts) + "\n"


def _status(report: Report) -> str:
    head = f"### byok {cell(report.command)}: {status_word(report)}"
    detail = [problem_counts(report)]
    if report.keys:
        working = sum(1 for k in report.keys if k.working)
        detail.append(f"{working} of {len(report.keys)} keys working")
    if pending(report.changes):
        detail.append(plan_counts(report.changes))
    line = f"**Status: {status_word(report).upper()}** ({'; '.join(detail)})"
    if report.summary:
        line += f"<br>\n{cell(report.summary)}"
    return f"{head}\n\n{line}"


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _keys(report: Report) -> list[str]:
    if not report.keys:
        return []
    rows = [
        [
            cell(k.key),
            cell(k.provider),
            cell(k.verdict) + _key_notes(k),
            f"`{k.fingerprint}`" if k.fingerprint else "",
        ]
        for k in report.keys
    ]
    table = _table(["key", "provider", "verdict", "fingerprint"], rows)
    return [f"#### Keys\n\n{table}"]


def _stored_keys(report: Report) -> list[str]:
    """The keys a store holds (``data["keys"]`` as ``byok status`` fills it:
    mappings with name, provider, source, fingerprint, verdict)."""
    raw = report.data.get("keys")
    if not isinstance(raw, list) or not raw:
        return []
    rows = [
        [
            cell(k.get("name", "")),
            cell(k.get("provider", "")),
            cell(k.get("source") or "unmanaged"),
            cell(k.get("verdict") or "not checked"),
            f"`{k['fingerprint']}`" if k.get("fingerprint") else "",
        ]
        for k in raw
        if isinstance(k, dict)
    ]
    if not rows:
        return []
    table = _table(["key", "provider", "source", "verdict", "fingerprint"], rows)
    return [f"#### Keys\n\n{table}"]


def _key_notes(key: KeyResult) -> str:
    # Request ids let a reviewer quote the provider's own trace to support.
    notes = [key.detail] if key.detail else []
    if key.request_id:
        notes.append(f"request {key.request_id}")
    notes += key_failures(key)
    return "".join(f"<br>{cell(n)}" for n in notes)


def _features(report: Report) -> list[str]:
    rows = [[cell(f.name), cell(f.key), cell(f.target)] for f in features(report)]
    if not rows:
        return []
    table = _table(["feature", "key", "model / deployment"], rows)
    return [f"#### Features\n\n{table}"]


def _plan(report: Report) -> list[str]:
    changes = pending(report.changes)
    if not changes:
        return []
    rows = [_change_row(c) for c in changes]
    table = _table(["", "action", "kind", "name", "changes"], rows)
    return [f"#### Plan: {plan_counts(changes)}\n\n{table}"]


def _change_row(c: Change) -> list[str]:
    notes = [_field(c.action, f) for f in c.fields]
    if c.secret and c.secret != "unchanged":
        notes.append(f"secret: {c.secret}")
    details = "<br>".join(cell(n) for n in notes)
    return [f"`{ACTION_SIGNS[c.action]}`", c.action, c.kind, cell(c.name), details]


def _field(action: str, f: FieldChange) -> str:
    if action == "create":
        return f"{f.field}: {show_value(f.after)}"
    if action == "delete":
        return f"{f.field}: {show_value(f.before)}"
    return f"{f.field}: {show_value(f.before)} → {show_value(f.after)}"


def _problems(report: Report) -> list[str]:
    if not report.problems:
        return []
    rows = [
        [
            cell(f"{p.file}:{p.line}:{p.col}" if p.line else p.file),
            p.severity,
            cell(p.code),
            cell(p.message + (f" ({p.hint})" if p.hint else "")),
        ]
        for p in report.problems
    ]
    table = _table(["where", "severity", "rule", "message"], rows)
    summary = f"Problems: {problem_counts(report)}"
    return [f"<details>\n<summary>{summary}</summary>\n\n{table}\n\n</details>"]
