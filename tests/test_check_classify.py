"""The decision table: provider answers to verdicts (no network)."""

from __future__ import annotations

import email.utils
import json

import pytest

from byok_reconcile.providers.classify import (
    Phase,
    classify_status,
    parse_error_body,
    retry_after,
    scrub,
)
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
from tests.canary import assert_no_leak, make_secret


def body(code: object = None, message: str = "", type_: str | None = None) -> str:
    return json.dumps({"error": {"code": code, "message": message,
                                 "type": type_, "param": None}})


def azure(code: str, message: str) -> str:
    return json.dumps({"error": {"code": code, "message": message}})


CASES: list[tuple[int, str, Phase, str]] = [
    (401, body("invalid_api_key", "Incorrect API key"), "key", INVALID_KEY),
    (401, body("account_deactivated", "deactivated"), "key", INVALID_KEY),
    (401, body("no_organization", "member"), "key", INVALID_KEY),
    (401, body("mismatched_organization", "x"), "key", MISCONFIGURED),
    (401, body("mismatched_project", "x"), "key", MISCONFIGURED),
    (401, body("invalid_organization", ""), "key", MISCONFIGURED),
    (401, body(None, "insufficient permissions. Missing scopes: api.model.read"),
     "model", FORBIDDEN),
    (401, json.dumps({"error": "Unauthorized"}), "key", INVALID_KEY),  # vLLM
    (401, azure("401", "Access denied due to invalid subscription key"), "key",
     INVALID_KEY),
    (401, azure("PermissionDenied", "Principal does not have access"), "key",
     FORBIDDEN),
    (403, body("unsupported_country_region_territory", "Country"), "key",
     FORBIDDEN),
    (403, body("model_not_found", "Project does not have access"), "deep",
     MODEL_UNAVAILABLE),
    (403, azure("AuthenticationTypeDisabled", "Key based auth disabled"), "key",
     FORBIDDEN),
    (404, azure("DeploymentNotFound", "does not exist"), "deployment",
     MODEL_UNAVAILABLE),
    (404, azure("404", "Resource not found"), "deployment", MISCONFIGURED),
    (404, body("model_not_found", "does not exist"), "model", MODEL_UNAVAILABLE),
    (404, body(None, "Invalid URL (GET /v2/models)"), "key", MISCONFIGURED),
    (404, json.dumps({"error": {"message": "no", "code": 404}}), "model",
     MODEL_UNAVAILABLE),  # vLLM integer code
    (400, azure("BadRequest", "API version not supported"), "key", MISCONFIGURED),
    (400, azure("BadRequest", "Model {modelName} is enabled only for api "
                "versions 2024-12-01-preview and later"), "deployment",
     MISCONFIGURED),
    (400, body("model_not_found", "does not exist"), "deep", MODEL_UNAVAILABLE),
    (400, body(None, "'$.messages' is too short"), "deployment", VALID),
    (429, body("insufficient_quota", "quota", "insufficient_quota"), "deep",
     QUOTA_EXHAUSTED),
    (429, body("rate_limit_exceeded", "Rate limit reached", "tokens"), "deep",
     RATE_LIMITED),
    (429, azure("429", "Requests ... exceeded token rate limit"), "deep",
     RATE_LIMITED),
    (402, body(None, "Insufficient credits"), "deep", QUOTA_EXHAUSTED),
    (500, body(None, "The server had an error"), "key", UNREACHABLE),
    (503, "", "key", UNREACHABLE),
    (502, "<html><body>Bad gateway</body></html>", "key", UNREACHABLE),
    (401, "<html>login</html>", "key", UNREACHABLE),
]


@pytest.mark.parametrize(("status", "text", "phase", "verdict"), CASES)
def test_decision_table(status: int, text: str, phase: Phase, verdict: str) -> None:
    assert classify_status(status, text, {}, phase).verdict == verdict


def test_only_transient_answers_are_retried() -> None:
    retried = {(s, t) for s, t, p, _ in CASES
               if classify_status(s, t, {}, p).retry}
    assert all(s >= 500 or (s == 429 and "rate" in t.lower()) for s, t in retried)
    quota = body("insufficient_quota", "quota", "insufficient_quota")
    assert not classify_status(429, quota, {}, "deep").retry


def test_request_id_from_either_header() -> None:
    out = classify_status(401, body("invalid_api_key"), {"x-request-id": "r1"}, "key")
    assert out.request_id == "r1"
    out = classify_status(401, azure("401", "x"), {"apim-request-id": "a1"}, "key")
    assert out.request_id == "a1"


def test_retry_after_order_and_forms() -> None:
    assert retry_after({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert retry_after({"retry-after": "1.5"}) == 1.5
    date = email.utils.formatdate(1_000_030, usegmt=True)
    assert retry_after({"retry-after": date}, now=1_000_000) == pytest.approx(30)
    assert retry_after({"retry-after": "soon"}) is None
    assert retry_after({}) is None
    out = classify_status(429, body("rate_limit_exceeded"), {"retry-after": "2"},
                          "key")
    assert out.retry and out.retry_after == 2


def test_parse_error_body_shapes() -> None:
    assert parse_error_body('{"error": "Unauthorized"}').message == "Unauthorized"
    assert parse_error_body('{"error": {"code": 401}}').code == "401"
    assert not parse_error_body("<html/>").json
    assert not parse_error_body("[1, 2]").json


def test_provider_messages_are_scrubbed() -> None:
    secret = make_secret()
    echoed = f"Incorrect API key provided: {secret}. Also sk-proj-abc***wxyz."
    assert_no_leak(scrub(echoed, secret))
    assert "sk-proj-abc" not in scrub(echoed)
    out = classify_status(400, body(None, f"bad {secret}"), {}, "key", secret)
    assert_no_leak(out.detail)
    out = classify_status(429, body("rate_limit_exceeded", f"limit {secret}"), {},
                          "key")
    assert_no_leak(out.detail)
    assert len(scrub("x " * 500)) <= 160
