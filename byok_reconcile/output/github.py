"""The github reporter: GitHub Actions workflow commands.

One ``::error``/``::warning`` per problem and per failing key, placed at the
file and line, then a ``::notice`` summary. Everything that came from the
configuration is escaped the way the runner unescapes it, so a crafted value
cannot end an annotation early or start a workflow command of its own.
"""

from __future__ import annotations

import hashlib

from byok_reconcile.output import text
from byok_reconcile.output.common import Options, key_failures, pending
from byok_reconcile.results import KeyResult, Problem, Report


def escape_data(value: str) -> str:
    """Escape a workflow command's message: ``%``, CR and LF."""
    return value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(value: str) -> str:
    """Escape a property value: as data, plus ``:`` and ``,``."""
    return escape_data(value).replace(":", "%3A").replace(",", "%2C")


def command(name: str, message: str, **props: object) -> str:
    """``::name k=v,...::message`` with every part escaped; empty props dropped."""
    kept = {k: v for k, v in props.items() if v not in ("", 0, None)}
    pairs = [f"{k}={escape_property(str(v))}" for k, v in kept.items()]
    head = f"::{name} {','.join(pairs)}" if pairs else f"::{name}"
    return f"{head}::{escape_data(message)}"


def render(report: Report, opts: Options) -> str:
    """Annotations, the plan as a log group, and a closing notice."""
    lines = [_problem(p, report.command) for p in report.problems if _shown(p, opts)]
    lines += [_key(k, report.command) for k in report.keys if not k.working]
    lines += [_key(k, report.command) for k in report.keys if _degraded(k)]
    if pending(report.changes) and not opts.quiet:
        lines += _plan_group(report)
    if report.summary and not opts.quiet:
        lines.append(command("notice", report.summary, title=f"byok {report.command}"))
    return "\n".join(lines)


def _shown(problem: Problem, opts: Options) -> bool:
    return not opts.quiet or problem.severity == "error"


def _problem(p: Problem, cmd: str) -> str:
    message = p.message + (f" ({p.hint})" if p.hint else "")
    title = f"byok {cmd}: {p.code}" if p.code else f"byok {cmd}"
    where = {"file": p.file, "line": p.line, "col": p.col}
    return command(p.severity, message, **where, title=title)


def _degraded(key: KeyResult) -> bool:
    # rate_limited still counts as working, but a reviewer should see it.
    return key.working and key.verdict != "valid"


def _key(k: KeyResult, cmd: str) -> str:
    parts = [f"key {k.key} ({k.provider}): {k.verdict}"]
    if k.detail:
        parts.append(k.detail)
    if k.request_id:
        parts.append(f"request {k.request_id}")
    parts += key_failures(k)
    if k.hint:
        parts.append(f"hint: {k.hint}")
    level = "warning" if k.working else "error"
    title = f"byok {cmd}: {k.key} {k.verdict}"
    return command(
        level, "\n".join(parts), file=k.file, line=k.line, col=k.col, title=title
    )


def _plan_group(report: Report) -> list[str]:
    # Plan lines carry config values; stop-commands keeps the runner from
    # reading any of them as a workflow command. The token is derived from
    # the body so output stays reproducible, yet a value cannot contain it.
    body = text.render(
        Report(command=report.command, changes=report.changes), Options()
    )
    token = "byok-" + hashlib.sha256(body.encode()).hexdigest()[:16]
    return [
        "::group::byok plan",
        f"::stop-commands::{token}",
        body,
        f"::{token}::",
        "::endgroup::",
    ]
