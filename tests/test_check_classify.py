"""The decision table: provider answers to verdicts (no network)."""

from __future__ import annotations

import base64
import email.utils
import json
import urllib.parse
from collections.abc import Callable

import pytest

from byok_reconcile.providers.classify import (
    Phase,
    classify_status,
    parse_error_body,
    request_id,
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
from tests.canary import assert_no_leak, make_azure_secret, make_secret


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


# -- echoes of the caller's own key ---------------------------------------


def pct(text: str) -> str:
    """Every character percent-encoded: no 8 characters of ``text`` stay."""
    return "".join(f"%{b:02X}" for b in text.encode())


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def pieces(secret: str) -> set[str]:
    """Runs of 8 of the key and its encodings, to look for in the output."""
    forms = [secret, b64(secret), b64("u:" + secret)[4:-4], secret.encode().hex()]
    return {f[i : i + 8].lower() for f in forms for i in range(len(f) - 7)}


def assert_no_piece(text: str, secret: str) -> None:
    assert_no_leak(text)
    decoded = urllib.parse.unquote(urllib.parse.unquote(text)).lower()
    found = [p for p in pieces(secret) if p in text.lower() or p in decoded]
    assert not found, f"pieces of the key in {text!r}"


ECHOES: list[Callable[[str], str]] = [
    lambda k: f"API key {k[:-4]}**** is not allowed",
    lambda k: f"Rate limit for key {k[:20]}...",
    lambda k: f"key {k[4:16]} unknown",  # 12 characters, no sk- prefix
    lambda k: f"KEY {k.upper()} REFUSED",
    lambda k: f"key={urllib.parse.quote(k, safe='')} refused",
    lambda k: f"key={urllib.parse.quote(k, safe='').lower()} refused",
    lambda k: f"key={pct(k[:16])} refused",
    lambda k: f"key={urllib.parse.quote(pct(k[:16]))} refused",  # twice
    lambda k: f"Basic {b64('user:' + k)} refused",
    lambda k: f"Basic {b64('u:' + k[:18])[4:]} refused",
    lambda k: f"hex {k.encode().hex()[6:30]} refused",
    lambda k: f"key '{k[2:11]}' in \"{k[12:21]}\"",
]


@pytest.mark.parametrize("echo", ECHOES)
@pytest.mark.parametrize(
    "make", [make_secret, make_azure_secret, lambda: make_secret("Zq+/x=Y+")]
)
def test_any_echo_of_the_key_is_scrubbed(
    echo: Callable[[str], str], make: Callable[[], str]
) -> None:
    secret = make()
    out = scrub(echo(secret), secret)
    assert_no_piece(out, secret)
    assert "[redacted]" in out


def test_key_with_plus_and_slash_url_encoded_in_every_shape() -> None:
    secret = make_secret("Ab+Cd/Ef=Gh+")
    for shape in (urllib.parse.quote(secret, safe=""), pct(secret).lower(),
                  urllib.parse.quote_plus(secret).upper()):
        out = classify_status(403, azure("403", f"key {shape} not allowed"), {},
                              "key", secret)
        assert_no_piece(out.detail, secret)


@pytest.mark.parametrize("message", [
    "Rate limit reached for gpt-4o in organization org-abc on tokens per min "
    "(TPM): Limit 30000, Used 29000, Requested 1200.",
    "Invalid URL (POST /openai/deployments/gpt4o-prod/chat/completions)",
    "The model `meta-llama/Llama-3.1-8B-Instruct` does not exist",
    "request 8c3a1b2e-4f5d-4e6a-9b7c-0d1e2f3a4b5c failed",
    "request req_5f1c7a0b9e8d4c3a2b1f0e9d8c7b6a5f failed",
    "Model is enabled only for api versions 2024-12-01-preview and later",
])
def test_ordinary_messages_are_kept(message: str) -> None:
    assert scrub(message, make_secret()) == message


def test_last_four_alone_may_stay() -> None:
    secret = make_secret()
    message = f"Incorrect API key provided: ****{secret[-4:]}."
    assert scrub(message, secret) == message


def test_other_key_shaped_tokens_are_scrubbed() -> None:
    other = "q8Zr+T2mVn/Lp0Xw7Ys9Kd3Jf6Hb1Gc4=="
    assert scrub(f"forwarded {other} upstream") == "forwarded [redacted] upstream"
    assert "[redacted]" in scrub("key sk-abc+def/ghij refused")


# -- request ids ----------------------------------------------------------


@pytest.mark.parametrize("rid", [
    "req_5f1c7a0b9e8d4c3a2b1f0e9d8c7b6a5f",
    "8c3a1b2e-4f5d-4e6a-9b7c-0d1e2f3a4b5c",
    "r1",
])
def test_request_ids_that_look_like_ids_are_kept(rid: str) -> None:
    assert request_id({"x-request-id": rid}, make_secret()) == rid


@pytest.mark.parametrize("bad", [
    lambda k: k,
    lambda k: k[:20],
    lambda k: f"req_{k[3:15]}",
    lambda k: urllib.parse.quote(k, safe="").lower(),
    lambda k: "x" * 129,
    lambda k: "two words",
    lambda k: "tab\there",
    lambda k: "caf\u00e9",
    lambda k: "bell\x07",
])
def test_request_ids_holding_the_key_or_junk_are_dropped(
    bad: Callable[[str], str]
) -> None:
    secret = make_secret()
    headers = {"x-request-id": bad(secret)}
    assert request_id(headers, secret) is None
    out = classify_status(401, body("invalid_api_key"), headers, "key", secret)
    assert out.request_id is None
    # A clean id in the other header is still used.
    headers["apim-request-id"] = "a1"
    assert request_id(headers, secret) == "a1"


def test_huge_message_is_capped_before_scrubbing() -> None:
    secret = make_secret()
    out = scrub(f"key {secret[:30]} " + "x%2B " * 200_000, secret)
    assert out.startswith("key [redacted] x%2B") and len(out) <= 160
