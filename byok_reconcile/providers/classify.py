"""Turn a provider's answer into a verdict (providers.md, section 7).

The error ``code`` is the discriminator, not ``type``: OpenAI sends string
codes in an object, Azure sends the status as a string (``"401"``) or a name
(``DeploymentNotFound``), vLLM sends a bare string ``error``. Anything that is
not a clear answer from the provider (5xx, timeouts, resets, non-JSON bodies)
is ``unreachable``, never ``invalid_key``.

Provider messages may echo part of a key, so they are scrubbed before they
reach a detail, and the key-related ones are replaced by our own words.
"""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from byok_reconcile.providers.redact import scrub_text
from byok_reconcile.results import (
    FORBIDDEN,
    INVALID_KEY,
    MISCONFIGURED,
    MODEL_UNAVAILABLE,
    QUOTA_EXHAUSTED,
    RATE_LIMITED,
    UNREACHABLE,
    VALID,
)

# What a request was meant to prove; the same status means different things.
Phase = Literal["key", "model", "deployment", "deep"]

_ORG_CODES = frozenset(
    {"mismatched_organization", "mismatched_project", "invalid_organization"}
)
_MAX_MESSAGE = 160
_MAX_SCRUBBED = 4096
_MAX_REQUEST_ID = 128


@dataclass(frozen=True)
class Outcome:
    """One request's verdict. ``retry`` marks a transient failure."""

    verdict: str
    detail: str = ""
    hint: str = ""
    request_id: str | None = None
    retry: bool = False
    retry_after: float | None = None
    restricted: bool = False


@dataclass(frozen=True)
class ErrorBody:
    """The parts of an error body we read; ``json`` is False if unparsable."""

    code: str = ""
    type: str = ""
    message: str = ""
    json: bool = True


def parse_error_body(text: str) -> ErrorBody:
    """Read ``{"error": {...}}``, ``{"error": "..."}`` or anything else."""
    try:
        data = json.loads(text) if text.strip() else {}
    except ValueError:
        return ErrorBody(json=False)
    if not isinstance(data, dict):
        return ErrorBody(json=False)
    inner = data.get("error", data)
    if isinstance(inner, str):
        return ErrorBody(message=inner)
    if not isinstance(inner, dict):
        return ErrorBody()
    return ErrorBody(
        code=_text(inner.get("code")),
        type=_text(inner.get("type")),
        message=_text(inner.get("message")),
    )


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def scrub(message: str, secret: str = "") -> str:
    """A provider message, shortened, with anything key-like removed.

    Any piece of ``secret`` goes, however the provider spelled it (see
    :mod:`byok_reconcile.providers.redact`); so do other key-shaped tokens.
    """
    # Only the head is ever shown; capping first bounds the work for a
    # megabyte of message. The cut is far past what survives the shortening.
    message = " ".join(scrub_text(message[:_MAX_SCRUBBED], secret).split())
    if len(message) > _MAX_MESSAGE:
        message = message[: _MAX_MESSAGE - 3] + "..."
    return message


def request_id(headers: Mapping[str, str], secret: str = "") -> str | None:
    """The provider's request id, if one looks like an id and holds no key.

    A gateway may put anything in these headers, the key included, and the
    id is shown as is: one that is not short printable text, or that the
    scrub would change, is dropped rather than shortened.
    """
    for name in ("x-request-id", "apim-request-id"):
        value = headers.get(name)
        if value and _is_request_id(value, secret):
            return value
    return None


def _is_request_id(value: str, secret: str) -> bool:
    if len(value) > _MAX_REQUEST_ID or not value.isascii():
        return False
    if not value.isprintable() or any(ch.isspace() for ch in value):
        return False
    return scrub_text(value, secret) == value


def retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds to wait: ``retry-after-ms``, then ``retry-after`` (s or date)."""
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return max(float(millis) / 1000, 0.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError):
        return None
    return max(when - (time.time() if now is None else now), 0.0)


def classify_status(
    status: int,
    body_text: str,
    headers: Mapping[str, str],
    phase: Phase,
    secret: str = "",
    host: str = "",
) -> Outcome:
    """The verdict for an HTTP error answer to a request of ``phase``.

    ``host`` (the configured host, never a secret) names who answered.
    """
    body = parse_error_body(body_text)
    rid = request_id(headers, secret)
    who = host or "the provider"
    if status >= 500 or status == 408:
        msg = f"{who} answered {status}; try again later"
        return Outcome(UNREACHABLE, msg, request_id=rid, retry=True,
                       retry_after=retry_after(headers))
    if not body.json:
        return Outcome(
            UNREACHABLE,
            f"{who} answered {status} with a body that is not JSON",
            hint="a proxy or gateway may stand in front of the provider",
            request_id=rid,
        )
    outcome = _classify_4xx(status, body, phase, scrub(body.message, secret))
    extra = retry_after(headers) if outcome.retry else None
    return Outcome(
        outcome.verdict, outcome.detail, outcome.hint, rid,
        outcome.retry, extra, outcome.restricted,
    )


def _classify_4xx(status: int, body: ErrorBody, phase: Phase, msg: str) -> Outcome:
    if status == 401:
        return _classify_401(body, msg)
    if status == 403:
        return _classify_403(body, msg)
    if status == 404:
        return _classify_404(body, phase, msg)
    if status == 429:
        return _classify_429(body, msg)
    if status in (400, 422):
        return _classify_400(body, phase, msg)
    if status == 402:
        return Outcome(QUOTA_EXHAUSTED, f"402 payment required: {msg}",
                       "add credit to the account")
    return Outcome(MISCONFIGURED, f"unexpected answer {status}: {msg}",
                   "check the base URL or endpoint")


def _missing_scopes(msg: str) -> bool:
    return "missing scopes" in msg.lower()


def _classify_401(body: ErrorBody, msg: str) -> Outcome:
    if body.code in _ORG_CODES:
        return Outcome(
            MISCONFIGURED,
            f"the organization or project does not match the key ({body.code})",
            "fix organization/project in the Key document, or remove them",
        )
    if body.code == "account_deactivated":
        return Outcome(INVALID_KEY, "the account of this key is deactivated",
                       "contact the provider or use a key of an active account")
    if body.code == "no_organization":
        return Outcome(INVALID_KEY, "the key's user belongs to no organization",
                       "add the user to an organization or use another key")
    if _missing_scopes(msg) or body.code == "PermissionDenied":
        return Outcome(FORBIDDEN, f"the key lacks a permission: {msg}",
                       "grant the key the scope or role it needs")
    return Outcome(
        INVALID_KEY,
        "the provider rejected the key (401)",
        "rotate the key, or check that it belongs to this endpoint",
    )


def _classify_403(body: ErrorBody, msg: str) -> Outcome:
    if _missing_scopes(msg):
        return Outcome(FORBIDDEN, f"restricted key: {msg}",
                       "grant the missing scope", restricted=True)
    if body.code == "model_not_found":
        return Outcome(MODEL_UNAVAILABLE, f"no access to the model: {msg}",
                       "allow the model for the key's project")
    if body.code == "unsupported_country_region_territory":
        return Outcome(FORBIDDEN, "the provider refuses this country or region",
                       "run the check from a supported region")
    return Outcome(FORBIDDEN, f"the provider refused the request (403): {msg}",
                   "check key permissions, network rules or key-based auth")


def _classify_404(body: ErrorBody, phase: Phase, msg: str) -> Outcome:
    if body.code == "DeploymentNotFound":
        return Outcome(MODEL_UNAVAILABLE, "the deployment does not exist",
                       "create the deployment or fix its name")
    if body.code == "model_not_found":
        return Outcome(MODEL_UNAVAILABLE, f"the model is not available: {msg}",
                       "fix the model name or enable it for this key")
    # Azure's gateway says "Resource not found" for a wrong path or version;
    # vLLM's integer 404 code says nothing, so the message decides.
    if "resource not found" in msg.lower() or phase == "key":
        return Outcome(MISCONFIGURED, f"not found (404): {msg or 'no such path'}",
                       "check the endpoint, base URL and API version")
    return Outcome(MODEL_UNAVAILABLE, f"not found (404): {msg}",
                   "fix the model name or enable it for this key")


def _classify_429(body: ErrorBody, msg: str) -> Outcome:
    if "insufficient_quota" in (body.code, body.type):
        return Outcome(QUOTA_EXHAUSTED, "the key works but has no quota left",
                       "check the plan and billing details")
    return Outcome(RATE_LIMITED, f"rate limited: {msg}", retry=True)


def _classify_400(body: ErrorBody, phase: Phase, msg: str) -> Outcome:
    lowered = msg.lower()
    if "api version" in lowered or "api-version" in lowered:
        return Outcome(MISCONFIGURED, f"API version refused: {msg}",
                       "use an apiVersion this resource supports")
    if body.code == "model_not_found":
        return Outcome(MODEL_UNAVAILABLE, f"the model is not available: {msg}",
                       "fix the model name or enable it for this key")
    if phase in ("deployment", "deep"):
        # A refused body still means the key and the deployment were
        # accepted: the request got past authentication and routing.
        return Outcome(VALID, "key and deployment accepted (request refused)")
    return Outcome(MISCONFIGURED, f"bad request (400): {msg}",
                   "check the endpoint, base URL and API version")


def classify_transport(kind: Literal["timeout", "connect", "refused"],
                       detail: str) -> Outcome:
    """The verdict when no HTTP answer came back."""
    if kind == "refused":
        return Outcome(MISCONFIGURED, detail, "or fix the URL if the host is wrong")
    return Outcome(UNREACHABLE, detail, "check the network and the URL",
                   retry=True)
