"""Wire bodies: error envelopes of each dialect and minimal success objects.

Texts and shapes follow the providers' documented and captured answers.
Where a body was never captured, the text here is plausible and marked so.
"""

from __future__ import annotations

import base64
import secrets
import struct
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from byok_reconcile.testing.config import EmulatedKey, EmulatedModel


@dataclass(frozen=True)
class Reply:
    """A response to send: status, JSON-able body (or raw text), headers."""

    status: int
    body: Any
    headers: Mapping[str, str] = field(default_factory=dict)
    content_type: str = "application/json"


class ApiError(Exception):
    """An error answer, rendered later in the dialect of the path."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str | None = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.code = code
        self.param = param
        self.headers = dict(headers or {})


def check_shape(operation: str, body: Mapping[str, Any]) -> None:
    """Refuse an empty ``messages`` or ``input`` with 400, as the providers do.

    Real servers validate the request body after authentication and routing,
    which is what a free deployment probe relies on. The OpenAI texts are from
    public captures; Azure passes the same OpenAI-shaped body through
    (unconfirmed: keep it configurable through the body only).
    """
    if operation in ("chat", "chat/completions") and body.get("messages") == []:
        raise ApiError(400, (
            "Invalid 'messages': empty array. Expected an array with minimum "
            "length 1, but got an empty array instead."
        ), param="messages", code="empty_array")
    if operation == "embeddings" and body.get("input") in ([], ""):
        raise ApiError(400, (
            "'$.input' is invalid. Please check the API reference: "
            "https://platform.openai.com/docs/api-reference."
        ))


def render_error(error: ApiError, flavour: str) -> Reply:
    """The error body as ``flavour`` (openai, azure, vllm, ollama) sends it."""
    if flavour == "ollama":
        body: Any = {"error": error.message}
    elif flavour == "vllm":
        body = {"error": {
            "message": error.message, "type": HTTPStatus(error.status).phrase,
            "param": error.param, "code": error.status,
        }}
    elif flavour == "azure" and error.type is None:
        body = {"error": {"code": error.code or str(error.status),
                          "message": error.message}}
    else:
        # Azure passes model-level errors through in the OpenAI shape.
        body = {"error": {"message": error.message, "type": error.type,
                          "param": error.param, "code": error.code}}
    return Reply(error.status, body, error.headers)


def request_id() -> str:
    return "req_" + secrets.token_hex(16)


def redact(value: str) -> str:
    """A key as OpenAI echoes it: first chars, stars, last four."""
    if len(value) < 12:
        return "*" * len(value)
    head = value[: min(8, len(value) // 4)]
    return head + "*" * (len(value) - len(head) - 4) + value[-4:]


def go_duration(seconds: float) -> str:
    """``x-ratelimit-reset-*`` format: ``644ms``, ``1s``, ``6m0s``."""
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    minutes, rest = divmod(seconds, 60)
    text = f"{rest:g}s"
    return f"{int(minutes)}m{text}" if minutes else text


# --- OpenAI error texts -----------------------------------------------------

_HELP = "contact us through our help center at help.openai.com"
MISSING_KEY = (
    "You didn't provide an API key. You need to provide your API key in an "
    "Authorization header using Bearer auth (i.e. Authorization: Bearer "
    "YOUR_KEY), or as the password field (with blank username) if you're "
    "accessing the API from your browser and are prompted for a username and "
    "password. You can obtain an API key from "
    "https://platform.openai.com/account/api-keys."
)
SERVER_ERROR = (
    "The server had an error processing your request. Sorry about that! You "
    f"can retry your request, or {_HELP} if you keep seeing this error. "
    "(Please include the request ID {rid} in your email.)"
)
OVERLOADED = (
    "That model is currently overloaded with other requests. You can retry "
    f"your request, or {_HELP} if the error persists. (Please include the "
    "request ID {rid} in your message.)"
)


def invalid_key(value: str) -> ApiError:
    return ApiError(401, (
        f"Incorrect API key provided: {redact(value)}. You can find your API "
        "key at https://platform.openai.com/account/api-keys."
    ), code="invalid_api_key")


def account_problem(key: EmulatedKey) -> ApiError | None:
    """401/403 that the account itself causes, before any routing."""
    if key.deactivated:
        return ApiError(401, (
            "The OpenAI account associated with this API key has been "
            "deactivated. If you are the developer for this OpenAI app, please "
            "check your email for more information."
        ), code="account_deactivated")
    if key.no_organization:
        return ApiError(401, (
            "You must be a member of an organization to use the API. Please "
            f"{_HELP}."
        ), code="no_organization")
    if key.country_blocked:
        return ApiError(403, "Country, region, or territory not supported",
                        type="request_forbidden",
                        code="unsupported_country_region_territory")
    return None


def missing_scope(scope: str, status: int) -> ApiError:
    return ApiError(status, (
        "You have insufficient permissions for this operation. Missing scopes: "
        f"{scope}. Check that you have the correct role in your organization "
        "(Reader, Writer, Owner) and project (Member, Owner), and if you're "
        "using a restricted API key, that it has the necessary scopes."
    ))


def insufficient_quota() -> ApiError:
    return ApiError(429, (
        "You exceeded your current quota, please check your plan and billing "
        "details. For more information on this error, read the docs: "
        "https://platform.openai.com/docs/guides/error-codes/api-errors."
    ), type="insufficient_quota", code="insufficient_quota")


def rate_limited(model: str, org: str, retry_after: float,
                 headers: Mapping[str, str]) -> ApiError:
    ms = round(retry_after * 1000)
    return ApiError(429, (
        f"Rate limit reached for {model} in organization {org} on requests per "
        f"min (RPM): Limit 3, Used 3, Requested 1. Please try again in {ms}ms. "
        "Visit https://platform.openai.com/account/rate-limits to learn more."
    ), type="requests", code="rate_limit_exceeded", headers=headers)


def server_error(status: int, rid: str) -> ApiError:
    text = OVERLOADED if status == 503 else SERVER_ERROR
    return ApiError(status, text.format(rid=rid), type="server_error")


# --- Azure error texts ------------------------------------------------------


def azure_error(status: int, message: str, code: str | None = None,
                headers: Mapping[str, str] | None = None) -> ApiError:
    """An Azure-envelope error: string ``code``, no ``type``/``param``."""
    return ApiError(status, message, type=None, code=code or str(status),
                    headers=headers)


AZURE_NOT_FOUND = "Resource not found"
AZURE_BAD_KEY = (
    "Access denied due to invalid subscription key or wrong API endpoint. Make "
    "sure to provide a valid key for an active subscription and use a correct "
    "regional API endpoint for your resource."
)
AZURE_NO_KEY = (
    "Access denied due to missing subscription key. Make sure to include "
    "subscription key when making requests to an API."
)
AZURE_BAD_TOKEN = (
    "Unauthorized. Access token is missing, invalid, audience is incorrect "
    "(https://cognitiveservices.azure.com), or have expired."
)
AZURE_NO_DEPLOYMENT = (
    "The API deployment for this resource does not exist. If you created the "
    "deployment within the last 5 minutes, please wait a moment and try again."
)


def azure_rate_limited(operation: str, version: str, retry_after: float,
                       headers: Mapping[str, str]) -> ApiError:
    seconds = max(1, round(retry_after))
    return azure_error(429, (
        f"Requests to the {operation} Operation under Azure OpenAI API version "
        f"{version} have exceeded token rate limit of your current OpenAI S0 "
        f"pricing tier. Please retry after {seconds} seconds. Please go here: "
        "https://aka.ms/oai/quotaincrease if you would like to further "
        "increase the default rate limit."
    ), headers=headers)


def azure_server_error(status: int) -> ApiError:
    if status == 503:
        return azure_error(503, "The service is temporarily unable to process "
                           "your request. Please try again later.",
                           "ServiceUnavailable")
    return azure_error(status, "The server had an error while processing your "
                       "request. Sorry about that!", "InternalServerError")


def html_page(status: int) -> str:
    phrase = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ \
        else "Error"
    return (
        f"<html>\r\n<head><title>{status} {phrase}</title></head>\r\n<body>\r\n"
        f"<center><h1>{status} {phrase}</h1></center>\r\n<hr><center>"
        "cloudflare</center>\r\n</body>\r\n</html>\r\n"
    )


# --- Success bodies ---------------------------------------------------------

ANSWER = "Hello from the byok emulator."


def model_object(model: EmulatedModel) -> dict[str, Any]:
    return {"id": model.id, "object": "model", "created": model.created,
            "owned_by": model.owned_by}


def model_list(models: list[EmulatedModel]) -> dict[str, Any]:
    return {"object": "list", "data": [model_object(m) for m in models]}


def azure_model_list(models: list[EmulatedModel]) -> dict[str, Any]:
    def one(m: EmulatedModel) -> dict[str, Any]:
        chat = m.kind != "embedding"
        return {
            "status": "succeeded",
            "capabilities": {"fine_tune": False, "inference": True,
                             "completion": False, "chat_completion": chat,
                             "embeddings": not chat},
            "lifecycle_status": "generally-available",
            "deprecation": {"inference": 1830297600},
            "id": m.id, "created_at": m.created, "object": "model",
        }

    return {"data": [one(m) for m in models], "object": "list"}


def azure_deployment_list(deployments: Mapping[str, str]) -> dict[str, Any]:
    data = [
        {"scale_settings": {"scale_type": "standard"}, "model": model,
         "owner": "organization-owner", "id": name, "status": "succeeded",
         "created_at": 1646126127, "updated_at": 1646127311,
         "object": "deployment"}
        for name, model in deployments.items()
    ]
    return {"data": data, "object": "list"}


def _words(limit: Any) -> tuple[str, str, int]:
    """The answer cut to ``limit`` tokens (one word a token)."""
    words = ANSWER.split()
    if isinstance(limit, int) and 0 < limit < len(words):
        return " ".join(words[:limit]), "length", limit
    return ANSWER, "stop", len(words)


def _prompt_tokens(payload: Any) -> int:
    return max(1, len(str(payload)) // 4)


def chat_completion(model: str, body: Mapping[str, Any],
                    azure: bool = False) -> dict[str, Any]:
    limit = body.get("max_completion_tokens", body.get("max_tokens"))
    text, finish, used = _words(limit)
    prompt = _prompt_tokens(body.get("messages"))
    choice: dict[str, Any] = {
        "index": 0, "logprobs": None, "finish_reason": finish,
        "message": {"role": "assistant", "content": text, "refusal": None,
                    "annotations": []},
    }
    result: dict[str, Any] = {
        "id": "chatcmpl-" + secrets.token_hex(12), "object": "chat.completion",
        "created": int(time.time()), "model": model, "choices": [choice],
        "usage": {
            "prompt_tokens": prompt, "completion_tokens": used,
            "total_tokens": prompt + used,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0,
                                          "audio_tokens": 0},
        },
        "service_tier": "default",
        "system_fingerprint": "fp_" + secrets.token_hex(5),
    }
    if azure:
        filtered = {k: {"filtered": False, "severity": "safe"}
                    for k in ("hate", "self_harm", "sexual", "violence")}
        choice["content_filter_results"] = filtered
        result["prompt_filter_results"] = [
            {"prompt_index": 0, "content_filter_results": filtered}]
    return result


def completion(model: str, body: Mapping[str, Any]) -> dict[str, Any]:
    text, finish, used = _words(body.get("max_tokens"))
    prompt = _prompt_tokens(body.get("prompt"))
    return {
        "id": "cmpl-" + secrets.token_hex(12), "object": "text_completion",
        "created": int(time.time()), "model": model,
        "choices": [{"text": text, "index": 0, "logprobs": None,
                     "finish_reason": finish}],
        "usage": {"prompt_tokens": prompt, "completion_tokens": used,
                  "total_tokens": prompt + used},
    }


def response_object(model: str, body: Mapping[str, Any]) -> dict[str, Any]:
    limit = body.get("max_output_tokens")
    text, finish, used = _words(limit)
    prompt = _prompt_tokens(body.get("input"))
    return {
        "id": "resp_" + secrets.token_hex(24), "object": "response",
        "created_at": int(time.time()),
        "status": "completed" if finish == "stop" else "incomplete",
        "error": None,
        "incomplete_details": None if finish == "stop"
        else {"reason": "max_output_tokens"},
        "instructions": body.get("instructions"), "max_output_tokens": limit,
        "model": model,
        "output": [{
            "type": "message", "id": "msg_" + secrets.token_hex(24),
            "status": "completed", "role": "assistant",
            "content": [{"type": "output_text", "text": text,
                         "annotations": [], "logprobs": []}],
        }],
        "parallel_tool_calls": True, "previous_response_id": None,
        "reasoning": {"effort": None, "summary": None}, "store": True,
        "temperature": 1.0, "text": {"format": {"type": "text"}},
        "tool_choice": "auto", "tools": [], "top_p": 1.0,
        "truncation": "disabled",
        "usage": {
            "input_tokens": prompt, "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": used,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": prompt + used,
        },
        "user": None, "metadata": {},
    }


def embedding_list(model: str, body: Mapping[str, Any]) -> dict[str, Any]:
    raw = body.get("input")
    inputs = raw if isinstance(raw, list) and raw and not isinstance(raw[0], int) \
        else [raw]
    dims = body.get("dimensions")
    dims = dims if isinstance(dims, int) and dims > 0 else 8
    as_b64 = body.get("encoding_format") == "base64"
    data = []
    for index, item in enumerate(inputs):
        vector = _vector(str(item), dims)
        value: Any = vector
        if as_b64:
            packed = struct.pack(f"<{len(vector)}f", *vector)
            value = base64.b64encode(packed).decode("ascii")
        data.append({"object": "embedding", "index": index, "embedding": value})
    tokens = _prompt_tokens(inputs)
    return {"object": "list", "data": data, "model": model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}


def _vector(text: str, dims: int) -> list[float]:
    # Deterministic per input, so tests can compare embeddings.
    seed = sum(text.encode()) or 1
    return [((seed * (i + 7)) % 1000) / 1000.0 - 0.5 for i in range(dims)]


@dataclass(frozen=True)
class Incoming:
    """A parsed request. ``body`` is the decoded JSON, None when empty, and
    :data:`BAD_JSON` when the bytes were not JSON."""

    method: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]
    body: Any = None


BAD_JSON = object()


def bearer(headers: Mapping[str, str]) -> str | None:
    """The token of ``Authorization: Bearer``, or None."""
    auth = headers.get("authorization")
    if auth is None or auth[:7].lower() != "bearer ":
        return None
    return auth[7:].strip()
