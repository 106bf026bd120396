"""``validate_paths`` and ``byok validate``: the Config it builds, the CLI,
exit codes, secret hygiene in every output format, and import weight."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from byok_reconcile.cli import cli
from byok_reconcile.commands.validate import run
from byok_reconcile.schema import SCHEMA_FILES, load_schema
from byok_reconcile.validate import host_allowed, validate_paths
from tests import canary
from tests.fixtures.sops import sops_encrypt

KEY = """\
apiVersion: byok/v1
kind: Key
metadata:
  name: {name}
spec:
  provider: openai
  apiKey: {api_key}
  models: [gpt-4o]
"""
AZURE = """\
apiVersion: byok/v1
kind: Key
metadata:
  name: azure-eastus
  labels: {{team: qa}}
spec:
  provider: azure_openai
  apiKey: {api_key}
  azure_openai:
    endpoint: https://contoso.openai.azure.com/
    apiVersion: "2024-10-21"
    deployments:
      gpt4o-prod: {{model: gpt-4o}}
"""
MAPPING = """\
apiVersion: byok/v1
kind: FeatureMapping
metadata: {name: default}
spec:
  features:
    test-generation: {key: openai-prod, model: gpt-4o}
"""


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _key(name: str = "openai-prod", api_key: str = "{fromEnv: OPENAI_KEY}") -> str:
    return KEY.format(name=name, api_key=api_key)


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    _write(tmp_path / "conf" / "keys" / "openai.yaml", _key())
    _write(tmp_path / "conf" / "features.yaml", MAPPING)
    return tmp_path / "conf"


def test_config_from_env_key(config: Path) -> None:
    result = validate_paths(["conf"])
    assert result.problems == ()
    assert result.config is not None
    key = result.config.keys["openai-prod"]
    assert key.secret.kind == "env" and key.secret.env == "OPENAI_KEY"
    assert key.settings == {"baseUrl": "https://api.openai.com/v1"}
    assert key.location.file == "conf/keys/openai.yaml"
    feature = result.config.features["test-generation"]
    assert (feature.key, feature.model, feature.deployment) == (
        "openai-prod",
        "gpt-4o",
        None,
    )
    assert feature.location.line == 6


def test_sources_have_display_paths_and_digests(config: Path) -> None:
    result = validate_paths([str(config.resolve())])
    assert result.config is not None
    shown = [s.display for s in result.config.sources]
    assert shown == ["conf/features.yaml", "conf/keys/openai.yaml"]
    for source in result.config.sources:
        assert source.path.is_absolute()
        assert source.sha256 == hashlib.sha256(source.path.read_bytes()).hexdigest()


def test_a_file_given_twice_is_read_once(config: Path) -> None:
    result = validate_paths(["conf", "conf/keys/openai.yaml", "./conf"])
    assert len(result.files) == 2


def test_hidden_and_sops_config_files_are_skipped(config: Path) -> None:
    _write(config / ".sops.yaml", "creation_rules: [{path_regex: x}]\n")
    _write(config / ".hidden" / "k.yaml", "not: byok\n")
    _write(config / ".draft.yaml", "not: byok\n")
    _write(config / "notes.txt", "not: byok\n")
    result = validate_paths(["conf"])
    assert result.problems == ()
    assert len(result.files) == 2


def test_inline_sops_counts_every_document(
    config: Path, age_identity: Any, tmp_path: Path
) -> None:
    secret_a, secret_b = canary.make_secret(), canary.make_azure_secret()
    plain = (
        "---\n"
        + _key("first-key", secret_a)
        + "---\n---\n"
        + AZURE.format(api_key=secret_b)
    )
    target = config / "keys" / "multi.yaml"
    sops_encrypt(plain, target, recipients=age_identity.recipient)
    (config / "keys" / "openai.yaml").unlink()
    _write(config / "features.yaml", MAPPING.replace("openai-prod", "first-key"))
    result = validate_paths(["conf"])
    assert result.config is not None, [str(p) for p in result.problems]
    first = result.config.keys["first-key"].secret
    azure = result.config.keys["azure-eastus"]
    assert (first.kind, first.path, first.doc_index) == ("inline", target, 0)
    assert (azure.secret.kind, azure.secret.doc_index) == ("inline", 2)
    assert azure.settings == {
        "endpoint": "https://contoso.openai.azure.com",
        "apiVersion": "2024-10-21",
    }
    assert azure.deployments == {"gpt4o-prod": "gpt-4o"}
    assert azure.labels == {"team": "qa"}
    import yaml

    docs = list(yaml.safe_load_all(target.read_text()))
    assert docs[2]["metadata"]["name"] == "azure-eastus"


def test_from_file_resolves_relative_to_the_referring_file(
    config: Path, age_identity: Any
) -> None:
    secrets = config / "secrets" / "prod.sops.yaml"
    secrets.parent.mkdir()
    sops_encrypt(
        f"openai:\n  prod: {canary.make_secret()}\n",
        secrets,
        recipients=age_identity.recipient,
        encrypted_regex=None,
    )
    ref = "{fromFile: ../secrets/prod.sops.yaml, key: openai.prod}"
    _write(config / "keys" / "openai.yaml", _key(api_key=ref))
    result = validate_paths(["conf"])
    assert result.config is not None, [str(p) for p in result.problems]
    secret = result.config.keys["openai-prod"].secret
    assert (secret.kind, secret.path, secret.key) == ("file", secrets, "openai.prod")
    assert "conf/secrets/prod.sops.yaml" in [s.display for s in result.files]


def test_from_file_outside_the_folder_joins_the_sources(
    config: Path, age_identity: Any, tmp_path: Path
) -> None:
    secrets = tmp_path / "vault" / "prod.env"
    secrets.parent.mkdir()
    sops_encrypt(
        f"OPENAI={canary.make_secret()}\n",
        secrets,
        recipients=age_identity.recipient,
        input_type="dotenv",
        encrypted_regex=None,
    )
    ref = "{fromFile: ../../vault/prod.env, key: OPENAI}"
    _write(config / "keys" / "openai.yaml", _key(api_key=ref))
    result = validate_paths(["conf"])
    assert result.config is not None, [str(p) for p in result.problems]
    assert "vault/prod.env" in [s.display for s in result.config.sources]


def test_policy_hosts_reach_the_config(config: Path) -> None:
    _write(
        config / "policy.yaml",
        "apiVersion: byok/v1\nkind: Policy\nmetadata: {name: p}\n"
        "spec:\n  allowedHosts: ['*.example.com', llm.internal, '127.0.0.1:8080']\n",
    )
    result = validate_paths(["conf"])
    assert result.config is not None
    assert result.config.allowed_hosts == (
        "*.example.com",
        "127.0.0.1:8080",
        "llm.internal",
    )


@pytest.mark.parametrize(
    ("host", "port", "allowed"),
    [
        ("api.openai.com", None, True),
        ("a.example.com", None, True),
        ("example.com", None, False),
        ("evil-example.com", None, False),
        ("127.0.0.1", 8080, True),
        ("127.0.0.1", 9090, False),
        ("LLM.INTERNAL", 443, True),
    ],
)
def test_host_patterns(host: str, port: int | None, allowed: bool) -> None:
    patterns = ("api.openai.com", "*.example.com", "127.0.0.1:8080", "llm.internal")
    assert host_allowed(host, port, patterns) is allowed


def test_missing_path_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    result = validate_paths([tmp_path / "nope"])
    assert [p.code for p in result.problems] == ["path"]
    assert result.config is None


def test_problems_are_sorted(config: Path) -> None:
    _write(config / "a.yaml", "a: [\n")
    _write(config / "z.yaml", "b: {\n")
    files = [p.file for p in validate_paths(["conf"]).problems]
    assert files == sorted(files)


# -- the command -------------------------------------------------------------------


def test_run_summary_valid(config: Path) -> None:
    report = run(["conf"])
    assert report.exit_code == 0
    assert report.summary == "2 files, 1 key, 1 feature: valid"


def test_run_summary_errors(config: Path) -> None:
    _write(config / "bad.yaml", "a: [\n")
    _write(config / "features.yaml", MAPPING.replace("gpt-4o}", "gpt-5}"))
    report = run(["conf"])
    assert report.exit_code == 1
    assert report.summary == "2 errors in 2 files"


def test_cli_exit_codes(config: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(cli, ["validate", "conf"]).exit_code == 0
    assert runner.invoke(cli, ["validate"]).exit_code == 2
    assert runner.invoke(cli, ["validate", "missing-dir"]).exit_code == 2
    assert runner.invoke(cli, ["validate", "--format", "xml", "conf"]).exit_code == 2
    _write(config / "features.yaml", MAPPING.replace("openai-prod", "nope"))
    result = runner.invoke(cli, ["validate", "conf"])
    assert result.exit_code == 1
    assert "conf/features.yaml:6:" in result.output
    assert "unknown-key-ref" not in result.output or "nope" in result.output


def test_warnings_do_not_fail(config: Path) -> None:
    compat = _key().replace(
        "provider: openai\n",
        "provider: openai_compatible\n"
        "  openai_compatible: {baseUrl: 'https://llm.example.com/v1'}\n",
    )
    _write(config / "keys" / "openai.yaml", compat)
    result = CliRunner().invoke(cli, ["validate", "conf"])
    assert result.exit_code == 0, result.output
    assert "warning" in result.output and "llm.example.com" in result.output


@pytest.mark.parametrize("fmt", ["text", "json", "github", "markdown"])
def test_plaintext_key_never_reaches_output(config: Path, fmt: str) -> None:
    bait = canary.make_bait()
    _write(config / "keys" / "openai.yaml", _key(api_key=bait))
    result = CliRunner().invoke(cli, ["validate", "--format", fmt, "conf"])
    assert result.exit_code == 1
    assert "plaintext" in result.output.lower() or "plaintext" in str(result.output)
    canary.assert_no_leak(result.output, f"{fmt} output")
    assert bait[-12:] not in result.output and bait[:12] not in result.output


@pytest.mark.parametrize(
    "api_key",
    [
        "'{bait}'",
        "{{fromEnv: X, '{bait}': 1}}",
        "{{'{bait}': 1, '{bait}': 2}}",
        "[{bait}]",
        "{{fromFile: '{bait}'}}",
        "{{fromFile: '{bait}', key: x}}",
        "{{fromEnv: '{bait}'}}",
        "{{key: '{bait}'}}",
    ],
)
def test_secret_shaped_mistakes_never_echo_the_value(
    config: Path, api_key: str
) -> None:
    bait = canary.make_bait()
    _write(config / "keys" / "openai.yaml", _key(api_key=api_key.format(bait=bait)))
    result = CliRunner().invoke(cli, ["validate", "--format", "json", "conf"])
    assert result.exit_code == 1
    canary.assert_no_leak(result.output, "json output")


def test_subprocess_validate(config: Path) -> None:
    bait = canary.make_bait()
    _write(config / "keys" / "leak.yaml", _key("leaky", bait))
    done = subprocess.run(
        [sys.executable, "-m", "byok_reconcile", "validate", "conf"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "NO_COLOR": "1"},
    )
    canary.assert_no_leak(done.stdout + done.stderr, "subprocess output")
    assert done.returncode == 1
    assert "conf/keys/leak.yaml:7:11: error: plaintext API key" in done.stdout
    assert "Traceback" not in done.stderr


def test_validate_imports_nothing_heavy(config: Path) -> None:
    code = (
        "import sys\n"
        "from byok_reconcile.cli import cli\n"
        "try:\n"
        "    cli.main(['validate', 'conf'], prog_name='byok')\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = ('openai', 'sqlalchemy', 'cryptography', 'httpx', 'psycopg')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stdout + done.stderr


def test_json_output_lists_features(config: Path) -> None:
    result = CliRunner().invoke(cli, ["validate", "--format", "json", "conf"])
    body = json.loads(result.output)
    assert body["data"]["features"]["test-generation"] == {
        "key": "openai-prod",
        "model": "gpt-4o",
        "provider": "openai",
    }


# -- the schemas ---------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(SCHEMA_FILES))
def test_schemas_are_valid_and_documented(kind: str) -> None:
    from jsonschema import Draft202012Validator

    schema = load_schema(kind)
    Draft202012Validator.check_schema(schema)
    assert schema["$id"].endswith(SCHEMA_FILES[kind])
    missing = list(_undocumented(schema, "$"))
    assert not missing, missing


def _undocumented(node: Any, where: str) -> list[str]:
    found: list[str] = []
    if isinstance(node, dict):
        for name, sub in node.get("properties", {}).items():
            if isinstance(sub, dict) and "description" not in sub and "$ref" not in sub:
                found.append(f"{where}.{name}")
        for name, sub in node.items():
            if name != "if":  # conditions, not properties a user writes
                found += _undocumented(sub, f"{where}.{name}")
    elif isinstance(node, list):
        for i, sub in enumerate(node):
            found += _undocumented(sub, f"{where}[{i}]")
    return found


def test_a_fully_encrypted_key_file_says_so(config: Path, age_identity: Any) -> None:
    target = config / "keys" / "openai.yaml"
    sops_encrypt(
        _key(api_key=canary.make_secret()),
        target,
        recipients=age_identity.recipient,
        encrypted_regex=None,
    )
    problems = validate_paths(["conf"]).problems
    mine = [p for p in problems if p.file.endswith("openai.yaml")]
    assert [p.code for p in mine] == ["api-version"]
    assert "whole document is encrypted" in mine[0].message
