"""The CI examples parse as YAML, call byok, and keep secrets out of forks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).parent.parent / "examples" / "ci"


def load(name: str) -> dict[Any, Any]:
    body: dict[Any, Any] = yaml.safe_load((ROOT / name).read_text())
    return body


def scripts(job: dict[str, Any]) -> str:
    if "steps" in job:
        return "\n".join(str(step.get("run", "")) for step in job["steps"])
    return "\n".join(str(line) for line in job.get("script", []))


def test_github_workflow_runs_on_prs_and_main() -> None:
    flow = load("github-actions.yml")
    # PyYAML reads the bare key `on` as True (YAML 1.1); GitHub reads "on".
    triggers = flow.get("on", flow.get(True))
    assert set(triggers) == {"pull_request", "push"}
    assert triggers["push"]["branches"] == ["main"]
    assert flow["permissions"] == {"contents": "read"}


def test_github_review_job_validates_plans_checks_and_comments() -> None:
    review = load("github-actions.yml")["jobs"]["review"]
    text = scripts(review)
    assert 'byok validate "$BYOK_CONFIG" --format github' in text
    assert "byok plan" in text and "byok check" in text
    assert "gh pr comment" in text
    check = next(s for s in review["steps"] if "byok check" in s.get("run", ""))
    # The key is only handed to the check step, and only for same-repo PRs.
    assert check["env"] == {"SOPS_AGE_KEY": "${{ secrets.SOPS_AGE_KEY }}"}
    assert "SAME_REPO == 'true'" in check["if"]
    others = [s for s in review["steps"] if s is not check]
    assert not any("SOPS_AGE_KEY" in str(s.get("env", "")) for s in others)


def test_github_apply_job_checks_then_applies_on_main() -> None:
    apply = load("github-actions.yml")["jobs"]["apply"]
    text = scripts(apply)
    assert text.index("byok check") < text.index("byok apply")
    assert apply["concurrency"]["cancel-in-progress"] is False
    assert "refs/heads/main" in apply["if"]


def test_gitlab_pipeline_mirrors_the_github_one() -> None:
    pipeline = load("gitlab-ci.yml")
    assert "byok validate" in scripts(pipeline["validate"])
    assert "byok plan" in scripts(pipeline["plan"])
    assert "$SOPS_AGE_KEY" in pipeline["check"]["rules"][0]["if"]
    assert "merge_requests/$CI_MERGE_REQUEST_IID/notes" in scripts(pipeline["mr-note"])
    apply = scripts(pipeline["apply"])
    assert apply.index("byok check") < apply.index("byok apply")
    assert pipeline["apply"]["resource_group"] == "byok-apply"
    for name, job in pipeline.items():
        if isinstance(job, dict) and "rules" in job:
            assert "when" not in job, f"{name}: GitLab refuses when beside rules"
