"""The text reporter: for people at a terminal.

Problems read ``file:line:col: error: message (hint)``, key verdicts one line
each, and plan changes like terraform (``+ create``, ``~ update``, ``- delete``).
"""

from __future__ import annotations

from byok_reconcile.output.colour import paint
from byok_reconcile.output.common import (
    ACTION_SIGNS,
    Options,
    key_failures,
    pending,
    plan_counts,
    printable,
    show_value,
)
from byok_reconcile.results import Change, FieldChange, KeyResult, Problem, Report

_SEVERITY_COLOUR = {"error": "red", "warning": "yellow"}
_ACTION_COLOUR = {"create": "green", "update": "yellow", "delete": "red"}


def render(report: Report, opts: Options) -> str:
    """The whole report as text lines; quiet keeps only the errors."""
    lines = [_problem(p, opts) for p in report.problems if _shown(p, opts)]
    for key in report.keys:
        if not opts.quiet or not key.working:
            lines.extend(_key(key, opts))
    if not opts.quiet:
        lines.extend(_changes(report, opts))
        if report.summary:
            lines.append(printable(report.summary))
    return "\n".join(lines)


def _shown(problem: Problem, opts: Options) -> bool:
    return not opts.quiet or problem.severity == "error"


def _problem(p: Problem, opts: Options) -> str:
    where = printable(f"{p.file}:{p.line}:{p.col}" if p.line else p.file)
    severity = paint(p.severity, _SEVERITY_COLOUR[p.severity], opts.colour)
    text = f"{paint(where, 'bold', opts.colour)}: {severity}: {printable(p.message)}"
    if p.hint:
        text += f" ({printable(p.hint)})"
    if opts.verbose and p.code:
        text += f" [{p.code}{' at ' + p.path if p.path else ''}]"
    return text


def _key(key: KeyResult, opts: Options) -> list[str]:
    colour = "green" if key.working else "red"
    verdict = paint(key.verdict, colour, opts.colour)
    head = f"key {key.key} ({key.provider}): {verdict}"
    if key.fingerprint:
        head += f"  {key.fingerprint}"
    if key.detail:
        head += f"  {printable(key.detail)}"
    if key.hint:
        head += f" ({printable(key.hint)})"
    lines = [head]
    if opts.verbose:
        lines += [f"  {t.target}: {t.verdict}" for t in key.targets]
    else:
        lines += [f"  {printable(line)}" for line in key_failures(key)]
    return lines


def _changes(report: Report, opts: Options) -> list[str]:
    changes = report.changes if opts.verbose else pending(report.changes)
    if not changes:
        if report.command == "plan":
            return ["No changes. The store matches the configuration."]
        return []
    lines = []
    for change in changes:
        lines.extend(_change(change, opts))
    lines.append(f"Plan: {plan_counts(report.changes)}.")
    return lines


def _change(change: Change, opts: Options) -> list[str]:
    sign = ACTION_SIGNS[change.action]
    head = f"{sign} {change.action} {change.kind} {printable(change.name)}"
    lines = [paint(head, _ACTION_COLOUR.get(change.action, ""), opts.colour)]
    lines += [f"    {_field(change.action, f)}" for f in change.fields]
    if change.secret and (change.secret != "unchanged" or opts.verbose):
        lines.append(f"    secret: {change.secret}")
    return lines


def _field(action: str, f: FieldChange) -> str:
    if action == "create":
        return f"+ {f.field}: {show_value(f.after)}"
    if action == "delete":
        return f"- {f.field}: {show_value(f.before)}"
    return f"~ {f.field}: {show_value(f.before)} -> {show_value(f.after)}"
