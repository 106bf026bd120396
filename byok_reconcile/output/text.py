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
    request_note,
    show_value,
    target_line,
)
from byok_reconcile.results import Change, FieldChange, KeyResult, Problem, Report

_SEVERITY_COLOUR = {"error": "red", "warning": "yellow"}
_ACTION_COLOUR = {"create": "green", "update": "yellow", "delete": "red"}


def render(report: Report, opts: Options) -> str:
    """The whole report as text lines; quiet keeps only the errors."""
    lines = [_problem(p, opts) for p in report.problems if _shown(p, opts)]
    if not opts.keys_streamed:
        for key in report.keys:
            lines.extend(key_lines(key, opts))
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


def key_lines(key: KeyResult, opts: Options) -> list[str]:
    """A key's verdict line and its targets' lines; none for a working key
    when quiet. The provider's request id shows on failures, and at -v."""
    if opts.quiet and key.working:
        return []
    colour = "green" if key.working else "red"
    verdict = paint(key.verdict, colour, opts.colour)
    head = f"key {printable(key.key)} ({key.provider}): {verdict}"
    if key.fingerprint:
        head += f"  {key.fingerprint}"
    if key.detail:
        head += f"  {printable(key.detail)}"
    if key.hint:
        head += f" ({printable(key.hint)})"
    if key.request_id and (opts.verbose or not key.working):
        head += f" {request_note(printable(key.request_id))}"
    if opts.verbose:
        failing = [target_line(key, t) for t in key.targets]
    else:
        failing = key_failures(key)
    return [head] + [f"  {printable(line)}" for line in failing]


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
