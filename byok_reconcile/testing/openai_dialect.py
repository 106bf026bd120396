"""The OpenAI API and the OpenAI-compatible servers.

``flavour`` selects the server being imitated: ``openai`` (api.openai.com),
``compat`` (an OpenAI-shaped server with keys), ``lmstudio`` (OpenAI-shaped,
no auth), ``vllm`` (string 401, integer codes) and ``ollama`` (no auth,
string errors). Each handler raises :class:`ApiError`; the flavour renders it.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

from byok_reconcile.testing import bodies
from byok_reconcile.testing.bodies import ApiError, Incoming, Reply
from byok_reconcile.testing.config import EmulatedKey, EmulatedModel, State

FLAVOURS = ("openai", "compat", "lmstudio", "vllm", "ollama")
_RENDER = {"openai": "openai", "compat": "openai", "lmstudio": "openai",
           "vllm": "vllm", "ollama": "ollama"}
# Servers that have no key, or have none configured, act as this key.
OPEN_KEY = EmulatedKey(secret="", dialects=(), organization="", project="")


def handle(state: State, req: Incoming, flavour: str, sub: str) -> Reply:
    """Answer ``req`` whose path below ``/v1`` is ``sub``."""
    rid = bodies.request_id()
    try:
        key = _authenticate(state, req, flavour)
        reply = _route(state, req, flavour, sub, key)
    except ApiError as error:
        render = "ollama" if error.type == "plain" else _RENDER[flavour]
        reply = bodies.render_error(error, render)
    if flavour in ("openai", "compat"):
        extra = {"x-request-id": rid, "openai-version": "2020-10-01",
                 "openai-processing-ms": str(random.randint(20, 400))}
        reply = Reply(reply.status, reply.body, {**extra, **reply.headers})
    return reply


def error_for_status(status: int, flavour: str) -> Reply:
    """The body a server of ``flavour`` sends for an injected 5xx."""
    rid = bodies.request_id()
    if status >= 500:
        error = bodies.server_error(status, rid)
    else:
        error = ApiError(status, "Injected error.", code=str(status))
    reply = bodies.render_error(error, _RENDER[flavour])
    return Reply(status, reply.body, {"x-request-id": rid})


def rate_limited(req: Incoming, flavour: str, retry_after: float,
                 headers: Mapping[str, str]) -> Reply:
    """429 rate_limit_exceeded, with the retry headers."""
    model = req.body.get("model") if isinstance(req.body, dict) else None
    error = bodies.rate_limited(str(model or "gpt-4o"), "org-emulated",
                                retry_after, headers)
    reply = bodies.render_error(error, _RENDER[flavour])
    return Reply(429, reply.body, {"x-request-id": bodies.request_id(),
                                   **reply.headers})


# --- authentication ---------------------------------------------------------


def _authenticate(state: State, req: Incoming, flavour: str) -> EmulatedKey:
    if flavour in ("ollama", "lmstudio"):
        return OPEN_KEY
    if flavour == "vllm":
        return _vllm_key(state, req)
    token = bodies.bearer(req.headers)
    if not token:
        raise ApiError(401, bodies.MISSING_KEY)
    key = state.find_key(token, flavour)
    if key is None:
        raise bodies.invalid_key(token)
    problem = bodies.account_problem(key)
    if problem is not None:
        raise problem
    if flavour == "openai":
        _check_headers(state, req, key)
    return key


def _vllm_key(state: State, req: Incoming) -> EmulatedKey:
    # vLLM checks a key only when started with --api-key.
    if not state.has_keys_for("vllm"):
        return OPEN_KEY
    key = state.find_key(bodies.bearer(req.headers) or "", "vllm")
    if key is None:
        raise ApiError(401, "Unauthorized", type="plain")
    return key


def _check_headers(state: State, req: Incoming, key: EmulatedKey) -> None:
    org = req.headers.get("openai-organization")
    if org is not None and org != key.organization:
        if org in state.organizations():
            raise ApiError(401, "OpenAI-Organization header should match "
                           "organization for API key",
                           code="mismatched_organization")
        raise ApiError(401, f"No such organization: {org}.",
                       code="invalid_organization")
    project = req.headers.get("openai-project")
    if project is not None and project != key.project:
        raise ApiError(401, "OpenAI-Project header should match project for "
                       "API key", code="mismatched_project")


# --- routing ----------------------------------------------------------------


def _route(state: State, req: Incoming, flavour: str, sub: str,
           key: EmulatedKey) -> Reply:
    if req.method == "GET" and sub == "/models":
        return _list_models(state, key)
    if req.method == "GET" and sub.startswith("/models/"):
        return _retrieve_model(state, flavour, key, sub[len("/models/"):])
    if req.method == "POST" and sub in _INFERENCE:
        body = _json_body(req)
        return _INFERENCE[sub](state, req, flavour, key, body)
    raise ApiError(404, f"Invalid URL ({req.method} {req.path})")


def _list_models(state: State, key: EmulatedKey) -> Reply:
    _require_scope(state, key, "models.list", 403)
    models = [m for m in state.catalogue() if key.may_use(m.id)]
    return _ok(bodies.model_list(models), key)


def _retrieve_model(state: State, flavour: str, key: EmulatedKey,
                    model_id: str) -> Reply:
    _require_scope(state, key, "models.retrieve", 403)
    model = state.model(model_id)
    if model is None or not key.may_use(model_id):
        # Unconfirmed for api.openai.com (providers.md marks it [U]).
        raise _unknown_model(flavour, model_id, "retrieve")
    return _ok(bodies.model_object(model), key)


def _chat(state: State, req: Incoming, flavour: str, key: EmulatedKey,
          body: dict[str, Any]) -> Reply:
    _require_scope(state, key, "chat", 401)
    model = _usable_model(state, flavour, key, body, "chat")
    if model.kind == "embedding":
        raise ApiError(state.wrong_kind_status, (
            "This is not a chat model and thus not supported in the "
            "v1/chat/completions endpoint. Did you mean to use v1/completions?"
        ), param="model")
    if model.kind == "reasoning" and "max_tokens" in body:
        raise unsupported_max_tokens()
    bodies.check_shape("chat", body)
    _require_credit(key)
    return _ok(bodies.chat_completion(model.id, body), key,
               state.ratelimit_headers(req.path))


def _responses(state: State, req: Incoming, flavour: str, key: EmulatedKey,
               body: dict[str, Any]) -> Reply:
    _require_scope(state, key, "responses", 401)
    model = _usable_model(state, flavour, key, body, "responses")
    limit = body.get("max_output_tokens")
    if isinstance(limit, int) and limit < 16:
        raise ApiError(400, (
            "Invalid 'max_output_tokens': integer below minimum value. "
            f"Expected a value >= 16, but got {limit} instead."
        ), param="max_output_tokens", code="integer_below_min_value")
    if model.kind == "embedding":
        raise ApiError(state.wrong_kind_status, f"The model '{model.id}' is "
                       "not supported with the Responses API.", param="model")
    _require_credit(key)
    return _ok(bodies.response_object(model.id, body), key,
               state.ratelimit_headers(req.path))


def _embeddings(state: State, req: Incoming, flavour: str, key: EmulatedKey,
                body: dict[str, Any]) -> Reply:
    _require_scope(state, key, "embeddings", 401)
    model = _usable_model(state, flavour, key, body, "embeddings")
    if "input" not in body:
        raise ApiError(400, "'input' is a required property")
    if model.kind != "embedding":
        raise ApiError(state.wrong_kind_status, f"The model '{model.id}' does "
                       "not support embeddings.", param="model")
    bodies.check_shape("embeddings", body)
    _require_credit(key)
    return _ok(bodies.embedding_list(model.id, body), key,
               state.ratelimit_headers(req.path))


_INFERENCE = {
    "/chat/completions": _chat,
    "/responses": _responses,
    "/embeddings": _embeddings,
}


# --- checks shared by the handlers ------------------------------------------


def _json_body(req: Incoming) -> dict[str, Any]:
    if req.body is bodies.BAD_JSON or not isinstance(req.body, dict):
        raise ApiError(400, (
            "We could not parse the JSON body of your request. (HINT: This "
            "likely means you aren't using your HTTP library correctly. The "
            "OpenAI API expects a JSON payload, but what was sent was not "
            "valid JSON.)"
        ))
    return req.body


def _require_scope(state: State, key: EmulatedKey, operation: str,
                   status: int) -> None:
    scope = state.scope_for(operation)
    if not key.has_scope(scope):
        raise bodies.missing_scope(scope, status)


def _require_credit(key: EmulatedKey) -> None:
    if not key.credit:
        raise bodies.insufficient_quota()


def _usable_model(state: State, flavour: str, key: EmulatedKey,
                  body: dict[str, Any], api: str) -> EmulatedModel:
    model_id = body.get("model")
    if not isinstance(model_id, str) or not model_id:
        raise ApiError(400, "you must provide a model parameter")
    model = state.model(model_id)
    if model is None:
        raise _unknown_model(flavour, model_id, api)
    if not key.may_use(model_id):
        if flavour not in ("openai", "compat"):
            raise _unknown_model(flavour, model_id, api)
        raise ApiError(403, f"Project `{key.project}` does not have access to "
                       f"model `{model_id}`", code="model_not_found")
    return model


def _unknown_model(flavour: str, model_id: str, api: str) -> ApiError:
    if flavour == "ollama":
        return ApiError(404, f'model "{model_id}" not found, try pulling it '
                        "first", type="plain")
    if flavour == "vllm":
        return ApiError(404, f"The model `{model_id}` does not exist.",
                        type="NotFoundError", param="model")
    if api == "responses":
        return ApiError(400, f"The requested model '{model_id}' does not "
                        "exist.", param="model", code="model_not_found")
    if api == "retrieve":
        return ApiError(404, f"The model '{model_id}' does not exist",
                        param="model", code="model_not_found")
    return ApiError(404, f"The model `{model_id}` does not exist or you do "
                    "not have access to it.", code="model_not_found")


def unsupported_max_tokens() -> ApiError:
    return ApiError(400, (
        "Unsupported parameter: 'max_tokens' is not supported with this "
        "model. Use 'max_completion_tokens' instead."
    ), param="max_tokens", code="unsupported_parameter")


def _ok(body: Any, key: EmulatedKey,
        extra: Mapping[str, str] | None = None) -> Reply:
    headers = {"openai-organization": key.organization} if key.organization \
        else {}
    return Reply(200, body, {**headers, **(extra or {})})
