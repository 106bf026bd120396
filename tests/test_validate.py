"""``validate_paths`` and ``byok validate``: the Config it builds, the CLI,
exit codes, secret hygiene in every output format, and import weight."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from byok_reconcile.cli import cli
from byok_reconcile.commands.validate import run
from byok_reconcile.errors import ConfigError, SecretUnavailableError
from byok_reconcile.keyshape import HIDDEN, looks_like_key, redact
from byok_reconcile.model import Config
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


# -- findings of the attack on validate -------------------------------------------


def _byok(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """``byok`` in a child process: a hang, a crash or a traceback shows."""
    done = subprocess.run(
        [sys.executable, "-m", "byok_reconcile", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "NO_COLOR": "1"},
    )
    canary.assert_no_leak(done.stdout + done.stderr, "subprocess output")
    assert "Traceback" not in done.stderr, done.stderr
    return done


def _file_key(target: str) -> str:
    return _key(api_key=f"{{fromFile: '{target}', key: a}}")


@pytest.mark.parametrize(
    ("name", "content"),
    [("deep.sops.yaml", "[" * 30_000), ("deep.sops.json", "[" * 1_000)],
)
def test_a_deeply_nested_from_file_target_is_not_a_crash(
    config: Path, name: str, content: str
) -> None:
    _write(config / "keys" / name, content)
    _write(config / "keys" / "openai.yaml", _file_key(name))
    done = _byok("validate", "conf")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "is not sops-encrypted" in done.stdout


@pytest.mark.parametrize(
    ("suffix", "message"),
    [("x" * 300, "cannot be read: File name too long"), ("/x", "does not exist")],
)
def test_from_file_os_errors_are_reported_without_the_path(
    config: Path, suffix: str, message: str
) -> None:
    bait = canary.make_bait()
    _write(config / "keys" / "openai.yaml", _file_key(bait + suffix))
    done = _byok("validate", "conf")
    assert done.returncode == 1
    assert f"the fromFile target {message}" in done.stdout, done.stdout


def test_an_unreadable_from_file_target_says_so(config: Path) -> None:
    _write(config / "keys" / "plain.txt", "a: 1\n")
    _write(config / "keys" / "openai.yaml", _file_key("plain.txt/inside"))
    done = _byok("validate", "conf")
    assert "the fromFile target cannot be read: Not a directory" in done.stdout


def test_a_huge_from_file_target_is_not_read(config: Path) -> None:
    with open(config / "keys" / "big.sops.yaml", "wb") as handle:
        handle.truncate(1 << 30)  # sparse: 1 GiB that takes no disk
    _write(config / "keys" / "openai.yaml", _file_key("big.sops.yaml"))
    done = _byok("validate", "conf")
    assert "fromFile 'big.sops.yaml' is larger than 16 MiB" in done.stdout


@pytest.mark.parametrize("special", ["fifo", "zero"])
def test_special_files_are_refused_not_read(config: Path, special: str) -> None:
    path = config / "a.yaml"
    if special == "fifo":
        os.mkfifo(path)
    else:
        path.symlink_to("/dev/zero")
    for args in (["conf"], ["conf/a.yaml"]):
        done = _byok("validate", *args, timeout=30)
        assert done.returncode == 1
        assert "conf/a.yaml:1:1: error: the file is not a regular file" in done.stdout


def test_a_file_over_the_size_cap_fails_fast(config: Path) -> None:
    with open(config / "big.yaml", "wb") as handle:
        handle.truncate(17 * 1024 * 1024)
    result = validate_paths(["conf"])
    (problem,) = result.errors
    assert (problem.line, problem.col) == (1, 1)
    assert "larger than 16 MiB" in problem.message


def test_symlinked_folders_are_followed_once(config: Path, tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    _write(shared / "k.yaml", _key("shared-key"))
    (config / "linked").symlink_to(shared)
    (shared / "loop").symlink_to(shared)  # a loop must end
    (config / "keys" / "back").symlink_to(config)
    result = validate_paths(["conf"])
    assert result.config is not None, result.problems
    assert sorted(result.config.keys) == ["openai-prod", "shared-key"]


def test_an_empty_folder_is_an_error(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    _write(tmp_path / "empty" / ".hidden.yaml", "a: 1\n")
    result = run(["empty"])
    assert result.exit_code == 1
    assert [p.message for p in result.problems] == ["no *.yaml or *.yml files in empty"]


def test_an_unreadable_folder_is_an_error(
    config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = os.scandir
    locked = config / "locked"
    _write(locked / "k.yaml", _key("locked-key"))

    def scandir(path: Any) -> Any:
        if Path(path) == Path("conf/locked"):
            raise PermissionError(13, "Permission denied")
        return real(path)

    # Tests run as root, for whom chmod 000 locks nothing.
    monkeypatch.setattr(os, "scandir", scandir)
    result = validate_paths(["conf"])
    assert result.config is None
    messages = [str(p) for p in result.errors]
    assert messages == [
        "conf/locked: error: the folder cannot be read: "
        "Permission denied (check its permissions; its files "
        "were not validated)"
    ]


@pytest.mark.parametrize(
    "env", ["BYOK_STORE_KEY", "SOPS_AGE_KEY", "PATH", "HOME", "AWS_SECRET_ACCESS_KEY"]
)
def test_from_env_naming_own_credentials_warns(config: Path, env: str) -> None:
    _write(config / "keys" / "openai.yaml", _key(api_key=f"{{fromEnv: {env}}}"))
    result = validate_paths(["conf"])
    assert result.config is not None
    (warning,) = result.problems
    assert warning.severity == "warning" and warning.code == "secret-env"
    assert "not a provider key" in warning.message


def test_from_env_naming_a_provider_variable_is_quiet(config: Path) -> None:
    for env in ("OPENAI_API_KEY", "AZURE_OPENAI_API_KEY"):
        _write(config / "keys" / "openai.yaml", _key(api_key=f"{{fromEnv: {env}}}"))
        assert validate_paths(["conf"]).problems == ()


def test_plaintext_hint_is_conditional_on_git(config: Path) -> None:
    _write(config / "keys" / "openai.yaml", _key(api_key=canary.make_bait()))
    (problem,) = validate_paths(["conf"]).errors
    assert "if this file was ever committed" in (problem.hint or "")


CATALOG = """\
apiVersion: byok/v1
kind: FeatureCatalog
metadata: {name: app}
spec:
  features:
    test-generation: {description: d, required: true}
