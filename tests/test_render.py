"""The ResolvedMapping artifact, built from hand-made configurations."""

from __future__ import annotations

import json
import os
from pathlib import Path

import jsonschema
import pytest

from byok_reconcile import render
from byok_reconcile.model import (
    Config,
    FeatureSpec,
    KeySpec,
    Location,
    SecretRef,
    SourceFile,
)
from byok_reconcile.results import (
    INVALID_KEY,
    MODEL_UNAVAILABLE,
    VALID,
    KeyResult,
    TargetResult,
)
from byok_reconcile.secret import Secret
from tests.canary import assert_no_leak, make_azure_secret, make_secret

SCHEMA_PATH = Path(__file__).parent.parent / "schemas/resolved-mapping.schema.json"


def _validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(SCHEMA_PATH.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def _config(root: Path) -> Config:
    keys_file = root / "keys.yaml"
    openai = KeySpec(
        name="openai-prod",
        provider="openai",
        secret=SecretRef("env", Location("config/keys.yaml", 8, 11), env="OAI_KEY"),
        settings={"baseUrl": "https://api.openai.com/v1", "organization": "org-a"},
        models=("gpt-4o-mini", "gpt-4o"),
    )
    azure = KeySpec(
        name="azure-eastus",
        provider="azure_openai",
        secret=SecretRef(
            "file",
            Location("config/keys.yaml", 20, 11),
            path=root / "secrets" / "shared.sops.yaml",
            key="azure.eastus",
        ),
        settings={
            "endpoint": "https://contoso-eastus.openai.azure.com",
            "apiVersion": "2024-10-21",
        },
        deployments={"gpt4o-prod": "gpt-4o", "embed-prod": "text-embedding-3-small"},
    )
    local = KeySpec(
        name="vllm",
        provider="openai_compatible",
        secret=SecretRef("inline", Location("config/vllm.yaml", 6, 11), path=root),
        settings={"baseUrl": "http://127.0.0.1:8000/v1"},
        models=("llama-3.1-8b",),
    )
    features = {
        "test-generation": FeatureSpec("test-generation", "openai-prod", "gpt-4o"),
        "copilot": FeatureSpec("copilot", "azure-eastus", deployment="gpt4o-prod"),
        "triage": FeatureSpec("triage", "vllm", "llama-3.1-8b"),
    }
    sources = (
        SourceFile(root / "vllm.yaml", "config/vllm.yaml", "b" * 64),
        SourceFile(keys_file, "config/keys.yaml", "a" * 64),
    )
    keys = {k.name: k for k in (openai, azure, local)}
    return Config(keys=keys, features=features, sources=sources)


def _results() -> dict[str, KeyResult]:
    return {
        "openai-prod": KeyResult(
            "openai-prod",
            "openai",
            VALID,
            fingerprint="sha256:0123456789ab",
            detail="listed 2 models",
            request_id="req_abc",
            targets=(TargetResult("gpt-4o", VALID), TargetResult("gpt-4o-mini", VALID)),
        ),
        "azure-eastus": KeyResult(
            "azure-eastus",
            "azure_openai",
            MODEL_UNAVAILABLE,
            targets=(TargetResult("gpt4o-prod", MODEL_UNAVAILABLE, "gone"),),
        ),
        "vllm": KeyResult("vllm", "openai_compatible", INVALID_KEY, request_id="x"),
    }


FINGERPRINTS = {
    "openai-prod": "sha256:0123456789ab",
    "azure-eastus": "sha256:ba9876543210",
    "vllm": "sha256:aaaaaaaaaaaa",
}


def test_artifact_shape(tmp_path: Path) -> None:
    art = render.build_artifact(_config(tmp_path), _results(), FINGERPRINTS, True)

    assert art["apiVersion"] == "byok/v1"
    assert art["kind"] == "ResolvedMapping"
    assert art["check"] == {
        "performed": True,
        "deep": False,
        "verdicts": {
            "azure-eastus": MODEL_UNAVAILABLE,
            "openai-prod": VALID,
            "vllm": INVALID_KEY,
        },
    }
    assert [f["path"] for f in art["source"]["files"]] == [
        "config/keys.yaml",
        "config/vllm.yaml",
    ]
    assert art["source"]["digest"] == _config(tmp_path).digest()


def test_key_entries(tmp_path: Path) -> None:
    art = render.build_artifact(_config(tmp_path), _results(), FINGERPRINTS, True)
    openai, azure = art["keys"]["openai-prod"], art["keys"]["azure-eastus"]

    assert openai["connection"] == {
        "baseUrl": "https://api.openai.com/v1",
        "organization": "org-a",
    }
    assert openai["models"] == ["gpt-4o", "gpt-4o-mini"]
    assert openai["fingerprint"] == "sha256:0123456789ab"
    assert openai["check"] == {
        "verdict": VALID,
        "working": True,
        "targets": {"gpt-4o": VALID, "gpt-4o-mini": VALID},
    }
    assert azure["deployments"] == {
        "embed-prod": {"model": "text-embedding-3-small"},
        "gpt4o-prod": {"model": "gpt-4o"},
    }
    assert azure["check"]["working"] is False
    assert "models" not in azure


def test_feature_entries_carry_client_settings(tmp_path: Path) -> None:
    art = render.build_artifact(_config(tmp_path), _results(), FINGERPRINTS, True)
    feats = art["features"]

    assert feats["test-generation"] == {
        "key": "openai-prod",
        "provider": "openai",
        "model": "gpt-4o",
        "connection": {"baseUrl": "https://api.openai.com/v1", "organization": "org-a"},
        "secretRef": {"kind": "env", "env": "OAI_KEY"},
    }
    assert feats["copilot"]["deployment"] == "gpt4o-prod"
    assert feats["copilot"]["model"] == "gpt-4o"
    assert feats["copilot"]["connection"]["apiVersion"] == "2024-10-21"
    assert feats["copilot"]["secretRef"] == {
        "kind": "file",
        "file": "config/secrets/shared.sops.yaml",
        "key": "azure.eastus",
    }
    assert feats["triage"]["secretRef"] == {
        "kind": "inline",
        "file": "config/vllm.yaml",
    }


def test_openai_default_base_url_filled(tmp_path: Path) -> None:
    config = _config(tmp_path)
    spec = config.keys["openai-prod"]
    bare = KeySpec(spec.name, spec.provider, spec.secret, {}, spec.models)
    config = Config({**config.keys, "openai-prod": bare}, config.features)
    art = render.build_artifact(config, None, {}, False)
    conn = art["keys"]["openai-prod"]["connection"]
    assert conn == {"baseUrl": render.OPENAI_DEFAULT_BASE_URL}


def test_no_check_is_recorded(tmp_path: Path) -> None:
    art = render.build_artifact(_config(tmp_path), None, FINGERPRINTS, False)
    assert art["check"] == {"performed": False, "deep": False, "verdicts": {}}
    assert all(k["check"] is None for k in art["keys"].values())
    assert art["keys"]["vllm"]["fingerprint"] == "sha256:aaaaaaaaaaaa"
    _validator().validate(art)


def test_deep_is_recorded_only_when_checked(tmp_path: Path) -> None:
    config = _config(tmp_path)
    assert render.build_artifact(config, {}, {}, True, deep=True)["check"]["deep"]
    assert not render.build_artifact(config, None, {}, False, deep=True)["check"][
        "deep"
    ]


def test_valid_against_schema(tmp_path: Path) -> None:
    art = render.build_artifact(_config(tmp_path), _results(), FINGERPRINTS, True)
    _validator().validate(art)


def test_schema_rejects_a_secret_field(tmp_path: Path) -> None:
    art = render.build_artifact(_config(tmp_path), _results(), FINGERPRINTS, True)
    art["keys"]["vllm"]["apiKey"] = "sk-nope"
    with pytest.raises(jsonschema.ValidationError):
        _validator().validate(art)


def test_schema_describes_every_property() -> None:
    schema = json.loads(SCHEMA_PATH.read_text())
    missing: list[str] = []

    def walk(node: object, where: str) -> None:
        if isinstance(node, dict):
            for name, sub in node.get("properties", {}).items():
                if isinstance(sub, dict) and not (
                    "description" in sub or "$ref" in sub
                ):
                    missing.append(f"{where}.{name}")
            for key, sub in node.items():
                walk(sub, f"{where}.{key}")
        elif isinstance(node, list):
            for i, sub in enumerate(node):
                walk(sub, f"{where}[{i}]")

    walk(schema, "$")
    assert not missing


def test_dump_is_deterministic(tmp_path: Path) -> None:
    config = _config(tmp_path)
    first = render.dump_artifact(render.build_artifact(config, _results(), {}, True))
    # The same records in another order give the same bytes.
    reordered = Config(
        dict(reversed(list(config.keys.items()))),
        dict(reversed(list(config.features.items()))),
        tuple(reversed(config.sources)),
    )
    results = dict(reversed(list(_results().items())))
    second = render.dump_artifact(render.build_artifact(reordered, results, {}, True))
    assert first == second
    assert first.endswith(b"}\n")
    assert str(tmp_path).encode() not in first


def test_artifact_does_not_depend_on_checkout_path(tmp_path: Path) -> None:
    a = render.build_artifact(_config(tmp_path / "a"), _results(), FINGERPRINTS, True)
    b = render.build_artifact(_config(tmp_path / "b"), _results(), FINGERPRINTS, True)
    assert render.dump_artifact(a) == render.dump_artifact(b)


def test_request_ids_and_details_stay_out(tmp_path: Path) -> None:
    data = render.dump_artifact(
        render.build_artifact(_config(tmp_path), _results(), FINGERPRINTS, True)
    )
    assert b"req_abc" not in data
    assert b"listed 2 models" not in data


def test_no_secret_in_artifact(tmp_path: Path) -> None:
    secrets = {"openai-prod": Secret(make_secret()), "vllm": Secret(make_secret())}
    secrets["azure-eastus"] = Secret(make_azure_secret())
    prints = {name: s.fingerprint for name, s in secrets.items()}
    data = render.dump_artifact(
        render.build_artifact(_config(tmp_path), _results(), prints, True)
    )
    assert_no_leak(data, "artifact")
    for secret in secrets.values():
        assert secret.last4.encode() not in data


def test_portable_rewrites_absolute_displays(tmp_path: Path) -> None:
    root = tmp_path / "work" / "config"
    base = _config(root)
    moved = {"config/keys.yaml": str(root / "keys.yaml")}
    sources = tuple(
        SourceFile(s.path, moved.get(s.display, str(root / "vllm.yaml")), s.sha256)
        for s in base.sources
    )
    keys = dict(base.keys)
    loc = Location(str(root / "keys.yaml"), 8, 11)
    spec = keys["openai-prod"]
    keys["openai-prod"] = KeySpec(
        spec.name, spec.provider, SecretRef("env", loc, env="OAI_KEY"), spec.settings
    )
    config = Config(keys, base.features, sources)

    fixed = render.portable(config, [str(root)])
    assert sorted(s.display for s in fixed.sources) == [
        "config/keys.yaml",
        "config/vllm.yaml",
    ]
    assert fixed.keys["openai-prod"].secret.location.file == "config/keys.yaml"
    assert fixed.digest() == base.digest()


def test_portable_keeps_displays_already_relative_to_the_root(
    tmp_path: Path,
) -> None:
    config = _config(tmp_path / "config")
    assert render.portable(config, [str(tmp_path / "config")]) is config


def test_stable_root_is_the_git_work_tree(tmp_path: Path) -> None:
    (tmp_path / "repo" / "deploy" / "config").mkdir(parents=True)
    (tmp_path / "repo" / ".git").write_text("gitdir: elsewhere\n")  # a worktree
    config = tmp_path / "repo" / "deploy" / "config"
    assert render.stable_root([config]) == tmp_path / "repo"


def test_stable_root_without_git_is_the_common_parent(tmp_path: Path) -> None:
    a, b = tmp_path / "x" / "keys", tmp_path / "x" / "features"
    assert render.stable_root([a, b]) == tmp_path / "x"
    assert render.stable_root([a / "k.yaml"]) == a


def test_write_artifact_atomic_and_mode(tmp_path: Path) -> None:
    target = tmp_path / "out.json"
    old_umask = os.umask(0o077)
    try:
        render.write_artifact(b"{}\n", target)
    finally:
        os.umask(old_umask)
    assert target.read_bytes() == b"{}\n"
    assert target.stat().st_mode & 0o777 == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_write_artifact_failure_keeps_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "out.json"
    target.write_bytes(b"old\n")

    def boom(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(render.os, "replace", boom)
    with pytest.raises(OSError):
        render.write_artifact(b"new\n", target)
    assert target.read_bytes() == b"old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]
