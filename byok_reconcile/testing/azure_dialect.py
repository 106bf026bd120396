"""Azure OpenAI: the dated api-version API and the v1 API under ``/openai``.

Routing comes before authentication, as on the service's gateway: a wrong
path or an unknown api-version is a 404 "Resource not found" whatever the
key. Errors use the Azure envelope (string ``code``, no ``type``), except
model-level errors, which Azure passes through in the OpenAI shape.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from byok_reconcile.testing import bodies
from byok_reconcile.testing.bodies import ApiError, Incoming, Reply
from byok_reconcile.testing.config import (
    AZURE_API_VERSIONS,
    AZURE_DEPLOYMENT_LIST_VERSIONS,
    AZURE_NO_CHAT_VERSIONS,
    AZURE_V1_VERSIONS,
    EmulatedKey,
    EmulatedModel,
    State,
)
from byok_reconcile.testing.openai_dialect import unsupported_max_tokens

_OPERATIONS = {"chat/completions": "chatCompletion", "completions": "completion",
               "embeddings": "embeddings", "responses": "responses"}
_OPERATION_NAMES = {"chat/completions": "ChatCompletions_Create",
                    "completions": "Completions_Create",
                    "embeddings": "Embeddings_Create",
                    "responses": "Responses_Create"}


def handle(state: State, req: Incoming, sub: str) -> Reply:
    """Answer ``req`` whose path below ``/openai`` is ``sub``."""
    try:
        if sub == "/v1" or sub.startswith("/v1/"):
            reply = _v1(state, req, sub[3:])
        else:
            reply = _dated(state, req, sub)
    except ApiError as error:
        reply = bodies.render_error(error, "azure")
    return _stamp(reply)


def error_for_status(status: int) -> Reply:
    """The Azure body for an injected 5xx (or other) status."""
    if status >= 500:
        error = bodies.azure_server_error(status)
    else:
        error = bodies.azure_error(status, "Injected error.")
    return _stamp(bodies.render_error(error, "azure"))


def rate_limited(req: Incoming, retry_after: float,
                 headers: Mapping[str, str]) -> Reply:
    """429 with ``retry-after`` and ``retry-after-ms``, Azure wording."""
    op = req.path.rsplit("/openai/", 1)[-1].split("/", 2)[-1]
    name = _OPERATION_NAMES.get(op, _OPERATION_NAMES["chat/completions"])
    version = req.query.get("api-version", "v1")
    error = bodies.azure_rate_limited(name, version, retry_after, headers)
    return _stamp(bodies.render_error(error, "azure"))


def _stamp(reply: Reply) -> Reply:
    return Reply(reply.status, reply.body,
                 {"apim-request-id": str(uuid.uuid4()), **reply.headers})


def _not_found() -> ApiError:
    return bodies.azure_error(404, bodies.AZURE_NOT_FOUND)


def _version_not_supported() -> ApiError:
    return bodies.azure_error(400, "API version not supported", "BadRequest")


# --- dated api-version ------------------------------------------------------


def _dated(state: State, req: Incoming, sub: str) -> Reply:
    version = req.query.get("api-version")
    # The gateway answers a missing or unknown version as an unknown path.
    if version not in AZURE_API_VERSIONS:
        raise _not_found()
    parts = sub.strip("/").split("/", 2)
    if req.method == "GET" and parts == ["models"]:
        key = _authenticate(state, req, version, bearer_is_key=False)
        return Reply(200, bodies.azure_model_list(_models_of(state, key)))
    if req.method == "GET" and parts == ["deployments"]:
        if version not in AZURE_DEPLOYMENT_LIST_VERSIONS:
            raise _not_found()
        key = _authenticate(state, req, version, bearer_is_key=False)
        return Reply(200, bodies.azure_deployment_list(key.deployments))
    if req.method == "POST" and len(parts) == 3 and parts[0] == "deployments":
        operation = parts[2]
        if operation not in ("chat/completions", "completions", "embeddings"):
            raise _not_found()
        if operation == "chat/completions" and version in AZURE_NO_CHAT_VERSIONS:
            raise _not_found()
        key = _authenticate(state, req, version, bearer_is_key=False)
        return _infer(state, req, key, parts[1], operation)
    raise _not_found()


# --- v1 ---------------------------------------------------------------------


def _v1(state: State, req: Incoming, sub: str) -> Reply:
    version = req.query.get("api-version")
    if version is not None and version not in AZURE_V1_VERSIONS:
        raise _version_not_supported()
    if req.method == "GET" and sub == "/models":
        key = _authenticate(state, req, None, bearer_is_key=True)
        # What v1 lists (catalogue or deployments) is unconfirmed.
        return Reply(200, bodies.model_list(_models_of(state, key)))
    operation = sub.strip("/")
    if req.method != "POST" or operation not in _OPERATIONS:
        raise _not_found()
    if operation == "completions":
        raise _not_found()
    key = _authenticate(state, req, None, bearer_is_key=True)
    body = req.body if isinstance(req.body, dict) else {}
    deployment = body.get("model")
    if not isinstance(deployment, str) or not deployment:
        raise ApiError(400, "Missing required parameter: 'model'.",
                       param="model", code="missing_required_parameter")
    return _infer(state, req, key, deployment, operation)


# --- shared -----------------------------------------------------------------


def _authenticate(state: State, req: Incoming, version: str | None,
                  *, bearer_is_key: bool) -> EmulatedKey:
    api_key = req.headers.get("api-key")
    if api_key is not None:
        key = state.find_key(api_key, "azure")
        if key is None:
            raise bodies.azure_error(401, bodies.AZURE_BAD_KEY)
    else:
        token = bodies.bearer(req.headers)
        if token is None:
            # Body unconfirmed (providers.md §2.5).
            raise bodies.azure_error(401, bodies.AZURE_NO_KEY)
        key = state.find_key(token, "azure") if bearer_is_key else None
        if key is None:
            raise bodies.azure_error(401, bodies.AZURE_BAD_TOKEN)
    if key.deactivated:
        raise bodies.azure_error(403, "Key based authentication is disabled "
                                 "for this resource.",
                                 "AuthenticationTypeDisabled")
    if version and key.api_versions is not None \
            and version not in key.api_versions:
        raise _version_not_supported()
    return key


def _models_of(state: State, key: EmulatedKey) -> list[EmulatedModel]:
    return [m for m in state.catalogue() if key.may_use(m.id)]


def _infer(state: State, req: Incoming, key: EmulatedKey, deployment: str,
           operation: str) -> Reply:
    model_id = key.deployments.get(deployment)
    if model_id is None:
        raise bodies.azure_error(404, bodies.AZURE_NO_DEPLOYMENT,
                                 "DeploymentNotFound")
    model = state.model(model_id) or EmulatedModel(model_id)
    body = req.body if isinstance(req.body, dict) else {}
    _check_operation(state, model, operation)
    if model.kind == "reasoning" and "max_tokens" in body:
        raise unsupported_max_tokens()
    bodies.check_shape(operation, body)
    headers = {"x-request-id": str(uuid.uuid4()),
               **state.ratelimit_headers(req.path)}
    return Reply(200, _result(model.id, operation, body), headers)


def _check_operation(state: State, model: EmulatedModel, operation: str) -> None:
    embedding = model.kind == "embedding"
    if (operation == "embeddings") != embedding:
        raise bodies.azure_error(state.wrong_kind_status, (
            f"The {_OPERATIONS[operation]} operation does not work with the "
            f"specified model, {model.id}. Please choose different model and "
            "try again. You can learn more about which models can be used "
            "with each operation here: "
            "https://go.microsoft.com/fwlink/?linkid=2197993."
        ), "OperationNotSupported")


def _result(model_id: str, operation: str, body: dict[str, Any]) -> Any:
    if operation == "embeddings":
        return bodies.embedding_list(model_id, body)
    if operation == "completions":
        return bodies.completion(model_id, body)
    if operation == "responses":
        return bodies.response_object(model_id, body)
    return bodies.chat_completion(model_id, body, azure=True)
