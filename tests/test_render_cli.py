"""`byok render` end to end: real sops, the real openai SDK, the emulator.

The configuration names the real provider hosts; ``--resolve`` sends their
requests to the loopback emulator, so the files are the same on every run
and the artifact can be compared byte for byte.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from click.testing import CliRunner, Result

from byok_reconcile.cli import cli
from byok_reconcile.secret import fingerprint
from byok_reconcile.testing import EmulatedKey, Emulator, Fault
from tests.canary import assert_no_leak, make_azure_secret, make_secret

SCHEMA = Path(__file__).parent.parent / "schemas/resolved-mapping.schema.json"
ENV_VAR = "OAI_PROD_KEY"
AZURE_HOST = "contoso-eastus.openai.azure.com"

OPENAI_KEY = """\
apiVersion: byok/v1
kind: Key
metadata: {name: openai-prod}
spec:
  provider: openai
  apiKey: {fromEnv: OAI_PROD_KEY}
  models: [gpt-4o, gpt-4o-mini]
"""

AZURE_KEY = """\
apiVersion: byok/v1
kind: Key
metadata: {name: azure-eastus}
spec:
  provider: azure_openai
  apiKey: %s
  azure_openai:
    endpoint: https://contoso-eastus.openai.azure.com
    apiVersion: "2024-10-21"
    deployments:
      gpt4o-prod: {model: gpt-4o}
"""

MAPPING = """\
apiVersion: byok/v1
kind: FeatureMapping
metadata: {name: default}
spec:
  features:
    test-generation: {key: openai-prod, model: gpt-4o}
    test-data-synthesis: {key: openai-prod, model: gpt-4o-mini}
    copilot: {key: azure-eastus, deployment: gpt4o-prod}
