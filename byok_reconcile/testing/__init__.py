"""A loopback emulator of LLM provider APIs, for tests and CI.

It answers like OpenAI, Azure OpenAI and OpenAI-compatible servers do on the
wire (status codes, error bodies, headers), following their documented and
captured behaviour, so that ``byok check`` can be tested end to end with the
real openai SDK and no real key. It binds 127.0.0.1
only and needs the standard library (PyYAML only to read a config file).

Paths (``URL`` is :attr:`Emulator.url`)
---------------------------------------
- ``URL/v1/...``: OpenAI. ``GET /v1/models``, ``GET /v1/models/{id}``,
  ``POST /v1/chat/completions``, ``/v1/responses``, ``/v1/embeddings``.
  Key in ``Authorization: Bearer``; optional ``OpenAI-Organization`` and
  ``OpenAI-Project`` are checked. Keys with dialect ``openai``.
- ``URL/openai/...``: Azure OpenAI, dated API (``?api-version=`` required):
  ``GET /openai/models``, ``GET /openai/deployments`` (only 2022-12-01 and
  2023-03-15-preview), ``POST /openai/deployments/{d}/chat/completions``,
  ``.../completions``, ``.../embeddings``. Key in ``api-key``.
  Pass ``azure_endpoint=emu.azure_endpoint`` to ``AzureOpenAI``.
- ``URL/openai/v1/...``: Azure v1 API (``models``, ``chat/completions``,
  ``responses``, ``embeddings``; the deployment goes in the body's
  ``model``). Key in ``api-key`` or as Bearer. A dated api-version gives
  400 "API version not supported". Keys with dialect ``azure``.
- ``URL/compat/{server}/v1/...``: OpenAI-compatible servers, same routes as
  ``/v1``. ``server`` is ``vllm`` (Bearer checked only if some key has
  dialect ``vllm``; 401 is ``{"error": "Unauthorized"}``; other errors carry
  an integer ``code``), ``ollama`` (no auth, ``{"error": "<text>"}``),
  ``lmstudio`` (no auth, OpenAI-shaped) or ``openai`` (OpenAI-shaped, keys
  with dialect ``compat``). :meth:`Emulator.compat_base_url` gives the base.

Order of checks: latency, injected fault, rate limit, then the dialect's own
(OpenAI: key, account, org/project headers, route, scope, model, credit;
Azure: route and api-version, key, resource api-versions, deployment).

API
---
::

    from byok_reconcile.testing import Emulator, EmulatedKey, Fault, RateLimit

    emu = Emulator(
        keys=[EmulatedKey(secret="sk-...", organization="org-a",
                          models=("gpt-4o", "gpt-4o-mini")),
              EmulatedKey.azure("0123...", {"chat": "gpt-4o",
                                            "embed": "text-embedding-3-small"})],
        latency=0.0,
    )
    emu = Emulator.from_config("emulator.yaml")  # same fields as the CLI's
    with emu:                                   # or emu.start() / emu.stop()
        emu.url, emu.openai_base_url, emu.azure_endpoint
        emu.azure_v1_base_url, emu.compat_base_url("vllm")
        emu.add_fault(Fault(path="/v1/models", status=503, times=2))
        emu.add_fault(Fault(path="/v1/chat", kind="hang", seconds=5))
        emu.add_rate_limit(RateLimit(limit=2, path="/v1/chat",
                                     retry_after=0.5))
        emu.set_latency(0.2) ; emu.set_latency(1.0, path="/openai/")
        emu.add_key(...), emu.update_key(secret, credit=False)
        emu.remove_key(secret), emu.add_model(EmulatedModel("m", "chat"))
        emu.requests          # list[RecordedRequest]: method, path, query,
                              # dialect, status, fault, time, headers, body,
                              # .api_key (the key that was sent)
        emu.requests_to("/v1/models"), emu.clear()
        emu.in_flight, emu.max_in_flight

``EmulatedKey`` fields: ``secret``, ``dialects`` (openai, azure, vllm,
compat), ``organization``, ``project``, ``scopes`` ("all" or a tuple:
``api.model.read`` for the model endpoints, ``model.request`` for chat and
embeddings, ``api.responses.write``), ``credit`` (False: 429
insufficient_quota on inference, listing still works), ``deactivated``
(OpenAI 401 account_deactivated; Azure 403 key auth disabled),
``no_organization``, ``country_blocked``, ``models`` (None = all; else
others give 403 "does not have access"), ``deployments`` ({name: model}),
``api_versions`` (None = all known).

``Fault`` kinds: ``status`` (error body of the dialect, 500 and 503 as the
real ones), ``html`` (non-JSON page), ``hang`` (no answer for ``seconds``,
released by ``stop()``), ``drop`` (close without answer), ``reset`` (TCP
RST). ``times=None`` means always. ``Emulator(wrong_kind_status=400)`` sets
the status for chat on an embedding model and the like (unconfirmed).

Unconfirmed behaviour (providers.md marks it [U]; plausible, adjustable):
``GET /v1/models/{unknown}`` 404 body; the scope a per-model retrieve needs
(``scope_requirements``); ``retry-after`` on OpenAI 429s (sent); the status
for the wrong model kind (``wrong_kind_status``); Azure's body for a missing
``api-key`` and for a missing api-version (404 "Resource not found" here);
what Azure v1 ``/models`` lists (the catalogue here); the 403 code for
disabled key auth.

Command line: ``python -m byok_reconcile.testing serve --config FILE
--port 8765`` (see ``--help``); the config file holds the same fields as
:class:`EmulatorConfig` (YAML or JSON; ``secret_env: VAR`` instead of
``secret`` keeps keys out of the file).
"""

from __future__ import annotations

from byok_reconcile.testing.config import (
    DEFAULT_MODELS,
    EmulatedKey,
    EmulatedModel,
    EmulatorConfig,
    Fault,
    RateLimit,
    RecordedRequest,
    config_from_mapping,
    load_config,
)
from byok_reconcile.testing.emulator import Emulator

__all__ = [
    "DEFAULT_MODELS",
    "EmulatedKey",
    "EmulatedModel",
    "Emulator",
    "EmulatorConfig",
    "Fault",
    "RateLimit",
    "RecordedRequest",
    "config_from_mapping",
    "load_config",
]
