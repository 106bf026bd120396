"""Probes: what to ask each provider to prove a key and its targets.

Free by default: listing models proves an OpenAI-style key and which models
it sees; an Azure deployment is proven by posting an empty body to it (400
means the key and the deployment were accepted, 404 DeploymentNotFound that
the deployment is missing). ``--deep`` sends one real, minimal request per
model or deployment, which spends tokens and is how exhausted quota shows.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import openai

from byok_reconcile.model import KeySpec
from byok_reconcile.providers.classify import Outcome, Phase, request_id
from byok_reconcile.providers.hosts import HostError, parse_origin
from byok_reconcile.providers.session import ProbeFailure, Session
from byok_reconcile.results import (
    FORBIDDEN,
    MISCONFIGURED,
    MODEL_UNAVAILABLE,
    UNREACHABLE,
    VALID,
    TargetResult,
)
from byok_reconcile.secret import Secret

OPENAI_BASE_URL = "https://api.openai.com/v1"
PING = "ping"


@dataclass(frozen=True)
class Probed:
    """What a probe found: the key's own outcome and one per target."""

    key: Outcome
    targets: tuple[TargetResult, ...]
    host: str = ""


def skipped(
    targets: tuple[str, ...], outcome: Outcome, host: str = ""
) -> tuple[TargetResult, ...]:
    """Targets left unchecked because the key's own request failed."""
    why = _not_checked(outcome.verdict, host)
    return tuple(
        TargetResult(t, outcome.verdict, why, request_id=outcome.request_id)
        for t in targets
    )


def _not_checked(verdict: str, host: str) -> str:
    # Say why in the words of the key's failure: an unreachable host or a
    # wrong setting says nothing about the key itself.
    if verdict == UNREACHABLE:
        return f"not checked: {host or 'the provider'} was unreachable"
    if verdict == MISCONFIGURED:
        return "not checked: the key's configuration is wrong"
    return "not checked: the key itself failed"


def unsendable(secret: Secret) -> Outcome | None:
    """Why the key cannot go in an HTTP header, or None if it can.

    A stray line break (``echo KEY | sops``...) or another control
    character makes the HTTP library refuse the header before anything is
    sent, which would otherwise read as "could not connect". The message
    never shows the key or the character's position in it.
    """
    value = secret.reveal()
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
        return Outcome(MISCONFIGURED, "the API key contains a line break or "
                       "control character: re-encrypt it without one")
    if not value.isascii():
        return Outcome(MISCONFIGURED, "the API key contains a non-ASCII "
                       "character: re-encrypt it without one")
    if value != value.strip():
        return Outcome(MISCONFIGURED, "the API key begins or ends with a "
                       "space: re-encrypt it without one")
    return None


def host_of(url: str) -> str:
    """The host of ``url`` as configured (before any ``--resolve``)."""
    try:
        return parse_origin(url).host
    except HostError:
        return ""


def _target(name: str, outcome: Outcome, proven: str = "") -> TargetResult:
    return TargetResult(
        name, outcome.verdict, outcome.detail, proven, outcome.request_id
    )


def _is_embedding(model: str) -> bool:
    return "embed" in model.lower()


def _call(session: Session, client: openai.OpenAI, secret: Secret, phase: Phase,
          fn: Callable[[], Any]) -> tuple[Outcome, Any]:
    """Run ``fn`` (a raw-response SDK call on ``client``); a failure becomes
    an Outcome that names the client's host."""
    try:
        raw = session.call(fn, phase, secret, str(client.base_url.host))
    except ProbeFailure as failure:
        return failure.outcome, None
    rid = request_id(raw.headers, secret.reveal())
    return Outcome(VALID, request_id=rid), raw


def _model_ids(raw: Any) -> set[str] | None:
    try:
        data = json.loads(raw.http_response.text)
        return {str(m["id"]) for m in data["data"]}
    except (ValueError, KeyError, TypeError):
        return None


# -- OpenAI and OpenAI-compatible ------------------------------------------


def probe_openai(session: Session, spec: KeySpec, secret: Secret) -> Probed:
    """Prove an openai or openai_compatible key and each of its models."""
    base = spec.settings.get("baseUrl") or OPENAI_BASE_URL
    host = host_of(base)
    refused = session.admit(spec.provider, base)
    if refused is not None:
        return Probed(refused, skipped(spec.targets, refused, host), host)
    client = session.openai_client(
        base, secret, spec.settings.get("organization"), spec.settings.get("project")
    )
    listed, raw = _call(
        session, client, secret, "key", client.models.with_raw_response.list
    )
    if listed.verdict == VALID:
        return _from_listing(session, client, spec, secret, listed, raw)
    if listed.restricted:
        return _restricted(session, client, spec, secret, listed)
    return Probed(listed, skipped(spec.targets, listed, host), host)


