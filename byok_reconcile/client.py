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
:func:`open_store` and on :meth:`ByokStore.refresh`. Clients are built from
the store alone: they never pick up ``OPENAI_*`` or ``AZURE_OPENAI_*``
variables of the environment.
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

    def openai_client(self, feature: str, **kwargs: Any) -> Any:
        """A ready ``openai.OpenAI`` (or ``openai.AzureOpenAI``) for ``feature``.

        ``kwargs`` (``timeout``, ``max_retries``, ``http_client`` ...) go to
        the client's constructor.
        """
        feat = self.feature(feature)
        secret = self.secret(feature)
        if feat.provider == "azure_openai":
            return _azure(feat, secret, kwargs)
        return _openai(feat, secret, kwargs)

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
    return ByokStore(open_target(url), key)


def _openai(feat: Feature, secret: Secret, kwargs: dict[str, Any]) -> Any:
    import openai

    client = openai.OpenAI(
        api_key=secret.reveal(),
        base_url=feat.settings.get("baseUrl") or OPENAI_DEFAULT_BASE,
        organization=feat.settings.get("organization"),
        project=feat.settings.get("project"),
        **kwargs,
    )
    return _forget_env(client, feat)


def _azure(feat: Feature, secret: Secret, kwargs: dict[str, Any]) -> Any:
    import openai

    client = openai.AzureOpenAI(
        api_key=secret.reveal(),
        azure_endpoint=feat.settings["endpoint"],
        api_version=feat.settings["apiVersion"],
        **kwargs,
    )
    return _forget_env(client, feat)


def _forget_env(client: Any, feat: Feature) -> Any:
    # The SDK fills unset options from OPENAI_* variables; the store is the
    # only source of truth, so undo whatever the environment slipped in.
    client.organization = feat.settings.get("organization")
    client.project = feat.settings.get("project")
    for attr in ("admin_api_key", "webhook_secret"):
        if hasattr(client, attr):
            setattr(client, attr, None)
    return client
