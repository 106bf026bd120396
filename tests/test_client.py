"""The read API: ready OpenAI / Azure clients from the store, via the emulator."""

from __future__ import annotations

import base64
import os
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from byok_reconcile import reconcile
from byok_reconcile.client import open_store
from byok_reconcile.errors import ConfigError, StoreKeyError
from byok_reconcile.model import Config, FeatureSpec
from byok_reconcile.secret import Secret
from byok_reconcile.store import open_target
from byok_reconcile.store.crypto import StoreKey
from tests.fixtures.emulator import add_azure_key, add_openai_key
from tests.fixtures.store import key_spec


def _config(emulator: Any) -> Config:
    keys = {
        "oa": key_spec("oa", base_url=emulator.openai_base_url, models=("gpt-4o",)),
        "az": key_spec(
            "az",
            provider="azure_openai",
            settings={"endpoint": emulator.azure_endpoint, "apiVersion": "2024-10-21"},
            models=(),
            deployments={"chat": "gpt-4o"},
        ),
    }
    feats = {
        "test-generation": FeatureSpec("test-generation", "oa", model="gpt-4o"),
        "copilot": FeatureSpec("copilot", "az", deployment="chat"),
    }
    return Config(keys=keys, features=feats)


@pytest.fixture
def loaded(emulator: Any, sqlite_url: str, store_key: StoreKey) -> str:
    secrets = {
        "oa": Secret(add_openai_key(emulator, models=("gpt-4o",))),
        "az": Secret(add_azure_key(emulator, {"chat": "gpt-4o"})),
    }
    desired = reconcile.desired_state(_config(emulator), "app", secrets)
    store = open_target(sqlite_url)
    reconcile.apply(store, desired, store_key, reconcile.ApplyOptions())
    store.close()
    return sqlite_url


def test_feature_settings(loaded: str, store_key: StoreKey, emulator: Any) -> None:
    store = open_store(loaded, store_key)
    feat = store.feature("copilot")
    assert feat.provider == "azure_openai"
    assert (feat.deployment, feat.model) == ("chat", "gpt-4o")
    assert feat.request_model == "chat"
    assert feat.settings["endpoint"] == emulator.azure_endpoint
    assert store.features() == ["copilot", "test-generation"]
    with pytest.raises(ConfigError, match="known: copilot, test-generation"):
        store.feature("nope")


def test_openai_client_ignores_the_environment(
    loaded: str, store_key: StoreKey, emulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_ORG_ID", "org-from-env")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    key = base64.b64encode(store_key._raw).decode()
    client = open_store(loaded, key).openai_client("test-generation", max_retries=0)
    assert client.organization is None
    assert str(client.base_url).rstrip("/") == emulator.openai_base_url.rstrip("/")
    assert client.api_key != "sk-from-env"
    models = [m.id for m in client.models.list()]
    assert "gpt-4o" in models


def test_azure_client_answers(loaded: str, store_key: StoreKey) -> None:
    import openai

    store = open_store(loaded, store_key)
    client = store.openai_client("copilot", max_retries=0)
    assert isinstance(client, openai.AzureOpenAI)
    reply = client.chat.completions.create(
        model=store.feature("copilot").request_model,
        messages=[{"role": "user", "content": "hi"}],
        max_tokens=1,
    )
    assert reply.choices


def test_store_key_from_environment(
    loaded: str, store_key: StoreKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BYOK_STORE_KEY", store_key._raw.hex())
    assert open_store(loaded).secret("copilot").fingerprint.startswith("sha256:")
    monkeypatch.delenv("BYOK_STORE_KEY")
    with pytest.raises(StoreKeyError, match="no store key"):
        open_store(loaded)
    with pytest.raises(StoreKeyError, match="store key"):
        open_store(loaded, StoreKey(os.urandom(32))).secret("copilot")


def test_a_ciphertext_moved_to_another_row_does_not_open(
    loaded: str, store_key: StoreKey
) -> None:
    engine = create_engine(loaded)
    with engine.begin() as conn:
        row = conn.execute(
            text("SELECT ciphertext, nonce FROM byok_keys WHERE name = 'oa'")
        ).one()
        conn.execute(
            text("UPDATE byok_keys SET ciphertext = :c, nonce = :n WHERE name = 'az'"),
            {"c": row.ciphertext, "n": row.nonce},
        )
    engine.dispose()
    store = open_store(loaded, store_key)
    with pytest.raises(StoreKeyError, match="altered or moved"):
        store.secret("copilot")


def _load(url: str, key: StoreKey, config: Config, secrets: dict[str, Secret]) -> None:
    desired = reconcile.desired_state(config, "app", secrets)
    store = open_target(url)
    reconcile.apply(store, desired, key, reconcile.ApplyOptions())
    store.close()


def test_azure_v1_gets_a_plain_openai_client(
    emulator: Any, sqlite_url: str, store_key: StoreKey
) -> None:
    import openai

    az = key_spec(
        "az",
        provider="azure_openai",
        settings={"endpoint": emulator.azure_endpoint, "apiVersion": "v1"},
        models=(),
        deployments={"chat": "gpt-4o"},
    )
    feature = FeatureSpec("copilot", "az", deployment="chat")
    config = Config(keys={"az": az}, features={"copilot": feature})
    secret = Secret(add_azure_key(emulator, {"chat": "gpt-4o"}))
    _load(sqlite_url, store_key, config, {"az": secret})
    store = open_store(sqlite_url, store_key)
    client = store.openai_client("copilot", max_retries=0)
    assert type(client) is openai.OpenAI
    assert str(client.base_url) == emulator.azure_endpoint.rstrip("/") + "/openai/v1/"
    reply = client.chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "hi"}], max_tokens=1
    )
    assert reply.choices