"""


class World:
    """The emulator, the two keys it accepts, and the config folder."""

    def __init__(self, emu: Emulator, openai: str, azure: str, root: Path) -> None:
        self.emu = emu
        self.openai = openai
        self.azure = azure
        self.root = root

    def args(self, *extra: str) -> list[str]:
        url = self.emu.url
        return [
            "render",
            *extra,
            "--resolve",
            f"api.openai.com={url}",
            "--resolve",
            f"{AZURE_HOST}={url}",
            "--retries",
            "0",
            "--timeout",
            "2",
        ]


@pytest.fixture
def world(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    age_identity: Any,
    sops_encrypt: Callable[..., Path],
) -> Iterator[World]:
    openai, azure = make_secret(), make_azure_secret()
    monkeypatch.setenv(ENV_VAR, openai)
    root = tmp_path / "repo" / "config"
    (root / "keys").mkdir(parents=True)
    (root / "features").mkdir()
    (root / "keys" / "openai-prod.yaml").write_text(OPENAI_KEY)
    sops_encrypt(
        AZURE_KEY % azure,
        root / "keys" / "azure-eastus.yaml",
        recipients=age_identity.recipient,
    )
    (root / "features" / "mapping.yaml").write_text(MAPPING)
    keys = [
        EmulatedKey(secret=openai, models=("gpt-4o", "gpt-4o-mini")),
        EmulatedKey.azure(azure, {"gpt4o-prod": "gpt-4o"}),
    ]
    with Emulator(keys=keys, latency=0.0) as emu:
        yield World(emu, openai, azure, root)


def invoke(args: list[str], cwd: Path | None = None) -> Result:
    runner = CliRunner()
    old = Path.cwd()
    if cwd is not None:
        os.chdir(cwd)
    try:
        result = runner.invoke(cli, args, catch_exceptions=False)
    finally:
        os.chdir(old)
    assert_no_leak(result.stdout, "stdout")
    assert_no_leak(result.stderr, "stderr")
    return result


def _schema() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(json.loads(SCHEMA.read_text()))


def test_render_end_to_end(world: World, tmp_path: Path) -> None:
    out = tmp_path / "resolved.json"
    result = invoke(world.args(str(world.root), "-o", str(out)))

    assert result.exit_code == 0, result.output
    data = out.read_bytes()
    assert_no_leak(data, "artifact")
    art = json.loads(data)
    _schema().validate(art)
    assert art["check"]["performed"] is True
    assert art["check"]["verdicts"] == {"azure-eastus": "valid", "openai-prod": "valid"}
    keys = art["keys"]
    assert keys["openai-prod"]["fingerprint"] == fingerprint(world.openai)
    assert keys["azure-eastus"]["fingerprint"] == fingerprint(world.azure)
    assert keys["azure-eastus"]["secretRef"] == {
        "kind": "inline",
        "file": "config/keys/azure-eastus.yaml",
    }
    copilot = art["features"]["copilot"]
    assert copilot["deployment"] == "gpt4o-prod"
    assert copilot["model"] == "gpt-4o"
    assert copilot["connection"]["endpoint"].startswith(f"https://{AZURE_HOST}")
    testgen = art["features"]["test-generation"]
    assert testgen["secretRef"] == {"kind": "env", "env": ENV_VAR}
    assert testgen["connection"]["baseUrl"] == "https://api.openai.com/v1"
    assert out.stat().st_mode & 0o777 == 0o644
    assert world.emu.requests, "the check never reached the emulator"


def test_render_is_deterministic_across_runs_and_folders(
    world: World, tmp_path: Path
) -> None:
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    assert invoke(world.args(str(world.root), "-o", str(first))).exit_code == 0
    assert invoke(world.args(str(world.root), "-o", str(second))).exit_code == 0
    assert first.read_bytes() == second.read_bytes()

    # The same files at another absolute path, given absolute and relative.
    elsewhere = tmp_path / "other" / "place" / "config"
    shutil.copytree(world.root, elsewhere)
    third, fourth = tmp_path / "c.json", tmp_path / "d.json"
    assert invoke(world.args(str(elsewhere), "-o", str(third))).exit_code == 0
    relative = world.args("config", "-o", str(fourth))
    assert invoke(relative, cwd=elsewhere.parent).exit_code == 0
    assert third.read_bytes() == first.read_bytes()
    assert fourth.read_bytes() == first.read_bytes()
    assert str(tmp_path).encode() not in first.read_bytes()


def test_no_check_is_recorded_and_sends_nothing(world: World, tmp_path: Path) -> None:
    out = tmp_path / "resolved.json"
    result = invoke(world.args(str(world.root), "-o", str(out), "--no-check"))

    assert result.exit_code == 0, result.output
    art = json.loads(out.read_bytes())
    _schema().validate(art)
    assert art["check"] == {"performed": False, "deep": False, "verdicts": {}}
    assert all(k["check"] is None for k in art["keys"].values())
    assert art["keys"]["azure-eastus"]["fingerprint"] == fingerprint(world.azure)
    assert world.emu.requests == []
    assert "not checked" in result.stdout


def test_rejected_key_writes_nothing_and_keeps_old_artifact(
    world: World, tmp_path: Path
) -> None:
    out = tmp_path / "resolved.json"
    assert invoke(world.args(str(world.root), "-o", str(out))).exit_code == 0
    before = out.read_bytes()

    world.emu.remove_key(world.openai)
    result = invoke(world.args(str(world.root), "-o", str(out)))

    assert result.exit_code == 1, result.output
    assert "invalid_key" in result.stdout
    assert "not written" in result.stdout
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["resolved.json", "repo", "age"]
    )


def test_unreachable_fails_unless_warned(world: World, tmp_path: Path) -> None:
    world.emu.add_fault(Fault(path="/v1/", status=503, times=None))
    out = tmp_path / "resolved.json"

    failed = invoke(world.args(str(world.root), "-o", str(out)))
    assert failed.exit_code == 3, failed.output
    assert not out.exists()

    warned = invoke(world.args(str(world.root), "-o", str(out), "--unreachable=warn"))
    assert warned.exit_code == 0, warned.output
    art = json.loads(out.read_bytes())
    assert art["check"]["verdicts"]["openai-prod"] == "unreachable"
    assert art["keys"]["openai-prod"]["check"]["working"] is False


def test_invalid_config_writes_nothing(world: World, tmp_path: Path) -> None:
    (world.root / "features" / "mapping.yaml").write_text(
        MAPPING.replace("gpt4o-prod", "no-such-deployment")
    )
    out = tmp_path / "resolved.json"
    result = invoke(world.args(str(world.root), "-o", str(out)))
    assert result.exit_code == 1
    assert "mapping.yaml" in result.stdout
    assert not out.exists()
    assert world.emu.requests == []


def test_missing_secret_writes_nothing(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ENV_VAR)
    out = tmp_path / "resolved.json"
    result = invoke(world.args(str(world.root), "-o", str(out), "--no-check"))
    assert result.exit_code != 0
    assert ENV_VAR in result.output
    assert not out.exists()


def test_stdout_carries_only_the_artifact(world: World, tmp_path: Path) -> None:
    out = tmp_path / "resolved.json"
    assert invoke(world.args(str(world.root), "-o", str(out))).exit_code == 0

    result = invoke(world.args(str(world.root), "-o", "-"))
    assert result.exit_code == 0, result.stderr
    assert result.stdout_bytes == out.read_bytes()
    assert "wrote stdout" in result.stderr


def test_output_folder_must_exist(world: World, tmp_path: Path) -> None:
    out = tmp_path / "missing" / "resolved.json"
    result = invoke(world.args(str(world.root), "-o", str(out)))
    assert result.exit_code == 2
    assert "does not exist" in result.stderr
    assert world.emu.requests == []


def test_json_report_names_the_artifact(world: World, tmp_path: Path) -> None:
    out = tmp_path / "resolved.json"
    args = world.args(str(world.root), "-o", str(out), "--format", "json")
    result = invoke(args)
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["data"]["artifact"] == str(out)
    assert body["data"]["features"]["copilot"]["deployment"] == "gpt4o-prod"


def test_subprocess_render_to_stdout(world: World, tmp_path: Path) -> None:
    env = {**os.environ, "NO_COLOR": "1"}
    argv = [sys.executable, "-m", "byok_reconcile", *world.args("config", "-o", "-")]
    done = subprocess.run(
        argv, cwd=world.root.parent, env=env, capture_output=True, timeout=60
    )
    assert_no_leak(done.stdout, "stdout")
    assert_no_leak(done.stderr, "stderr")
    assert done.returncode == 0, done.stderr.decode()
    art = json.loads(done.stdout)
    _schema().validate(art)
    assert art["source"]["files"][0]["path"].startswith("config/")


def test_examples_render_without_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = Path(__file__).parent.parent
    monkeypatch.setenv("SOPS_AGE_KEY_FILE", str(repo / "examples/demo-age-key.txt"))
    out = tmp_path / "resolved.json"
    args = ["render", str(repo / "examples/config"), "-o", str(out), "--no-check"]
    # From outside the checkout, validate shows absolute paths; the
    # artifact must not.
    result = invoke(args, cwd=tmp_path)

    assert result.exit_code == 0, result.output
    art = json.loads(out.read_bytes())
    _schema().validate(art)
    assert str(repo).encode() not in out.read_bytes()
    batch = art["keys"]["openai-batch"]["secretRef"]
    assert batch["kind"] == "file"
    # Relative to the top of the git work tree that holds the config.
    assert batch["file"] == "examples/config/secrets/shared.sops.yaml"


def test_same_artifact_from_inside_and_from_the_parent(
    world: World, tmp_path: Path
) -> None:
    inside, parent = tmp_path / "r1.json", tmp_path / "r4.json"
    repo = world.root.parent
    args = ("--no-check",)
    near = world.args("config", "-o", str(inside), *args)
    assert invoke(near, cwd=repo).exit_code == 0
    outer = world.args("repo/config", "-o", str(parent), *args)
    assert invoke(outer, cwd=repo.parent).exit_code == 0
    assert inside.read_bytes() == parent.read_bytes()
    files = json.loads(inside.read_bytes())["source"]["files"]
    assert all(f["path"].startswith("config/") for f in files), files


def test_paths_relative_to_the_git_work_tree(world: World, tmp_path: Path) -> None:
    repo = world.root.parent
    (repo / ".git").mkdir()
    inside, parent = tmp_path / "g1.json", tmp_path / "g2.json"
    near = world.args("config/keys", "config/features", "-o", str(inside))
    assert invoke([*near, "--no-check"], cwd=repo).exit_code == 0
    outer = world.args("repo/config/keys", "repo/config/features", "-o", str(parent))
    assert invoke([*outer, "--no-check"], cwd=repo.parent).exit_code == 0
    assert inside.read_bytes() == parent.read_bytes()
    files = json.loads(inside.read_bytes())["source"]["files"]
    assert sorted(f["path"] for f in files)[0] == "config/features/mapping.yaml"
