"""The JSON reporter: stable, sorted keys, shaped by schemas/report.schema.json.

``schemaVersion`` changes only when a field changes meaning or goes away;
new optional fields keep the version.
"""

from __future__ import annotations

import json

from byok_reconcile.errors import ByokError
from byok_reconcile.output.common import Options, status_word
from byok_reconcile.results import Change, KeyResult, Problem, Report

API_VERSION = "byok/v1"
KIND = "Report"
SCHEMA_VERSION = 1


def render(report: Report, opts: Options) -> str:
    """The report as one JSON document (``opts`` is ignored: JSON is complete)."""
    return dumps(document(report))


def render_error(exc: ByokError, command: str) -> str:
    """A report document for a command that stopped on ``exc``."""
    body = document(Report(command=command, exit_code=exc.exit_code))
    body["status"] = "failed" if exc.exit_code != 3 else "unavailable"
    body["summary"] = str(exc)
    body["error"] = {
        "type": type(exc).__name__,
        "message": exc.message,
        "hint": exc.hint,
        "file": exc.file,
    }
    return dumps(body)


def dumps(body: object) -> str:
    return json.dumps(body, indent=2, sort_keys=True, default=str, ensure_ascii=False)


def document(report: Report) -> dict[str, object]:
    errors = len(report.errors)
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "schemaVersion": SCHEMA_VERSION,
        "command": report.command,
        "exitCode": report.exit_code,
        "status": status_word(report),
        "summary": report.summary,
        "counts": {
            "errors": errors,
            "warnings": len(report.problems) - errors,
            "keys": len(report.keys),
            "keysWorking": sum(1 for k in report.keys if k.working),
            "changes": sum(1 for c in report.changes if c.action != "noop"),
        },
        "problems": [_problem(p) for p in report.problems],
        "keys": [_key(k) for k in report.keys],
        "changes": [_change(c) for c in report.changes],
        "data": report.data,
    }


def _problem(p: Problem) -> dict[str, object]:
    return {
        "file": p.file,
        "line": p.line,
        "col": p.col,
        "severity": p.severity,
        "code": p.code,
        "message": p.message,
        "path": p.path,
        "hint": p.hint,
    }


def _key(k: KeyResult) -> dict[str, object]:
    return {
        "key": k.key,
        "provider": k.provider,
        "verdict": k.verdict,
        "working": k.working,
        "fingerprint": k.fingerprint,
        "detail": k.detail,
        "hint": k.hint,
        "requestId": k.request_id,
        "host": k.host,
        "file": k.file,
        "line": k.line,
        "col": k.col,
        "targets": [
            {
                "target": t.target,
                "verdict": t.verdict,
                "detail": t.detail,
                "proven": t.proven,
                "requestId": t.request_id,
            }
            for t in k.targets
        ],
    }


def _change(c: Change) -> dict[str, object]:
    return {
        "kind": c.kind,
        "name": c.name,
        "action": c.action,
        "secret": c.secret,
        "fields": [
            {"field": f.field, "before": f.before, "after": f.after} for f in c.fields
        ],
    }
