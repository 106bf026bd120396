"""``byok check`` end to end: validate, decrypt, check, report, exit code."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote, unquote

import pytest
from click.testing import CliRunner, Result

from byok_reconcile.cli import cli
from byok_reconcile.testing.config import EmulatedKey, Fault
from byok_reconcile.testing.emulator import Emulator
from tests.canary import assert_no_leak, make_azure_secret, make_secret
from tests.fixtures.sops import AgeIdentity

OPENAI_KEY = """\
apiVersion: byok/v1
kind: Key
metadata: {{name: {name}}}
spec:
  provider: openai
  apiKey: {{fromEnv: {env}}}
  openai: {{baseUrl: "{base}"}}
  models: [{models}]
"""
MAPPING = """\
apiVersion: byok/v1
kind: FeatureMapping
metadata: {name: default}
spec:
  features:
    chat: {key: prod, model: gpt-4o}
"""


@pytest.fixture
def emu() -> Iterator[Emulator]:
    with Emulator() as emulator:
        yield emulator


def write_key(root: Path, name: str, env: str, base: str,
              models: str = "gpt-4o") -> Path:
    path = root / f"{name}.yaml"
    path.write_text(OPENAI_KEY.format(name=name, env=env, base=base, models=models))
    return path


def invoke(*args: str) -> Result:
    result = CliRunner().invoke(cli, ["check", *args])
    assert_no_leak(result.output, "check stdout")
    assert_no_leak(result.stderr, "check stderr")
    return result


@pytest.fixture
def repo(tmp_path: Path, emu: Emulator, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A config with one working OpenAI key (``prod``) via fromEnv."""
    secret = make_secret()
    emu.add_key(EmulatedKey(secret=secret))
    monkeypatch.setenv("PROD_KEY", secret)
    root = tmp_path / "cfg"
    root.mkdir()
    write_key(root, "prod", "PROD_KEY", "https://api.openai.com/v1")
    (root / "mapping.yaml").write_text(MAPPING)
    return root


def resolve_to(emu: Emulator) -> list[str]:
    return ["--resolve", f"api.openai.com={emu.url}"]


def test_all_working_exits_0(repo: Path, emu: Emulator) -> None:
    result = invoke(str(repo), *resolve_to(emu))
    assert result.exit_code == 0, result.output
    assert "key prod (openai): valid" in result.stdout
    assert result.stdout.endswith("1 key checked: 1 working.\n")
    assert len(emu.requests) == 1


