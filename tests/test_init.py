"""``byok init``: the scaffold validates, refuses occupied folders and bad keys."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import jsonschema
import pytest
import yaml
from click.testing import CliRunner, Result

from byok_reconcile.cli import cli
from byok_reconcile.commands.init import check_age_recipient, scaffold
from byok_reconcile.errors import UsageError
from tests.canary import assert_no_leak, make_secret
from tests.fixtures.sops import AgeIdentity

ROOT = Path(__file__).parent.parent
# Generated once with pyrage; a public key, not a secret.
RECIPIENT = "age1qftvshwhfr7n6y0yvce2hk7aegcf4xfydrl5vm8l0nmyytqhnyaqqpuh06"


def invoke(*args: str) -> Result:
    result = CliRunner().invoke(cli, ["init", *args])
    assert_no_leak(result.output, "byok init output")
    return result


def test_scaffold_writes_the_expected_files(tmp_path: Path) -> None:
    result = invoke(str(tmp_path / "repo"), "--age-recipient", RECIPIENT)
    assert result.exit_code == 0, result.output
    files = sorted(
        p.relative_to(tmp_path / "repo").as_posix()
        for p in (tmp_path / "repo").rglob("*")
        if p.is_file()
    )
    assert files == [
        ".github/workflows/byok.yml",
        ".gitignore",
        ".sops.yaml",
        "README.md",
        "config/features/catalog.yaml",
        "config/features/mapping.yaml",
        "config/keys/openai-prod.yaml",
    ]
    assert "created 7 files" in result.output


def test_sops_rule_names_the_recipient_and_encrypts_only_api_key(
    tmp_path: Path,
) -> None:
    scaffold(tmp_path / "repo", [RECIPIENT, RECIPIENT.replace("06", "06")])
    rules = yaml.safe_load((tmp_path / "repo" / ".sops.yaml").read_text())
    key_rule = rules["creation_rules"][0]
    assert key_rule["encrypted_regex"] == "^apiKey$"
    assert key_rule["age"] == f"{RECIPIENT},{RECIPIENT}"
    assert "{{" not in (tmp_path / "repo" / ".sops.yaml").read_text()


def test_created_repo_passes_byok_validate(tmp_path: Path) -> None:
    pytest.importorskip("byok_reconcile.commands.validate")
    scaffold(tmp_path / "repo", [RECIPIENT])
    result = CliRunner().invoke(cli, ["validate", str(tmp_path / "repo" / "config")])
    assert result.exit_code == 0, result.output
    assert "error" not in result.output


def test_created_sops_yaml_encrypts_a_key_file(
    tmp_path: Path, age_identity: AgeIdentity
) -> None:
    # The real sops, finding the scaffold's .sops.yaml by itself: the rule
    # must encrypt apiKey and leave the rest readable for review.
    repo = tmp_path / "repo"
    scaffold(repo, [age_identity.recipient])
    key_file = repo / "config" / "keys" / "openai-prod.yaml"
    plain = key_file.read_text().replace(
        "apiKey: {fromEnv: OPENAI_PROD_KEY}", f"apiKey: {make_secret()}"
    )
    done = subprocess.run(
        ["sops", "--disable-version-check", "encrypt", "--filename-override",
         "config/keys/openai-prod.yaml", "--input-type", "yaml",
         "--output-type", "yaml", "/dev/stdin"],
        input=plain.encode(), capture_output=True, cwd=repo, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr.decode()[-400:]
    assert_no_leak(done.stdout, "sops ciphertext")
    key_file.write_bytes(done.stdout)
    doc = yaml.safe_load(done.stdout)
    assert doc["spec"]["apiKey"].startswith("ENC[AES256_GCM,")
    assert doc["spec"]["provider"] == "openai"
    assert doc["sops"]["age"][0]["recipient"] == age_identity.recipient


def test_refuses_a_folder_that_holds_files(tmp_path: Path) -> None:
    (tmp_path / "repo").mkdir()
    (tmp_path / "repo" / "notes.txt").write_text("mine\n")
    result = invoke(str(tmp_path / "repo"), "--age-recipient", RECIPIENT)
    assert result.exit_code == 2
    assert "is not empty" in result.output
    assert sorted(p.name for p in (tmp_path / "repo").iterdir()) == ["notes.txt"]


def test_refuses_a_hidden_file_too(tmp_path: Path) -> None:
    (tmp_path / "repo" / ".git").mkdir(parents=True)
    result = invoke(str(tmp_path / "repo"), "--age-recipient", RECIPIENT)
    assert result.exit_code == 2


def test_accepts_an_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "repo").mkdir()
    assert invoke(str(tmp_path / "repo"), "--age-recipient", RECIPIENT).exit_code == 0


def test_refuses_a_file_as_target(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    result = invoke(str(tmp_path / "f"), "--age-recipient", RECIPIENT)
    assert result.exit_code == 2
    assert "is a file" in result.output


@pytest.mark.parametrize(
    "bad",
    [
        RECIPIENT[:-1] + "7",  # checksum broken
        RECIPIENT.upper(),  # age writes recipients lower case
        RECIPIENT[:-2],  # too short
        "age1" + "b" * 58,  # bech32 'b' is not in the alphabet
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI",
        "",
    ],
)
def test_bad_recipient_is_a_usage_error(tmp_path: Path, bad: str) -> None:
    result = invoke(str(tmp_path / "repo"), "--age-recipient", bad)
    assert result.exit_code == 2
    assert "not an age recipient" in result.output
    assert not (tmp_path / "repo").exists(), "nothing is written"


def test_secret_key_given_as_recipient_is_not_echoed() -> None:
    from pyrage import x25519

    secret = str(x25519.Identity.generate())
    with pytest.raises(UsageError) as info:
        check_age_recipient(secret)
    assert secret not in str(info.value)
    assert "secret key" in str(info.value)


def test_recipient_is_required(tmp_path: Path) -> None:
    result = invoke(str(tmp_path / "repo"))
    assert result.exit_code == 2
    assert "--age-recipient" in result.output


def test_json_output_matches_the_report_schema(tmp_path: Path) -> None:
    result = invoke(
        str(tmp_path / "repo"), "--age-recipient", RECIPIENT, "--format", "json"
    )
    assert result.exit_code == 0
    body = json.loads(result.output)
    schema = json.loads((ROOT / "schemas" / "report.schema.json").read_text())
    jsonschema.Draft202012Validator(schema).validate(body)
    assert body["data"]["files"][0] == ".github/workflows/byok.yml"


def test_refusal_in_json_matches_the_report_schema(tmp_path: Path) -> None:
    (tmp_path / "repo").mkdir()
    (tmp_path / "repo" / "x").write_text("")
    result = invoke(
        str(tmp_path / "repo"), "--age-recipient", RECIPIENT, "--format", "json"
    )
    assert result.exit_code == 2
    body = json.loads(result.output)
    schema = json.loads((ROOT / "schemas" / "report.schema.json").read_text())
    jsonschema.Draft202012Validator(schema).validate(body)
    assert body["error"]["type"] == "UsageError"


def test_scaffold_workflow_is_the_published_example() -> None:
    template = ROOT / "byok_reconcile/templates/init/dot-github/workflows/byok.yml"
    example = ROOT / "examples/ci/github-actions.yml"
    assert template.read_text() == example.read_text()
