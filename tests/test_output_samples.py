"""Hand-made reports that exercise every part of every reporter."""

from __future__ import annotations

from byok_reconcile.results import (
    Change,
    FieldChange,
    KeyResult,
    Problem,
    Report,
    TargetResult,
)
from byok_reconcile.secret import Secret
from tests.canary import make_secret

# A fixed fingerprint keeps the goldens stable; the canary-derived one is used
# where a test only checks for leaks.
FP = "sha256:0123456789ab"


def problems() -> list[Problem]:
    return [
        Problem(
            file="config/keys.yaml",
            line=7,
            col=11,
            message="plaintext API key in spec.apiKey",
            code="plaintext-secret",
            path="$.spec.apiKey",
            hint="encrypt the file with sops, or use fromEnv",
        ),
        Problem(
            file="config/mapping.yaml",
            line=9,
            col=18,
            message="feature names key 'opnai-prod' | <b>unknown</b> @org/team",
            code="unknown-key-ref",
            path="$.spec.features.copilot.key",
            hint="did you mean 'openai-prod'?",
        ),
        Problem(
            file="odd,name:x.yaml",
            line=3,
            col=1,
            message="100% wrong\nsecond line\r\n::error::injected",
            code="schema",
            severity="warning",
        ),
        Problem(
            file="config/empty.yaml", line=0, col=0, message="empty file", code="empty"
        ),
    ]


def keys(fingerprint: str = FP) -> list[KeyResult]:
    return [
        KeyResult(
            key="openai-prod",
            provider="openai",
            verdict="valid",
            fingerprint=fingerprint,
            host="api.openai.com",
            request_id="req_ok1",
            targets=(TargetResult("gpt-4o", "valid", request_id="req_ok1"),),
            file="config/keys.yaml",
            line=1,
            col=1,
        ),
        KeyResult(
            key="azure-eastus",
            provider="azure_openai",
            verdict="model_unavailable",
            fingerprint="sha256:ba9876543210",
            detail="deployment gpt4o-prod not found",
            hint="check the deployment name in the Azure portal",
            request_id="req_az1",
            targets=(
                TargetResult("gpt4o-prod", "model_unavailable",
                             detail="not found (404)", request_id="req_az2"),
                TargetResult("mini", "valid"),
            ),
            file="config/keys.yaml",
            line=14,
            col=1,
        ),
        KeyResult(
            key="local-vllm",
            provider="openai_compatible",
            verdict="rate_limited",
            fingerprint="sha256:aaaaaaaaaaaa",
            detail="429 after 3 retries",
            file="config/local.yaml",
            line=1,
            col=1,
        ),
    ]


def changes() -> list[Change]:
    return [
        Change(
            kind="key",
            name="openai-prod",
            action="create",
            fields=(FieldChange("provider", None, "openai"),),
            secret="new",
        ),
        Change(
            kind="key",
            name="azure-eastus",
            action="update",
            fields=(
                FieldChange(
                    "endpoint",
                    "https://old.openai.azure.com",
                    "https://new.openai.azure.com",
                ),
                FieldChange(
                    "fingerprint", "sha256:111111111111", "sha256:222222222222"
                ),
            ),
            secret="changed",
        ),
        Change(kind="key", name="unchanged-key", action="noop", secret="unchanged"),
        Change(
            kind="feature",
            name="copilot",
            action="delete",
            fields=(FieldChange("key", "azure-eastus", None),),
        ),
    ]


def full_report() -> Report:
    """A failing check with problems, keys, a plan and features."""
    return Report(
        command="check",
        exit_code=1,
        problems=problems(),
        keys=keys(),
        changes=changes(),
        data={
            "features": {
                "test-generation": {"key": "openai-prod", "model": "gpt-4o"},
                "copilot": {"key": "azure-eastus", "deployment": "gpt4o-prod"},
            }
        },
        summary="1 of 3 keys failed; 2 errors in 2 files",
    )


def canary_report() -> Report:
    """A report built from a canary secret, the way commands build one."""
    secret = Secret(make_secret())
    report = full_report()
    report.keys = keys(fingerprint=secret.fingerprint)
    report.summary = f"checked {secret}"
    return report
