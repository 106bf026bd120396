"""The pre-commit hooks, run by pre-commit itself in throw-away git repos.

``language: python`` makes pre-commit build a virtualenv and ``pip install``
this repository into it. Offline, that works when the virtualenv sees the
site-packages that already hold the dependencies and pip neither reaches an
index nor builds in isolation: the variables in :data:`OFFLINE` say so. (With
PyPI reachable, the same hook builds from scratch in about half a minute.)
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.canary import assert_no_leak

ROOT = Path(__file__).parent.parent
OFFLINE = {
    "VIRTUALENV_SYSTEM_SITE_PACKAGES": "1",
    "PIP_NO_INDEX": "1",
    # pip reads this inverted: "0" turns build isolation off.
    "PIP_NO_BUILD_ISOLATION": "0",
}

pytestmark = pytest.mark.skipif(
    shutil.which("pre-commit") is None or shutil.which("git") is None,
    reason="pre-commit and git are needed",
)


def run(argv: list[str], cwd: Path, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **OFFLINE, "PRE_COMMIT_HOME": str(home)}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    done = subprocess.run(
        argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=110
    )
    assert_no_leak(done.stdout + done.stderr, "pre-commit output")
    return done


def git_repo(path: Path, home: Path) -> Path:
    """A git repository at ``path`` with everything in it committed."""
    ident = ["-c", "user.name=byok tests", "-c", "user.email=tests@example.invalid"]
    run(["git", "init", "-q"], path, home)
    run(["git", "add", "-A"], path, home)
    done = run(["git", *ident, "commit", "-q", "-m", "config"], path, home)
    assert done.returncode == 0, done.stderr
    return path


@pytest.fixture
def config_repo(tmp_path: Path) -> Path:
    """A repo holding a copy of the example configuration under config/."""
    repo = tmp_path / "repo"
    shutil.copytree(ROOT / "examples" / "config", repo / "config")
    return git_repo(repo, tmp_path / "pre-commit-home")


def break_a_reference(repo: Path) -> None:
    mapping = repo / "config" / "features" / "mapping.yaml"
    old, new = "{key: openai-prod, model: gpt-4o}", "{key: openai-prdo, model: gpt-4o}"
    text = mapping.read_text()
    assert old in text
    text = text.replace(old, new, 1)
    mapping.write_text(text)


def test_manifest_and_config_are_valid(tmp_path: Path) -> None:
    home = tmp_path / "home"
    manifest = run(
        ["pre-commit", "validate-manifest", ".pre-commit-hooks.yaml"], ROOT, home
    )
    assert manifest.returncode == 0, manifest.stdout + manifest.stderr
    config = run(
        ["pre-commit", "validate-config", ".pre-commit-config.yaml"], ROOT, home
    )
    assert config.returncode == 0, config.stdout + config.stderr


@pytest.mark.parametrize("hook", ["byok-validate", "byok-validate-system"])
def test_hook_passes_then_fails_on_a_broken_reference(
    config_repo: Path, tmp_path: Path, hook: str
) -> None:
    home = tmp_path / "pre-commit-home"
    argv = ["pre-commit", "try-repo", str(ROOT), hook, "--all-files"]
    done = run(argv, config_repo, home)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Passed" in done.stdout

    break_a_reference(config_repo)
    done = run(argv, config_repo, home)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Failed" in done.stdout
    assert "config/features/mapping.yaml:" in done.stdout
    assert "openai-prdo" in done.stdout


def test_hook_skips_commits_without_yaml(config_repo: Path, tmp_path: Path) -> None:
    (config_repo / "notes.txt").write_text("no yaml here\n")
    argv = ["pre-commit", "try-repo", str(ROOT), "byok-validate-system"]
    done = run([*argv, "--files", "notes.txt"], config_repo, tmp_path / "home")
    assert done.returncode == 0
    assert "(no files to check)Skipped" in done.stdout


def test_repository_config_validates_examples(tmp_path: Path) -> None:
    # The repository's own .pre-commit-config.yaml, in a copy: running
    # pre-commit in the shared checkout could stash other people's work.
    repo = tmp_path / "self"
    shutil.copytree(ROOT / "examples" / "config", repo / "examples" / "config")
    shutil.copy(ROOT / ".pre-commit-config.yaml", repo)
    git_repo(repo, tmp_path / "home")
    done = run(["pre-commit", "run", "--all-files"], repo, tmp_path / "home")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "byok validate examples/config" in done.stdout
