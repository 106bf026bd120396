"""The read API: how the application gets a feature's client from the store.

.. code-block:: python

    from byok_reconcile.client import open_store

    store = open_store("sqlite:///byok.db", store_key=...)  # or BYOK_STORE_KEY
    feat = store.feature("test-generation")
    print(feat.provider, feat.model, feat.deployment, feat.settings)
    client = store.openai_client("test-generation")  # OpenAI or AzureOpenAI
    reply = client.chat.completions.create(
        model=feat.request_model, messages=[{"role": "user", "content": "hi"}]
    )

``store_key`` is the store key as base64 or hex text (or a
:class:`~byok_reconcile.store.crypto.StoreKey`); without it the key comes
from ``store_key_file`` or ``BYOK_STORE_KEY``. The store is read once, at
:func:`open_store` and on :meth:`ByokStore.refresh`; opening never creates
a store (a missing one is :class:`~byok_reconcile.store.StoreMissingError`).
Clients are built from the store alone: they never pick up ``OPENAI_*`` or
``AZURE_OPENAI_*`` variables of the environment.

Azure keys with ``apiVersion: "v1"`` get a plain ``openai.OpenAI`` on
``{endpoint}/openai/v1/`` (Azure's v1 API), as ``byok check`` uses; other
Azure versions get ``openai.AzureOpenAI``.

Connection settings can be overridden per call (``base_url``,
``azure_endpoint``, ``http_client``, ``timeout``, ``max_retries``,
``default_headers``; any other constructor argument passes through), and
``resolve`` points hosts at a local server, like ``byok check --resolve``
(loopback targets only), for tests against the emulator:

.. code-block:: python

    client = store.openai_client(
        "test-generation",
        resolve={"api.openai.com": "http://127.0.0.1:8080"},
        max_retries=0,
    )
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from byok_reconcile.errors import ConfigError
from byok_reconcile.secret import Secret
from byok_reconcile.store import Store, open_target
from byok_reconcile.store.crypto import StoreKey, load_key, parse_key, row_aad
from byok_reconcile.store.rows import KeyRow, StoreState

OPENAI_DEFAULT_BASE = "https://api.openai.com/v1"


@dataclass(frozen=True)
class Feature:
    """A feature as the application needs it; no secret in here.

    ``request_model`` is what to pass as ``model=``: the model, or for Azure
    the deployment name.
    """

    name: str
    key: str
    provider: str
    model: str | None
    deployment: str | None
    settings: Mapping[str, str]
    fingerprint: str | None

    @property
    def request_model(self) -> str:
        return self.deployment or self.model or ""


class ByokStore:
    """A read-only view of a store; build with :func:`open_store`."""

    def __init__(self, store: Store, key: StoreKey) -> None:
        self._store = store
        self._key = key
        self._state: StoreState = store.read()

    def refresh(self) -> None:
        """Read the store again (after an apply)."""
        self._state = self._store.read()

    def close(self) -> None:
        self._store.close()

    def features(self) -> list[str]:
        return sorted(self._state.features)

    def feature(self, name: str) -> Feature:
        """The feature ``name``, with its key's provider and settings."""
        row = self._state.features.get(name)
        if row is None:
            raise ConfigError(
                f"feature {name!r} is not in the store {self._store.display}",
                hint=f"known: {', '.join(self.features()) or 'none'}",
            )
        key = self._key_row(row.key)
        return Feature(
            name=name,
            key=row.key,
            provider=key.provider,
            model=row.settings.get("model") or row.model,
            deployment=row.deployment,
            settings=dict(key.settings),
            fingerprint=key.fingerprint,
        )

    def secret(self, feature: str) -> Secret:
        """The decrypted API key behind ``feature``, as a :class:`Secret`."""
        key = self._key_row(self.feature(feature).key)
        if key.sealed is None:
            raise ConfigError(f"key {key.name!r} has no stored secret")
        aad = row_aad(self._state.store_id, key.name)
        return self._key.open(key.sealed, aad, what=f"key {key.name!r}")

    def openai_client(
        self,
        feature: str,
        *,
        resolve: Mapping[str, str] | None = None,
        **overrides: Any,
    ) -> Any:
        """A ready ``openai.OpenAI`` (or ``openai.AzureOpenAI``) for ``feature``.

        ``overrides`` replace the store's connection settings or add
        constructor arguments (``base_url``, ``azure_endpoint``,
        ``http_client``, ``timeout``, ``max_retries``, ``default_headers``
        ...). ``resolve`` maps host patterns to loopback URLs; it builds the
        ``http_client``, so the two cannot be given together.
        """
        feat = self.feature(feature)
        secret = self.secret(feature)
        if resolve:
            if "http_client" in overrides:
                raise ConfigError(
                    "pass either resolve or http_client, not both",
                    hint="resolve builds its own http_client",
                )
            overrides["http_client"] = resolving_client(resolve)
        if feat.provider != "azure_openai":
            return _openai(feat, secret, _openai_base(feat), overrides)
        if feat.settings.get("apiVersion") == "v1":
            endpoint = overrides.pop("azure_endpoint", None)
            base = _azure_v1_base(endpoint or feat.settings["endpoint"])
            return _openai(feat, secret, base, overrides)
        return _azure(feat, secret, overrides)

    def _key_row(self, name: str) -> KeyRow:
        key = self._state.keys.get(name)
        if key is None:
            raise ConfigError(f"key {name!r} is not in the store {self._store.display}")
        return key


