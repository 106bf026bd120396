"""Secret resolution: inline, fromFile and fromEnv, with real sops and age."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from byok_reconcile import keysource, sops
from byok_reconcile.errors import (
    EXIT_INVALID,
    EXIT_UNAVAILABLE,
    ByokError,
    DecryptionKeyError,
    NotEncryptedError,
    SecretNotFoundError,
    SecretUnavailableError,
)
from byok_reconcile.model import Config, KeySpec, Location, SecretRef
from byok_reconcile.secret import Secret
from tests.canary import assert_no_leak, make_azure_secret, make_secret
from tests.fixtures.sops import AgeIdentity, sops_encrypt

REPO = Path(__file__).resolve().parent.parent


def key(name: str, ref: SecretRef) -> KeySpec:
    return KeySpec(
        name=name,
        provider="openai",
        secret=ref,
        settings={},
        models=("gpt-4o",),
        location=ref.location,
    )


def config(*keys: KeySpec) -> Config:
    return Config(keys={k.name: k for k in keys}, features={})


def inline(path: Path, doc_index: int = 0, line: int = 3) -> SecretRef:
    return SecretRef("inline", Location(os.fspath(path), line, 3), doc_index=doc_index)


def from_file(referrer: Path, target: Path | str, dotted: str) -> SecretRef:
    loc = Location(os.fspath(referrer), 9, 11)
    return SecretRef("file", loc, path=Path(target), key=dotted)


def from_env(var: str) -> SecretRef:
    return SecretRef("env", Location("keys/ci.yaml", 7, 11), env=var)


def key_doc(name: str, api_key: str) -> str:
    return (
        f"apiVersion: byok/v1\nkind: Key\nmetadata: {{name: {name}}}\n"
        f"spec:\n  provider: openai\n  apiKey: {api_key}\n  models: [gpt-4o]\n"
    )


def revealed(result: dict[str, Secret | ByokError], name: str) -> str:
    value = result[name]
    assert isinstance(value, Secret), f"{name}: {value}"
    return value.reveal()


def assert_clean(result: dict[str, Secret | ByokError]) -> None:
    assert_no_leak(repr(result), "resolved repr")
    for value in result.values():
        assert_no_leak(str(value), "resolved value")


@pytest.fixture
def encrypt(age_identity: AgeIdentity, tmp_path: Path):  # type: ignore[no-untyped-def]
    def _encrypt(
        plain: str, name: str, input_type: str = "yaml", regex: str | None = None
    ) -> Path:
        dest = tmp_path / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        return sops_encrypt(
            plain,
            dest,
            recipients=age_identity.recipient,
            input_type=input_type,
            encrypted_regex=regex,
        )

    return _encrypt


# -- the three sources -----------------------------------------------------------


def test_inline_multi_document_file(encrypt, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    first, second = make_secret(), make_secret()
    plain = key_doc("first", first) + "---\n" + key_doc("second", second)
    path = encrypt(plain, "keys/two.yaml", regex="^apiKey$")
    ref_b = SecretRef(
        "inline", Location("relative/as/given.yaml", 12, 3), path=path, doc_index=1
    )
    result = keysource.resolve_secrets(
        config(key("first", inline(path, 0)), key("second", ref_b))
    )
    assert revealed(result, "first") == first
    assert revealed(result, "second") == second
    assert_clean(result)


def test_from_file_yaml_json_dotenv_ini(encrypt, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    a, b, c, d = make_secret(), make_secret(), make_azure_secret(), make_secret()
    yml = encrypt(f"openai:\n  prod: {a}\n", "secrets/prod.sops.yaml")
    jsn = encrypt(json.dumps({"team": {"qa": {"key": b}}}), "secrets/s.json", "json")
    env = encrypt(f"AZURE_KEY={c}\n", "secrets/s.env", "dotenv")
    ini = encrypt(f"[vllm]\ntoken = {d}\n", "secrets/s.ini", "ini")
    referrer = tmp_path / "keys/k.yaml"
    cfg = config(
        key("a", from_file(referrer, yml, "openai.prod")),
        key("b", from_file(referrer, jsn, "team.qa.key")),
        key("c", from_file(referrer, env, "AZURE_KEY")),
        key("d", from_file(referrer, ini, "vllm.token")),
    )
    result = keysource.resolve_secrets(cfg)
    assert [revealed(result, n) for n in "abcd"] == [a, b, c, d]
    assert_clean(result)


def test_from_file_path_is_relative_to_the_referring_file(
    encrypt,  # type: ignore[no-untyped-def]
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    secret = make_secret()
    encrypt(f"openai:\n  prod: {secret}\n", "secrets/shared.sops.yaml")
    monkeypatch.chdir(REPO)  # somewhere the relative path does not exist
    ref = from_file(
        tmp_path / "keys/k.yaml", "../secrets/shared.sops.yaml", "openai.prod"
    )
    result = keysource.resolve_secrets(config(key("k", ref)))
    assert revealed(result, "k") == secret


def test_from_env() -> None:
    secret = make_secret()
    cfg = config(key("ci", from_env("OPENAI_CI_KEY")))
    result = keysource.resolve_secrets(cfg, env={"OPENAI_CI_KEY": f"  {secret}\n"})
    assert revealed(result, "ci") == secret


@pytest.mark.parametrize(
    ("env", "words"), [({}, "is not set"), ({"V": " "}, "is empty")]
)
def test_from_env_missing_names_variable_and_place(
    env: dict[str, str], words: str
) -> None:
    result = keysource.resolve_secrets(config(key("ci", from_env("V"))), env=env)
    err = result["ci"]
    # Missing in this environment, not wrong in the files: exit 3, like a
    # missing decryption key.
    assert isinstance(err, SecretUnavailableError)
    assert err.exit_code == EXIT_UNAVAILABLE
    assert "V" in str(err) and words in str(err) and "keys/ci.yaml:7:11" in str(err)
    # The caller prefixes the key's name; the message must not repeat it.
    assert "ci" not in err.message.split()
    assert str(err).count("(") == 1, "no nested parentheses in the hint"


def test_from_env_defaults_to_process_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    secret = make_secret()
    monkeypatch.setenv("BYOK_TEST_KEY", secret)
    result = keysource.resolve_secrets(config(key("ci", from_env("BYOK_TEST_KEY"))))
    assert revealed(result, "ci") == secret


# -- behaviour ---------------------------------------------------------------------


def test_each_file_is_decrypted_once(
    encrypt,  # type: ignore[no-untyped-def]
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    a, b = make_secret(), make_secret()
    shared = encrypt(f"openai:\n  a: {a}\n  b: {b}\n", "secrets/shared.sops.yaml")
    calls: list[Path] = []
    real = sops.decrypt

    def counting(path: Path, *, timeout: float = 30.0) -> bytes:
        calls.append(path)
        return real(path, timeout=timeout)

    monkeypatch.setattr(sops, "decrypt", counting)
    referrer = tmp_path / "keys/k.yaml"
    cfg = config(
        key("a", from_file(referrer, shared, "openai.a")),
        key("b", from_file(referrer, shared, "openai.b")),
    )
    result = keysource.resolve_secrets(cfg)
    assert (revealed(result, "a"), revealed(result, "b")) == (a, b)
    assert calls == [shared]


def test_values_are_stripped(encrypt) -> None:  # type: ignore[no-untyped-def]
    secret = make_secret()
    path = encrypt(f"apiVersion: byok/v1\nspec:\n  apiKey: |\n    {secret}\n", "k.yaml")
    result = keysource.resolve_secrets(config(key("k", inline(path))))
    assert revealed(result, "k") == secret


def test_one_bad_key_does_not_hide_the_others(
    encrypt,  # type: ignore[no-untyped-def]
    other_age_identity: AgeIdentity,
    tmp_path: Path,
) -> None:
    good = make_secret()
    ok_path = encrypt(key_doc("good", good), "keys/good.yaml", regex="^apiKey$")
    foreign = sops_encrypt(
        key_doc("foreign", make_secret()),
        tmp_path / "keys/foreign.yaml",
        recipients=other_age_identity.recipient,
    )
    plain = tmp_path / "keys/plain.yaml"
    plain.write_text("apiVersion: byok/v1\nkind: Key\n")
    cfg = config(
        key("good", inline(ok_path)),
        key("foreign", inline(foreign)),
        key("plain", inline(plain)),
    )
    result = keysource.resolve_secrets(cfg, max_workers=2)
    assert revealed(result, "good") == good
    err = result["foreign"]
    assert isinstance(err, DecryptionKeyError) and err.exit_code == EXIT_UNAVAILABLE
    assert os.fspath(foreign) in str(err) and other_age_identity.recipient in str(err)
    assert isinstance(result["plain"], NotEncryptedError)
    assert_clean(result)


@pytest.mark.parametrize(
    ("plain", "dotted", "words"),
    [
        (
            "openai:\n  prod: {value}\n",
            "openai.staging",
            "'openai.staging' was not found",
        ),
        ("openai:\n  prod: {value}\n", "openai", "a structure, not a single value"),
        ("openai:\n  prod: ''\n  x: {value}\n", "openai.prod", "is empty"),
    ],
)
def test_from_file_bad_reference(
    encrypt,  # type: ignore[no-untyped-def]
    tmp_path: Path,
    plain: str,
    dotted: str,
    words: str,
) -> None:
    path = encrypt(plain.format(value=make_secret()), "secrets/s.sops.yaml")
    referrer = tmp_path / "keys/k.yaml"
    result = keysource.resolve_secrets(
        config(key("k", from_file(referrer, path, dotted)))
    )
    err = result["k"]
    assert isinstance(err, SecretNotFoundError), err
    assert words in str(err) and f"{referrer}:9:11" in str(err)
    assert err.exit_code == EXIT_INVALID  # a wrong path in the files: exit 1
    assert str(err).count("(") == 1, "no nested parentheses in the hint"
    assert_clean(result)


def test_inline_document_without_api_key(encrypt) -> None:  # type: ignore[no-untyped-def]
    path = encrypt(key_doc("k", make_secret()), "k.yaml", regex="^apiKey$")
    result = keysource.resolve_secrets(config(key("k", inline(path, doc_index=4))))
    err = result["k"]
    assert isinstance(err, SecretNotFoundError) and "document 5" in str(err)


def test_example_repository_resolves(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "SOPS_AGE_KEY_FILE", os.fspath(REPO / "examples/demo-age-key.txt")
    )
    base = REPO / "examples/config/keys"
    cfg = config(
        key("openai-prod", inline(base / "openai-prod.yaml")),
        key("azure-eastus", inline(base / "azure-eastus.yaml")),
        key(
            "openai-batch",
            from_file(
                base / "openai-batch.yaml",
                "../secrets/shared.sops.yaml",
                "openai.batch",
            ),
        ),
    )
    result = keysource.resolve_secrets(cfg)
    assert revealed(result, "openai-prod").startswith("sk-proj-DEMO-ONLY-openai-prod-")
    assert revealed(result, "azure-eastus") == "00000000demo00000000000000000001"
    assert revealed(result, "openai-batch").startswith("sk-proj-DEMO-ONLY-openai-batch")