def test_no_tty_streams_each_key_once_on_stdout(
    repo: Path, emu: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One line per key as it finishes, on stdout; the report adds only the
    # problems and the summary, never the keys again.
    monkeypatch.setenv("BAD_KEY", make_secret())
    write_key(repo, "bad", "BAD_KEY", "https://api.openai.com/v1")
    write_key(repo, "nokey", "UNSET_VAR_FOR_TEST", "https://api.openai.com/v1")
    result = invoke(str(repo), *resolve_to(emu))
    lines = result.stdout.splitlines()
    heads = [line for line in lines if line.startswith("key ")]
    assert sorted(heads)[0].startswith("key bad (openai): invalid_key")
    assert [h.split()[1] for h in sorted(heads)] == ["bad", "prod"]
    assert result.stdout.count("key bad (openai)") == 1
    assert result.stdout.count("key prod (openai)") == 1
    assert "UNSET_VAR_FOR_TEST" in result.stdout  # the problem, once, after
    assert lines[-1] == "2 keys checked: 1 working, 1 not working."
    assert "checked" not in result.stderr.replace("keys checked", "")


@pytest.mark.parametrize("fmt", ["json", "github", "markdown"])
def test_documents_keep_stdout_to_themselves(
    repo: Path, emu: Emulator, fmt: str
) -> None:
    result = invoke(str(repo), "--format", fmt, *resolve_to(emu))
    assert result.exit_code == 0, result.output
    assert result.stderr == ""  # no progress without a terminal
    if fmt == "json":
        assert json.loads(result.stdout)["keys"][0]["key"] == "prod"
    else:
        assert "key prod (openai)" not in result.stdout


def test_request_ids_in_text_on_failure_and_at_verbose(
    repo: Path, emu: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BAD_KEY", make_secret())
    write_key(repo, "bad", "BAD_KEY", "https://api.openai.com/v1")
    ids = {r["key"]: r["requestId"] for r in json.loads(
        invoke(str(repo), "--format", "json", *resolve_to(emu)).stdout)["keys"]}
    assert ids["bad"] and ids["prod"]
    plain = invoke(str(repo), *resolve_to(emu)).stdout
    assert "(request req_" in plain.split("key bad")[1].splitlines()[0]
    assert "(request" not in plain.split("key prod")[1].splitlines()[0]
    verbose = invoke(str(repo), "-v", *resolve_to(emu)).stdout
    assert "(request req_" in verbose.split("key prod")[1].splitlines()[0]
    markdown = invoke(str(repo), "--format", "markdown", *resolve_to(emu)).stdout
    assert markdown.count("request req_") == 2


def test_json_output(repo: Path, emu: Emulator) -> None:
    result = invoke(str(repo), "--format", "json", *resolve_to(emu))
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    (key,) = body["keys"]
    assert key["verdict"] == "valid" and key["fingerprint"].startswith("sha256:")
    assert key["file"].endswith("prod.yaml") and key["line"] >= 1
    assert key["targets"][0]["target"] == "gpt-4o"


def test_rejected_key_exits_1(repo: Path, emu: Emulator,
                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BAD_KEY", make_secret())
    write_key(repo, "bad", "BAD_KEY", "https://api.openai.com/v1")
    result = invoke(str(repo), *resolve_to(emu))
    assert result.exit_code == 1
    assert "invalid_key" in result.output


def test_unreachable_exits_3_unless_warn(repo: Path, emu: Emulator) -> None:
    emu.add_fault(Fault(path="/v1/models", status=503))
    args = [str(repo), *resolve_to(emu), "--retries", "0"]
    assert invoke(*args).exit_code == 3
    warned = invoke(*args, "--unreachable", "warn")
    assert warned.exit_code == 0
    assert "unreachable" in warned.output


def test_invalid_config_exits_1_without_checking(repo: Path, emu: Emulator) -> None:
    (repo / "broken.yaml").write_text("apiVersion: byok/v1\nkind: Key\n")
    result = invoke(str(repo), *resolve_to(emu))
    assert result.exit_code == 1
    assert emu.requests == []


def test_env_allow_and_resolve(repo: Path, emu: Emulator,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    # A compatible server needs an explicit allow; BYOK_* env vars give it.
    secret = make_secret()
    emu.add_key(EmulatedKey(secret=secret, dialects=("vllm",)))
    monkeypatch.setenv("VLLM_KEY", secret)
    key = write_key(repo, "vllm", "VLLM_KEY", "https://vllm.corp.example/compat/vllm/v1")
    key.write_text(key.read_text().replace("provider: openai\n",
                                           "provider: openai_compatible\n")
                   .replace("openai: {", "openai_compatible: {"))
    refused = invoke(str(repo), *resolve_to(emu), "--resolve",
                     f"vllm.corp.example={emu.url}")
    assert refused.exit_code == 1 and "misconfigured" in refused.output
    assert all("/compat/" not in r.path for r in emu.requests)
    monkeypatch.setenv("BYOK_ALLOW_HOSTS", "vllm.corp.example")
    monkeypatch.setenv("BYOK_RESOLVE", f"vllm.corp.example={emu.url}")
    allowed = invoke(str(repo), *resolve_to(emu))
    assert allowed.exit_code == 0, allowed.output


def test_resolve_to_non_loopback_is_usage_error(repo: Path) -> None:
    result = invoke(str(repo), "--resolve", "api.openai.com=http://192.0.2.1:80")
    assert result.exit_code == 2
    assert "loopback" in result.output + result.stderr


def test_deep_prints_a_notice(repo: Path, emu: Emulator) -> None:
    result = invoke(str(repo), "--deep", *resolve_to(emu))
    assert result.exit_code == 0, result.output
    assert "spends tokens" in result.stderr
    assert emu.requests_to("/v1/chat/completions")


def test_missing_env_secret_exits_3_and_reports_file(
    repo: Path, emu: Emulator
) -> None:
    # An unset variable is a secret missing here (exit 3), like a missing
    # decryption key; the configuration itself is valid.
    write_key(repo, "nokey", "UNSET_VAR_FOR_TEST", "https://api.openai.com/v1")
    result = invoke(str(repo), *resolve_to(emu))
    assert result.exit_code == 3
    out = result.output + result.stderr
    assert "nokey.yaml:6:11" in out and "UNSET_VAR_FOR_TEST" in out
    assert "key nokey: the API key comes from" in out
    assert "Key nokey" not in out


def test_rejection_wins_over_missing_env_secret(
    repo: Path, emu: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_key(repo, "nokey", "UNSET_VAR_FOR_TEST", "https://api.openai.com/v1")
    monkeypatch.setenv("BAD_KEY", make_secret())
    write_key(repo, "bad", "BAD_KEY", "https://api.openai.com/v1")
    assert invoke(str(repo), *resolve_to(emu)).exit_code == 1


AZURE_KEY = """\
apiVersion: byok/v1
kind: Key
metadata: {{name: azure}}
spec:
  provider: azure_openai
  apiKey: {secret}
  azure_openai:
    endpoint: https://contoso.openai.azure.com/
    apiVersion: "2024-10-21"
    deployments:
      chat: {{model: gpt-4o}}
"""


def test_inline_sops_key(
    tmp_path: Path,
    emu: Emulator,
    age_identity: AgeIdentity,
    sops_encrypt: Callable[..., Path],
) -> None:
    secret = make_azure_secret()
    emu.add_key(EmulatedKey.azure(secret, {"chat": "gpt-4o"}))
    root = tmp_path / "cfg"
    root.mkdir()
    sops_encrypt(AZURE_KEY.format(secret=secret), root / "azure.yaml",
                 recipients=age_identity.recipient)
    result = invoke(str(root), "--resolve", f"*.openai.azure.com={emu.url}",
                    "--format", "json")
    assert result.exit_code == 0, result.output
    (key,) = json.loads(result.stdout)["keys"]
    assert key["verdict"] == "valid"
    assert {r.api_key for r in emu.requests} == {secret}


def test_undecryptable_sops_key_exits_3(
    tmp_path: Path,
    emu: Emulator,
    other_age_identity: AgeIdentity,
    age_identity: AgeIdentity,
    sops_encrypt: Callable[..., Path],
) -> None:
    root = tmp_path / "cfg"
    root.mkdir()
    sops_encrypt(AZURE_KEY.format(secret=make_azure_secret()), root / "azure.yaml",
                 recipients=other_age_identity.recipient)
    result = invoke(str(root), "--resolve", f"*.openai.azure.com={emu.url}")
    assert result.exit_code == 3
    assert "azure.yaml" in result.output + result.stderr
    assert emu.requests == []


def test_exit_code_unset_variable_is_3_bad_reference_is_1() -> None:
    from byok_reconcile.errors import SecretNotFoundError, SecretUnavailableError
    from byok_reconcile.pipeline import exit_code

    unset = SecretUnavailableError("the variable X is not set")
    missing = SecretNotFoundError("'a.b' was not found")
    assert exit_code({"k": unset}, [], None) == 3
    assert exit_code({"k": unset, "j": missing}, [], None) == 1


def pieces_of(secret: str) -> set[str]:
    return {secret[i : i + 8].lower() for i in range(len(secret) - 7)}


@pytest.mark.parametrize("fmt", ["text", "json", "github", "markdown"])
def test_gateway_echo_of_the_key_reaches_no_format(
    repo: Path, emu: Emulator, monkeypatch: pytest.MonkeyPatch, fmt: str
) -> None:
    # A gateway that echoes the key minus its tail in the message and puts
    # it, URL-encoded and upper-cased, in the request id header.
    secret = make_secret("Zq+/x=Y+")
    emu.add_key(EmulatedKey(secret=secret))
    monkeypatch.setenv("PROD_KEY", secret)
    rid = quote(secret, safe="").upper()
    emu.add_fault(Fault(path="/v1/models", status=403, headers={
        "x-request-id": rid, "apim-request-id": secret[:20]},
        body=json.dumps({"error": f"API key {secret[:-4]}**** is not allowed"})))
    result = invoke(str(repo), "--format", fmt, "-v", *resolve_to(emu))
    assert result.exit_code == 1, result.output
    seen = unquote(result.output).lower()
    assert not [p for p in pieces_of(secret) if p in seen], result.output
    assert "forbidden" in result.output
    if fmt == "json":
        assert json.loads(result.stdout)["keys"][0]["requestId"] is None


def test_key_with_line_break_is_misconfigured(
    repo: Path, emu: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROD_KEY", make_secret()[:20] + "\r\n" + make_secret())
    result = invoke(str(repo), *resolve_to(emu))
    assert result.exit_code == 1, result.output
    assert "misconfigured" in result.stdout
    assert "line break or control character: re-encrypt it" in result.stdout
    assert "could not connect" not in result.output
    assert emu.requests == []


def test_resolve_with_path_reaches_vllm(
    repo: Path, emu: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = make_secret()
    emu.add_key(EmulatedKey(secret=secret, dialects=("vllm",)))
    monkeypatch.setenv("VLLM_KEY", secret)
    monkeypatch.setenv("BAD_VLLM_KEY", make_secret())
    for name, env in (("vllm", "VLLM_KEY"), ("badvllm", "BAD_VLLM_KEY")):
        key = write_key(repo, name, env, "https://llm.example.com/v1")
        key.write_text(key.read_text().replace("provider: openai\n",
                                               "provider: openai_compatible\n")
                       .replace("openai: {", "openai_compatible: {"))
    result = invoke(str(repo), "--format", "json", *resolve_to(emu),
                    "--allow-host", "llm.example.com", "--resolve",
                    f"llm.example.com={emu.url}/compat/vllm")
    verdicts = {k["key"]: k["verdict"] for k in json.loads(result.stdout)["keys"]}
    assert verdicts == {"prod": "valid", "vllm": "valid", "badvllm": "invalid_key"}
    assert {r.path for r in emu.requests_to("/compat/")} == {
        "/compat/vllm/v1/models"}