"""


def test_an_invalid_mapping_does_not_also_unmap_its_features(config: Path) -> None:
    _write(config / "catalog.yaml", CATALOG)
    _write(config / "features.yaml", MAPPING.replace("name: default", "name: Bad_"))
    codes = [p.code for p in validate_paths(["conf"]).errors]
    assert codes == ["schema"]


def test_byok_allow_hosts_silences_the_host_warning(
    config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    compat = KEY.replace("provider: openai", "provider: openai_compatible").replace(
        "models:",
        "openai_compatible: {{baseUrl: 'https://llm.example.com/v1'}}\n  models:",
    )
    _write(
        config / "keys" / "openai.yaml",
        compat.format(name="openai-prod", api_key="{fromEnv: K}"),
    )
    (warning,) = validate_paths(["conf"]).problems
    assert "BYOK_ALLOW_HOSTS" in warning.message and "--allow-host" in (
        warning.hint or ""
    )
    monkeypatch.setenv("BYOK_ALLOW_HOSTS", "api.example.org, *.example.com")
    assert validate_paths(["conf"]).problems == ()


def test_did_you_mean_is_capped_but_kept(config: Path) -> None:
    names = [f"feature-{i:04d}" for i in range(100)]
    catalog = CATALOG.replace(
        "    test-generation: {description: d, required: true}\n",
        "".join(f"    {n}: {{description: d}}\n" for n in names),
    )
    _write(config / "catalog.yaml", catalog)
    mapping = MAPPING + "".join(
        f"    featur-{i:04d}: {{key: openai-prod, model: gpt-4o}}\n" for i in range(100)
    )
    _write(config / "features.yaml", mapping)
    hints = [p.hint or "" for p in validate_paths(["conf"]).errors]
    suggested = [h for h in hints if h.startswith("did you mean")]
    assert len(hints) == 101
    assert 1 <= len(suggested) <= 20


@pytest.mark.parametrize("name", ["abc\\n", "abc\\n\\n", "\\nabc"])
def test_a_newline_never_passes_a_name_pattern(config: Path, name: str) -> None:
    _write(config / "keys" / "openai.yaml", _key(name=f'"{name}"'))
    result = validate_paths(["conf"])
    assert result.config is None
    assert any("is not a valid name" in p.message for p in result.errors)


def test_oversized_lists_are_refused_by_the_schema(config: Path) -> None:
    models = ", ".join(f"m{i}" for i in range(600))
    _write(config / "keys" / "openai.yaml", _key().replace("[gpt-4o]", f"[{models}]"))
    (problem,) = validate_paths(["conf"]).errors
    assert problem.message == "spec.models lists more than 500 entries"


# -- keys pasted where they do not belong (leak hunt) ----------------------------

BENIGN = [
    "gpt-4o-mini-2024-07-18",
    "https://contoso-eastus.openai.azure.com/",
    "https://llm.example.com/openai/deployments/gpt4o/chat/completions",
    "Production key for test generation",
    "2025-04-01-preview",
    "org-9xQ3kL2mN8pR4sT6vW1yZ0aB",
    "proj_AbC123dEf456GhI789jKl",
    "123e4567-e89b-12d3-a456-426614174000",
    "meta-llama/Llama-3.1-70B-Instruct",
    "mistralai/Mixtral-8x7B-Instruct-v0.1",
    "deepseek-ai/DeepSeek-R1-Distill-Qwen-32B",
    "ft:gpt-4o-mini-2024-07-18:my-org:custom-suffix:9abcDEF1",
    "risk-assessment-tool-v2",
    "AZURE_OPENAI_API_KEY_EASTUS2",
    "ENC[AES256_GCM,data:abc=,iv:eA==,tag:eA==,type:str]",
]


@pytest.mark.parametrize("text", BENIGN)
def test_names_models_and_hosts_do_not_look_like_keys(text: str) -> None:
    assert not looks_like_key(text)


def _azure_name() -> str:
    """An Azure-shaped fake key (32 hex digits) that is also a valid variable
    name. Not a canary: tests write it to disk and look for it themselves."""
    return "a" + secrets.token_hex(16)[1:]


@pytest.mark.parametrize(
    "make",
    [
        canary.make_bait,
        lambda: canary.make_bait(prefix=""),
        _azure_name,
        lambda: "K" + "8xQ2" * 21,  # 85 alphanumerics, like a new Azure key
    ],
)
def test_a_key_pasted_into_from_env_is_refused_unnamed(config: Path, make: Any) -> None:
    pasted = make()
    _write(config / "keys" / "openai.yaml", _key(api_key=f"{{fromEnv: {pasted}}}"))
    for fmt in ("json", "text", "github"):
        result = CliRunner().invoke(cli, ["validate", "--format", fmt, "conf"])
        assert result.exit_code == 1
        canary.assert_no_leak(result.output, f"{fmt} output")
        assert pasted not in result.output and pasted[-12:] not in result.output
    problems = validate_paths(["conf"]).errors
    shaped = [p for p in problems if p.code == "plaintext-secret"]
    assert [(p.line, p.col) for p in shaped] == [(7, 21)]
    assert "pasted where a variable name belongs" in shaped[0].message


def test_unset_key_shaped_variable_is_not_named() -> None:
    from byok_reconcile import keysource
    from byok_reconcile.model import KeySpec, Location, SecretRef

    pasted = _azure_name()
    ref = SecretRef("env", Location("k.yaml", 7, 11), env=pasted)
    spec = KeySpec("k", "azure_openai", ref, {}, location=ref.location)
    found = keysource.resolve_secrets(Config({"k": spec}, {}), env={})
    error = found["k"]
    assert isinstance(error, SecretUnavailableError)
    assert pasted not in f"{error} {error.hint}"
    assert "looks like an API key" in str(error)
    plain = SecretRef("env", Location("k.yaml", 7, 11), env="OPENAI_PROD_KEY")
    spec = KeySpec("k", "openai", plain, {}, location=plain.location)
    error = keysource.resolve_secrets(Config({"k": spec}, {}), env={})["k"]
    assert "OPENAI_PROD_KEY, which is not set" in str(error)


FEATURE_DOC = """\
apiVersion: byok/v1
kind: FeatureMapping
metadata: {{name: default}}
spec:
  features:
    test-generation: {{key: {key}, model: gpt-4o}}