def _from_listing(session: Session, client: openai.OpenAI, spec: KeySpec,
                  secret: Secret, listed: Outcome, raw: Any) -> Probed:
    ids = _model_ids(raw)
    if ids is None:
        host = str(client.base_url.host)
        bad = Outcome(UNREACHABLE, f"the model list from {host} could not be read",
                      "check that the base URL points at an OpenAI-style API",
                      listed.request_id)
        return Probed(bad, skipped(spec.targets, bad, host), host)
    key = Outcome(VALID, "key accepted (GET /models)", request_id=listed.request_id)
    if session.options.deep:
        deep = session.map(
            lambda m: _deep_openai(session, client, m, secret), spec.models
        )
        return Probed(key, tuple(deep))
    return Probed(key, tuple(_listed(m, ids, listed) for m in spec.models))


def _listed(model: str, ids: set[str], listed: Outcome) -> TargetResult:
    if model in ids:
        ok = Outcome(VALID, request_id=listed.request_id)
        return _target(model, ok, "listed by GET /models")
    missing = Outcome(MODEL_UNAVAILABLE, "not in the key's model list",
                      request_id=listed.request_id)
    return _target(model, missing)


def _restricted(session: Session, client: openai.OpenAI, spec: KeySpec,
                secret: Secret, listed: Outcome) -> Probed:
    # 403 "Missing scopes" on the list: the key authenticated, so it is
    # valid, only restricted. Prove each model one by one instead.
    key = Outcome(VALID, f"restricted key, cannot list models: {listed.detail}",
                  request_id=listed.request_id)
    if session.options.deep:
        probe = lambda m: _deep_openai(session, client, m, secret)  # noqa: E731
    else:
        probe = lambda m: _retrieve(session, client, m, secret)  # noqa: E731
    return Probed(key, tuple(session.map(probe, spec.models)))


def _retrieve(session: Session, client: openai.OpenAI, model: str,
              secret: Secret) -> TargetResult:
    fn = lambda: client.models.with_raw_response.retrieve(model)  # noqa: E731
    outcome, _ = _call(session, client, secret, "model", fn)
    return _target(model, outcome, _retrieved(outcome.verdict))


def _retrieved(verdict: str) -> str:
    if verdict == VALID:
        return "GET /models/{model} answered; the key may not list models"
    if verdict == FORBIDDEN:
        return "key authenticated; model not proven (try --deep)"
    return ""


def _deep_openai(session: Session, client: openai.OpenAI, model: str,
                 secret: Secret) -> TargetResult:
    fn = _real_request(client, model, _is_embedding(model))
    outcome, _ = _call(session, client, secret, "deep", fn)
    proven = "answered a real request" if outcome.verdict == VALID else ""
    return _target(model, outcome, proven)


def _real_request(
    client: openai.OpenAI, model: str, embedding: bool
) -> Callable[[], Any]:
    if embedding:
        return lambda: client.embeddings.with_raw_response.create(
            model=model, input=PING
        )
    return lambda: client.chat.completions.with_raw_response.create(
        model=model,
        messages=[{"role": "user", "content": PING}],
        max_completion_tokens=1,
    )


def _empty_request(
    client: openai.OpenAI, model: str, embedding: bool
) -> Callable[[], Any]:
    # Deliberately invalid: refused with 400 once auth and routing passed.
    if embedding:
        return lambda: client.embeddings.with_raw_response.create(
            model=model, input=[]
        )
    return lambda: client.chat.completions.with_raw_response.create(
        model=model, messages=[]
    )


# -- Azure OpenAI -----------------------------------------------------------


def probe_azure(session: Session, spec: KeySpec, secret: Secret) -> Probed:
    """Prove an Azure key + endpoint + api-version, then each deployment."""
    endpoint = spec.settings.get("endpoint", "").rstrip("/")
    version = spec.settings.get("apiVersion", "")
    host = host_of(endpoint + "/")
    refused = session.admit(spec.provider, endpoint + "/")
    if refused is not None:
        return Probed(refused, skipped(spec.targets, refused, host), host)
    client: openai.OpenAI
    if version == "v1":
        client = session.openai_client(f"{endpoint}/openai/v1/", secret)
    else:
        client = session.azure_client(endpoint, version, secret)
    listed, _ = _call(
        session, client, secret, "key", client.models.with_raw_response.list
    )
    if listed.verdict != VALID:
        return Probed(listed, skipped(spec.targets, listed, host), host)
    key = Outcome(VALID, "key, endpoint and API version accepted",
                  request_id=listed.request_id)
    targets = session.map(
        lambda item: _probe_deployment(session, client, *item, secret),
        list(spec.deployments.items()),
    )
    return Probed(key, tuple(targets), host)


def _probe_deployment(session: Session, client: openai.OpenAI, name: str,
                      model: str, secret: Secret) -> TargetResult:
    embedding = _is_embedding(model or name)
    if session.options.deep:
        fn = _real_request(client, name, embedding)
        outcome, _ = _call(session, client, secret, "deep", fn)
        proven = "answered a real request"
    else:
        fn = _empty_request(client, name, embedding)
        outcome, _ = _call(session, client, secret, "deployment", fn)
        proven = "deployment exists and accepts the key (no tokens spent)"
    return _target(name, outcome, proven if outcome.verdict == VALID else "")