def test_connection_settings_can_be_overridden(
    loaded: str, store_key: StoreKey, emulator: Any
) -> None:
    store = open_store(loaded, store_key)
    base = emulator.openai_base_url
    client = store.openai_client("test-generation", base_url=base, timeout=5.0,
                                 max_retries=0, default_headers={"X-App": "t"})
    assert str(client.base_url).rstrip("/") == base.rstrip("/")
    assert client.timeout == 5.0 and client.max_retries == 0
    assert "gpt-4o" in [m.id for m in client.models.list()]
    azure = store.openai_client("copilot", azure_endpoint=emulator.azure_endpoint,
                                max_retries=0)
    assert azure.chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "hi"}], max_tokens=1
    ).choices


def test_resolve_points_a_provider_host_at_the_emulator(
    emulator: Any, sqlite_url: str, store_key: StoreKey
) -> None:
    from byok_reconcile.errors import UsageError

    config = Config(keys={"oa": key_spec("oa", models=("gpt-4o",))},
                    features={"f": FeatureSpec("f", "oa", model="gpt-4o")})
    secret = Secret(add_openai_key(emulator, models=("gpt-4o",)))
    _load(sqlite_url, store_key, config, {"oa": secret})
    store = open_store(sqlite_url, store_key)
    client = store.openai_client(
        "f", resolve={"api.openai.com": emulator.url}, max_retries=0
    )
    assert str(client.base_url).startswith("https://api.openai.com/")
    assert "gpt-4o" in [m.id for m in client.models.list()]
    with pytest.raises(UsageError, match="not loopback"):
        store.openai_client("f", resolve={"api.openai.com": "https://example.com"})
    with pytest.raises(ConfigError, match="either resolve or http_client"):
        store.openai_client("f", resolve={"api.openai.com": emulator.url},
                            http_client=object())


def test_resolve_keeps_a_path_prefix_of_the_target(
    emulator: Any, sqlite_url: str, store_key: StoreKey
) -> None:
    config = Config(keys={"oa": key_spec("oa", models=("gpt-4o",))},
                    features={"f": FeatureSpec("f", "oa", model="gpt-4o")})
    secret = Secret(
        add_openai_key(emulator, models=("gpt-4o",), dialects=("compat",))
    )
    _load(sqlite_url, store_key, config, {"oa": secret})
    client = open_store(sqlite_url, store_key).openai_client(
        "f", resolve={"api.openai.com": emulator.url + "/compat/openai"},
        max_retries=0,
    )
    assert "gpt-4o" in [m.id for m in client.models.list()]
    assert [r.path for r in emulator.requests] == ["/compat/openai/v1/models"]


def test_open_store_never_creates_one(tmp_path: Any, store_key: StoreKey) -> None:
    from byok_reconcile.store import StoreMissingError

    with pytest.raises(StoreMissingError, match="no store at"):
        open_store(f"sqlite:///{tmp_path / 'nothere.db'}", store_key)
    assert not (tmp_path / "nothere.db").exists()


@pytest.mark.parametrize("feature", ["test-generation", "copilot"])
def test_clients_ignore_custom_headers_from_the_environment(
    loaded: str, store_key: StoreKey, monkeypatch: pytest.MonkeyPatch, feature: str
) -> None:
    monkeypatch.setenv(
        "OPENAI_CUSTOM_HEADERS", "X-From-Env: leak\nAuthorization: Bearer sk-env"
    )
    client = open_store(loaded, store_key).openai_client(feature, max_retries=0)
    headers = {k.lower(): v for k, v in client.default_headers.items()}
    assert "x-from-env" not in headers
    assert "sk-env" not in str(headers.get("authorization", ""))
    if feature == "test-generation":
        assert "gpt-4o" in [m.id for m in client.models.list()]
    else:
        reply = client.chat.completions.create(
            model="chat", messages=[{"role": "user", "content": "hi"}], max_tokens=1
        )
        assert reply.choices