"""
POLICY_DOC = """\
apiVersion: byok/v1
kind: Policy
metadata: {{name: hosts}}
spec:
  allowedHosts: [{host}]
"""


def _key_doc_with(edit: str, bait: str) -> str:
    key = _key(api_key="{fromEnv: OPENAI_KEY}")
    return {
        "property": key.replace("  models:", f"  {bait}: 1\n  models:"),
        "name": key.replace("name: openai-prod", f"name: {bait}"),
        "description": key.replace(
            "metadata:\n", f"metadata:\n  description: 'old key {bait}'\n"
        ),
        "label-key": key.replace(
            "metadata:\n", f"metadata:\n  labels: {{{bait}: x}}\n"
        ),
        "label": key.replace("metadata:\n", f"metadata:\n  labels: {{k: {bait}}}\n"),
        "model": key.replace("[gpt-4o]", f"[gpt-4o, {bait}, {bait}]"),
        "kind": key.replace("kind: Key", f"kind: {bait}"),
        "api-version": key.replace("byok/v1", bait),
        "base-url": key.replace(
            "  models:",
            f"  openai: {{baseUrl: 'https://{bait}.example.com/v1'}}\n  models:",
        ),
        "base-url-int": key.replace(
            "  models:", f"  openai: {{baseUrl: !!int {bait}}}\n  models:"
        ),
        "azure-version": AZURE.format(api_key="{fromEnv: K}").replace(
            '"2024-10-21"', bait
        ),
        "fromfile-key": _key(api_key=f"{{fromFile: s.sops.yaml, key: {bait}}}"),
    }[edit]


@pytest.mark.parametrize(
    "edit",
    [
        "property",
        "name",
        "description",
        "label-key",
        "label",
        "model",
        "kind",
        "api-version",
        "base-url",
        "base-url-int",
        "azure-version",
        "fromfile-key",
    ],
)
@pytest.mark.parametrize("shape", ["openai", "azure"])
def test_a_key_shaped_value_anywhere_is_an_error_never_quoted(
    config: Path, edit: str, shape: str
) -> None:
    bait = canary.make_bait() if shape == "openai" else _azure_name()
    _write(config / "keys" / "openai.yaml", _key_doc_with(edit, bait))
    for fmt in ("json", "text", "github", "markdown"):
        result = CliRunner().invoke(cli, ["validate", "--format", fmt, "conf"])
        assert result.exit_code == 1, result.output
        canary.assert_no_leak(result.output, f"{fmt} output")
        assert bait not in result.output and bait[4:16] not in result.output
    if edit not in ("kind", "api-version"):  # not a byok document at all
        messages = [p.message for p in validate_paths(["conf"]).errors]
        assert any("this looks like an API key" in m for m in messages), messages


@pytest.mark.parametrize("where", ["feature-key", "policy-host"])
def test_key_shaped_references_and_hosts_are_never_quoted(
    config: Path, where: str
) -> None:
    bait = _azure_name()
    if where == "feature-key":
        _write(config / "features.yaml", FEATURE_DOC.format(key=bait))
    else:
        _write(config / "policy.yaml", POLICY_DOC.format(host=bait))
    result = CliRunner().invoke(cli, ["validate", "--format", "json", "conf"])
    assert result.exit_code == 1
    assert bait not in result.output, result.output
    assert "this looks like an API key" in result.output


def test_the_last_net_hides_what_a_builder_quoted() -> None:
    bait = canary.make_bait()
    text = f"unknown thing '{bait}' near {_azure_name()}"
    assert redact(text) == f"unknown thing '{HIDDEN}' near {HIDDEN}"
    assert redact("feature 'test-generation' is mapped twice") == (
        "feature 'test-generation' is mapped twice"
    )


# -- fromFile values are checked without decrypting ------------------------------

SECRETS = {
    "yaml": "openai:\n  prod: {value}\n  other: x\n",
    "json": '{{"openai": {{"prod": "{value}", "other": "x"}}}}',
    "dotenv": "OPENAI_PROD={value}\nOTHER=x\n",
}
KEY_IN = {"yaml": "openai.prod", "json": "openai.prod", "dotenv": "OPENAI_PROD"}
SUFFIX = {"yaml": "yaml", "json": "json", "dotenv": "env"}


def _from_file_target(
    config: Path, fmt: str, value: str, regex: str | None, key: str | None = None
) -> Path:
    target = config / "keys" / f"prod.sops.{SUFFIX[fmt]}"
    sops_encrypt(
        SECRETS[fmt].format(value=value),
        target,
        recipients=_recipient(config),
        input_type=fmt,
        encrypted_regex=regex,
    )
    ref = f"{{fromFile: {target.name}, key: {key or KEY_IN[fmt]}}}"
    _write(config / "keys" / "openai.yaml", _key(api_key=ref))
    return target


def _recipient(config: Path) -> str:
    from tests.fixtures.sops import new_age_identity

    return new_age_identity(config.parent / "age" / "keys.txt").recipient


@pytest.mark.parametrize("fmt", ["yaml", "json", "dotenv"])
def test_a_from_file_value_left_in_clear_is_a_plaintext_error(
    config: Path, fmt: str
) -> None:
    bait = canary.make_bait()
    _from_file_target(config, fmt, bait, regex="other|OTHER")
    done = _byok("validate", "--format", "json", "conf")
    assert done.returncode == 1, done.stdout
    (problem,) = json.loads(done.stdout)["problems"]
    assert problem["code"] == "plaintext-secret"
    assert problem["line"] == 7
    assert "is not encrypted" in problem["message"]


@pytest.mark.parametrize("fmt", ["yaml", "json", "dotenv"])
def test_an_encrypted_from_file_value_passes(config: Path, fmt: str) -> None:
    _from_file_target(config, fmt, canary.make_secret(), regex="prod|PROD")
    result = validate_paths(["conf"])
    assert result.errors == (), result.errors
    assert result.config is not None


@pytest.mark.parametrize("fmt", ["yaml", "json", "dotenv"])
def test_a_from_file_key_that_is_not_there_is_named(config: Path, fmt: str) -> None:
    _from_file_target(config, fmt, canary.make_secret(), regex=None, key="nope.x")
    (problem,) = validate_paths(["conf"]).errors
    assert problem.code == "secret-file"
    assert problem.message == f"no 'nope.x' in 'prod.sops.{SUFFIX[fmt]}'"


def test_a_from_file_key_naming_a_structure_is_an_error(config: Path) -> None:
    _from_file_target(config, "yaml", canary.make_secret(), regex=None, key="openai")
    (problem,) = validate_paths(["conf"]).errors
    assert "holds a structure, not a single value" in problem.message


# -- decrypted output goes through the guarded readers ---------------------------


@pytest.mark.parametrize(
    ("kind", "suffix"), [("file", "yaml"), ("file", "json"), ("inline", "yaml")]
)
def test_a_deep_decrypted_file_is_an_error_not_a_crash(kind: str, suffix: str) -> None:
    # sops writes what it decrypted; sops itself accepts 9,000 levels, and
    # plan reads the encrypted file the same way (extract_value).
    from byok_reconcile import keysource
    from byok_reconcile.model import KeySpec, Location, SecretRef

    deep = "[" * 9_000 + "]" * 9_000
    plain = f"a: x\nb: {deep}\n" if suffix == "yaml" else f'{{"a": "x", "b": {deep}}}'
    path = Path(f"deep.sops.{suffix}")
    ref = SecretRef(kind, Location("k.yaml", 7, 11), path=path, key="a")  # type: ignore[arg-type]
    spec = KeySpec("k", "openai", ref, {}, location=ref.location)
    with pytest.raises(ConfigError, match="cannot be parsed"):
        keysource.extract_value(spec, path, plain.encode())


def test_libyaml_own_depth_limit_is_too_deep() -> None:
    import yaml

    from byok_reconcile.yamlload import load_text

    # PyYAML 6.0.4's libyaml raises this itself; emulate it on any version.
    mark = yaml.Mark("<text>", 0, 0, 1000, None, None)  # type: ignore[arg-type]
    exc = yaml.scanner.ScannerError(
        "while increasing flow level", mark, "exceeded maximum nesting depth", mark
    )
    from byok_reconcile import yamlload

    problem = yamlload._yaml_problem(exc, "a.yaml", "[" * 2000)
    assert (problem.code, problem.line, problem.col) == ("yaml-too-deep", 1, 1001)
    assert "nested more than" in problem.message
    assert load_text("[" * 5_000 + "]" * 5_000, "a.yaml").problems[0].code == (
        "yaml-too-deep"
    )