def open_store(
    url: str,
    store_key: str | StoreKey | None = None,
    *,
    store_key_file: str | None = None,
) -> ByokStore:
    """Open the store at ``url`` for reading feature clients."""
    if isinstance(store_key, StoreKey):
        key = store_key
    elif store_key is not None:
        key = parse_key(store_key, origin="store_key")
    else:
        key = load_key(store_key_file)
    return ByokStore(open_target(url, create=False), key)


def _openai_base(feat: Feature) -> str:
    return feat.settings.get("baseUrl") or OPENAI_DEFAULT_BASE


def _azure_v1_base(endpoint: str) -> str:
    return endpoint.rstrip("/") + "/openai/v1/"


def _openai(
    feat: Feature, secret: Secret, base_url: str, overrides: dict[str, Any]
) -> Any:
    import openai

    organization = feat.settings.get("organization")
    project = feat.settings.get("project")
    headers: dict[str, Any] = {
        # Explicit, so OPENAI_CUSTOM_HEADERS cannot replace the key and
        # OPENAI_ORG_ID / OPENAI_PROJECT_ID cannot add a header.
        "Authorization": f"Bearer {secret.reveal()}",
        "OpenAI-Organization": organization or openai.Omit(),
        "OpenAI-Project": project or openai.Omit(),
    }
    args: dict[str, Any] = {
        "api_key": secret.reveal(),
        "admin_api_key": "",
        "webhook_secret": "",
        "organization": organization or "",
        "project": project or "",
        "base_url": base_url,
    }
    args.update(overrides)
    args["default_headers"] = {**headers, **overrides.get("default_headers", {})}
    return _forget_env(openai.OpenAI(**args), feat, args["default_headers"])


def _azure(feat: Feature, secret: Secret, overrides: dict[str, Any]) -> Any:
    import openai

    headers: dict[str, Any] = {
        "api-key": secret.reveal(),
        "Authorization": openai.Omit(),
        "OpenAI-Organization": openai.Omit(),
        "OpenAI-Project": openai.Omit(),
    }
    args: dict[str, Any] = {
        "api_key": secret.reveal(),
        "admin_api_key": "",
        "webhook_secret": "",
        "organization": "",
        "project": "",
        "api_version": feat.settings["apiVersion"],
    }
    # The SDK takes base_url or azure_endpoint, never both.
    if "base_url" not in overrides:
        args["azure_endpoint"] = feat.settings["endpoint"]
    args.update(overrides)
    args["default_headers"] = {**headers, **overrides.get("default_headers", {})}
    return _forget_env(openai.AzureOpenAI(**args), feat, args["default_headers"])


def resolving_client(resolve: Mapping[str, str]) -> Any:
    """An HTTP client that sends requests for the hosts in ``resolve`` to
    the loopback URLs they map to (the Host header keeps the original name).

    Raises :class:`~byok_reconcile.errors.UsageError` for a target that is
    not loopback, as ``--resolve`` does.
    """
    import httpx2

    from byok_reconcile.providers.hosts import HostPolicy, parse_resolve
    from byok_reconcile.providers.transport import apply_resolve

    policy = HostPolicy(resolve=parse_resolve(resolve))

    class _Resolving(httpx2.HTTPTransport):
        def handle_request(self, request: httpx2.Request) -> httpx2.Response:
            apply_resolve(policy, request)
            return super().handle_request(request)

    # trust_env=False: loopback traffic never goes through an env proxy.
    return httpx2.Client(transport=_Resolving(trust_env=False), trust_env=False)


def _forget_env(client: Any, feat: Feature, headers: Mapping[str, Any]) -> Any:
    # The SDK fills unset options from OPENAI_* variables; the store is the
    # only source of truth, so undo whatever the environment slipped in.
    # OPENAI_CUSTOM_HEADERS is merged under explicit headers whatever we
    # pass, so the headers are set back to exactly ours.
    if isinstance(getattr(client, "_custom_headers", None), Mapping):
        client._custom_headers = dict(headers)
    client.organization = feat.settings.get("organization")
    client.project = feat.settings.get("project")
    for attr in ("admin_api_key", "webhook_secret"):
        if hasattr(client, attr):
            setattr(client, attr, None)
    return client
