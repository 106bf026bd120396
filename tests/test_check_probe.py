"""Provider checks through the real openai SDK against the loopback emulator.

Configs are built by hand (no validate, no sops): these tests are about what
goes on the wire and which verdict comes back.
"""

from __future__ import annotations

import dataclasses
import json
import urllib.parse
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from byok_reconcile.model import Config, KeySpec, Location, SecretRef
from byok_reconcile.pipeline import CheckOptions
from byok_reconcile.providers.runner import check_keys
from byok_reconcile.providers.session import Sleeper
from byok_reconcile.results import (
    FORBIDDEN,
    INVALID_KEY,
    MISCONFIGURED,
    MODEL_UNAVAILABLE,
    QUOTA_EXHAUSTED,
    RATE_LIMITED,
    UNREACHABLE,
    VALID,
    KeyResult,
)
from byok_reconcile.secret import Secret
from byok_reconcile.testing.config import EmulatedKey, Fault, RateLimit
from byok_reconcile.testing.emulator import Emulator
from tests.canary import assert_no_leak, make_azure_secret, make_secret

LOOPBACK = ("127.0.0.1",)


@pytest.fixture
def emu() -> Iterator[Emulator]:
    with Emulator() as emulator:
        yield emulator


def openai_key(name: str, base: str, models: tuple[str, ...] = ("gpt-4o",),
               provider: str = "openai", **settings: str) -> KeySpec:
    return KeySpec(
        name=name,
        provider=provider,  # type: ignore[arg-type]
        secret=SecretRef("env", Location("keys.yaml", 5, 3), env="K"),
        settings={"baseUrl": base, **settings},
        models=models,
        location=Location("keys.yaml", 1, 1),
    )


def azure_key(name: str, endpoint: str, deployments: Mapping[str, str],
              version: str = "2024-10-21") -> KeySpec:
    return KeySpec(
        name=name,
        provider="azure_openai",
        secret=SecretRef("env", Location("az.yaml", 5, 3), env="K"),
        settings={"endpoint": endpoint, "apiVersion": version},
        deployments=dict(deployments),
        location=Location("az.yaml", 1, 1),
    )


def run(specs: list[KeySpec], secrets: Mapping[str, str], *,
        sleeper: Sleeper | None = None, **opts: Any) -> dict[str, KeyResult]:
    config = Config(keys={k.name: k for k in specs}, features={})
    options = CheckOptions(**{"allow_hosts": LOOPBACK, "timeout": 3.0,
                              "retries": 0, **opts})
    found = check_keys(config, {n: Secret(v) for n, v in secrets.items()},
                       options, sleeper=sleeper or Sleeper(sleep=lambda s: None))
    for result in found:
        assert_no_leak(repr(dataclasses.asdict(result)), "KeyResult")
    return {r.key: r for r in found}


def verdicts(result: KeyResult) -> dict[str, str]:
    return {t.target: t.verdict for t in result.targets}


# -- OpenAI verdicts ------------------------------------------------------


def test_valid_key_and_models(emu: Emulator) -> None:
    secret = make_secret()
    emu.add_key(EmulatedKey(secret=secret))
    spec = openai_key("k", emu.openai_base_url, ("gpt-4o", "gpt-4o-mini"))
    result = run([spec], {"k": secret})["k"]
    assert result.verdict == VALID and result.working
    assert verdicts(result) == {"gpt-4o": VALID, "gpt-4o-mini": VALID}
    assert result.fingerprint == Secret(secret).fingerprint
    assert result.request_id and result.host == "127.0.0.1"
    assert (result.file, result.line, result.col) == ("keys.yaml", 1, 1)
    assert [r.path for r in emu.requests] == ["/v1/models"]
    assert emu.requests[0].api_key == secret


def test_invalid_key(emu: Emulator) -> None:
    emu.add_key(EmulatedKey(secret=make_secret()))
    result = run([openai_key("k", emu.openai_base_url)], {"k": make_secret()})["k"]
    assert result.verdict == INVALID_KEY
    assert verdicts(result) == {"gpt-4o": INVALID_KEY}
    assert result.request_id


def test_deactivated_account_is_invalid_with_its_own_detail(emu: Emulator) -> None:
    secret = make_secret()
    emu.add_key(EmulatedKey(secret=secret, deactivated=True))
    result = run([openai_key("k", emu.openai_base_url)], {"k": secret})["k"]
    assert result.verdict == INVALID_KEY
    assert "deactivated" in result.detail


@pytest.mark.parametrize("settings", [{"organization": "org-other"},
                                      {"organization": "org-nowhere"},
                                      {"project": "proj_other"}])
def test_org_or_project_mismatch_is_misconfigured(
    emu: Emulator, settings: dict[str, str]
) -> None:
    secret = make_secret()
    emu.add_key(EmulatedKey(secret=secret, organization="org-mine"))
    emu.add_key(EmulatedKey(secret=make_secret(), organization="org-other"))
    spec = openai_key("k", emu.openai_base_url, **settings)
    result = run([spec], {"k": secret})["k"]
    assert result.verdict == MISCONFIGURED


def test_country_block_is_forbidden(emu: Emulator) -> None:
    secret = make_secret()
    emu.add_key(EmulatedKey(secret=secret, country_blocked=True))
    result = run([openai_key("k", emu.openai_base_url)], {"k": secret})["k"]
    assert result.verdict == FORBIDDEN


def test_missing_model(emu: Emulator) -> None:
    secret = make_secret()
    emu.add_key(EmulatedKey(secret=secret, models=("gpt-4o",)))
    spec = openai_key("k", emu.openai_base_url, ("gpt-4o", "gpt-4o-mini", "nope"))
    result = run([spec], {"k": secret})["k"]
    assert verdicts(result) == {"gpt-4o": VALID, "gpt-4o-mini": MODEL_UNAVAILABLE,
                                "nope": MODEL_UNAVAILABLE}
    assert result.verdict == MODEL_UNAVAILABLE and not result.working


def test_restricted_key_falls_back_to_retrieve(emu: Emulator) -> None:
    emu.stop()
    with Emulator(scope_requirements={"models.retrieve": "model.request"}) as e2:
        secret = make_secret()
        e2.add_key(EmulatedKey(secret=secret, scopes=("model.request",)))
        spec = openai_key("k", e2.openai_base_url, ("gpt-4o", "gpt-9"))
        result = run([spec], {"k": secret})["k"]
        assert verdicts(result) == {"gpt-4o": VALID, "gpt-9": MODEL_UNAVAILABLE}
        assert result.targets[0].proven.startswith("GET /models/")
        first, *rest = [r.path for r in e2.requests]  # models run concurrently
        assert first == "/v1/models"
        assert sorted(rest) == ["/v1/models/gpt-4o", "/v1/models/gpt-9"]


def test_restricted_key_without_any_read_scope(emu: Emulator) -> None:
    secret = make_secret()
    emu.add_key(EmulatedKey(secret=secret, scopes=("model.request",)))
    result = run([openai_key("k", emu.openai_base_url)], {"k": secret})["k"]
    # Authenticated but nothing about the model could be proven for free.
    assert result.verdict == FORBIDDEN
    assert "--deep" in result.targets[0].proven
    deep = run([openai_key("k", emu.openai_base_url)], {"k": secret}, deep=True)
    assert deep["k"].verdict == VALID


def test_deep_finds_exhausted_quota_without_retrying(emu: Emulator) -> None:
    secret = make_secret()
    emu.add_key(EmulatedKey(secret=secret, credit=False))
    spec = openai_key("k", emu.openai_base_url, ("gpt-4o", "text-embedding-3-small"))
    assert run([spec], {"k": secret})["k"].verdict == VALID  # free probe: blind
    emu.clear()
    result = run([spec], {"k": secret}, deep=True, retries=3)["k"]
    assert verdicts(result) == {"gpt-4o": QUOTA_EXHAUSTED,
                                "text-embedding-3-small": QUOTA_EXHAUSTED}
    first, *rest = [r.path for r in emu.requests]  # models run concurrently
    assert first == "/v1/models"
    assert sorted(rest) == ["/v1/chat/completions", "/v1/embeddings"]
    (chat,) = emu.requests_to("/v1/chat/completions")
    assert chat.body["max_completion_tokens"] == 1


def test_deep_reasoning_model_is_valid(emu: Emulator) -> None:
    secret = make_secret()
    emu.add_key(EmulatedKey(secret=secret))
    spec = openai_key("k", emu.openai_base_url, ("o3-mini",))
    result = run([spec], {"k": secret}, deep=True)["k"]
    assert result.verdict == VALID
    assert result.targets[0].proven == "answered a real request"


# -- compatible servers ---------------------------------------------------


def test_vllm_string_error_is_invalid_key(emu: Emulator) -> None:
    emu.add_key(EmulatedKey(secret=make_secret(), dialects=("vllm",)))
    spec = openai_key("v", emu.compat_base_url("vllm"), provider="openai_compatible")
    result = run([spec], {"v": make_secret()})["v"]
    assert result.verdict == INVALID_KEY


def test_compatible_valid(emu: Emulator) -> None:
    secret = make_secret()
    emu.add_key(EmulatedKey(secret=secret, dialects=("vllm",)))
    spec = openai_key("v", emu.compat_base_url("vllm"), provider="openai_compatible")
    assert run([spec], {"v": secret})["v"].verdict == VALID


# -- Azure ----------------------------------------------------------------


def test_azure_deployments_proven_for_free(emu: Emulator) -> None:
    secret = make_azure_secret()
    emu.add_key(EmulatedKey.azure(secret, {"chat": "gpt-4o",
                                           "emb": "text-embedding-3-small"}))
    spec = azure_key("a", emu.azure_endpoint,
                     {"chat": "gpt-4o", "emb": "text-embedding-3-small",
                      "gone": "gpt-4o"})
    result = run([spec], {"a": secret})["a"]
    assert verdicts(result) == {"chat": VALID, "emb": VALID,
                                "gone": MODEL_UNAVAILABLE}
    assert result.request_id  # apim-request-id
    posts = [r for r in emu.requests if r.method == "POST"]
    assert {r.path for r in posts} == {
        "/openai/deployments/chat/chat/completions",
        "/openai/deployments/emb/embeddings",
        "/openai/deployments/gone/chat/completions",
    }
    assert all(r.headers["api-key"] == secret for r in emu.requests)
    assert all("authorization" not in r.headers for r in emu.requests)


def test_azure_wrong_key(emu: Emulator) -> None:
    emu.add_key(EmulatedKey.azure(make_azure_secret(), {"chat": "gpt-4o"}))
    spec = azure_key("a", emu.azure_endpoint, {"chat": "gpt-4o"})
    assert run([spec], {"a": make_azure_secret()})["a"].verdict == INVALID_KEY


@pytest.mark.parametrize("version", ["2099-01-01", "2024-06-01"])
def test_azure_api_version_problems_are_misconfigured(
    emu: Emulator, version: str
) -> None:
    secret = make_azure_secret()
    emu.add_key(EmulatedKey.azure(secret, {"chat": "gpt-4o"},
                                  api_versions=("2024-10-21",)))
    spec = azure_key("a", emu.azure_endpoint, {"chat": "gpt-4o"}, version)
    result = run([spec], {"a": secret})["a"]
    assert result.verdict == MISCONFIGURED


def test_azure_v1(emu: Emulator) -> None:
    secret = make_azure_secret()
    emu.add_key(EmulatedKey.azure(secret, {"chat": "gpt-4o"}))
    spec = azure_key("a", emu.azure_endpoint, {"chat": "gpt-4o", "x": "gpt-4o"},
                     "v1")
    result = run([spec], {"a": secret})["a"]
    assert verdicts(result) == {"chat": VALID, "x": MODEL_UNAVAILABLE}
    assert {r.path for r in emu.requests} == {"/openai/v1/models",
                                              "/openai/v1/chat/completions"}


def test_azure_deep_quota(emu: Emulator) -> None:
    secret = make_azure_secret()
    emu.add_key(EmulatedKey.azure(secret, {"chat": "gpt-4o"}, credit=False))
    spec = azure_key("a", emu.azure_endpoint, {"chat": "gpt-4o"})
    result = run([spec], {"a": secret}, deep=True)["a"]
    assert result.verdict in (QUOTA_EXHAUSTED, VALID)


# -- transport failures, retries, limits ----------------------------------


@pytest.mark.parametrize("fault", [
    Fault(path="/v1/models", status=500),
    Fault(path="/v1/models", status=503),
    Fault(path="/v1/models", kind="html", status=502),
    Fault(path="/v1/models", kind="html", status=401),
    Fault(path="/v1/models", kind="reset"),
    Fault(path="/v1/models", kind="drop"),
])
def test_failures_are_unreachable_never_invalid(emu: Emulator, fault: Fault) -> None:
    secret = make_secret()
    emu.add_key(EmulatedKey(secret=secret))
    emu.add_fault(fault)
    result = run([openai_key("k", emu.openai_base_url)], {"k": secret})["k"]
    assert result.verdict == UNREACHABLE


def test_hang_times_out(emu: Emulator) -> None:
    secret = make_secret()
    emu.add_key(EmulatedKey(secret=secret))
    emu.add_fault(Fault(path="/v1/models", kind="hang", seconds=5))
    result = run([openai_key("k", emu.openai_base_url)], {"k": secret},
                 timeout=0.5)["k"]
    assert result.verdict == UNREACHABLE
    assert "0.5s" in result.detail


def test_5xx_retried_then_succeeds(emu: Emulator) -> None:
    secret = make_secret()
    emu.add_key(EmulatedKey(secret=secret))
    emu.add_fault(Fault(path="/v1/models", status=503, times=2))
    delays: list[float] = []
    result = run([openai_key("k", emu.openai_base_url)], {"k": secret},
                 sleeper=Sleeper(sleep=delays.append), retries=3)["k"]
    assert result.verdict == VALID
    assert len(emu.requests_to("/v1/models")) == 3
    assert len(delays) == 2 and delays[1] > delays[0] * 1.2


@pytest.mark.parametrize(("headers", "waited"), [
    ({"retry-after-ms": "200", "retry-after": "1"}, 0.2),
    ({"retry-after": "2"}, 2.0),
])
def test_rate_limit_honours_retry_after(
    emu: Emulator, headers: dict[str, str], waited: float
) -> None:
    secret = make_secret()
    emu.add_key(EmulatedKey(secret=secret))
    emu.add_fault(Fault(path="/v1/models", status=429, times=1, headers=headers))
    delays: list[float] = []
    result = run([openai_key("k", emu.openai_base_url)], {"k": secret},
                 retries=2, sleeper=Sleeper(sleep=delays.append))["k"]
    assert result.verdict == VALID
    assert [r.status for r in emu.requests] == [429, 200]
    assert delays == [waited]


def test_rate_limit_waits_for_real(emu: Emulator) -> None:
    secret = make_secret()
    emu.add_key(EmulatedKey(secret=secret))
    emu.add_rate_limit(RateLimit(limit=0, path="/v1/models", retry_after=0.2))
    result = run([openai_key("k", emu.openai_base_url)], {"k": secret},
                 retries=1, sleeper=Sleeper())["k"]
    assert result.verdict == RATE_LIMITED
    first, second = emu.requests
    assert second.time - first.time >= 0.19  # no timing upper bound on purpose


def test_rate_limit_exhausted_is_rate_limited(emu: Emulator) -> None:
    secret = make_secret()
    emu.add_key(EmulatedKey(secret=secret))
    emu.add_rate_limit(RateLimit(limit=0, path="/v1/models", retry_after=0.1))
    delays: list[float] = []
    result = run([openai_key("k", emu.openai_base_url)], {"k": secret},
                 retries=2, sleeper=Sleeper(sleep=delays.append))["k"]
    assert result.verdict == RATE_LIMITED and result.working
    assert len(emu.requests) == 3 and delays == [0.1, 0.1]


def test_retry_after_beyond_cap_gives_up_at_once(emu: Emulator) -> None:
    secret = make_secret()
    emu.add_key(EmulatedKey(secret=secret))
    emu.add_rate_limit(RateLimit(limit=0, path="/v1/models", retry_after=600))
    result = run([openai_key("k", emu.openai_base_url)], {"k": secret},
                 retries=3)["k"]
    assert result.verdict == RATE_LIMITED
    assert len(emu.requests) == 1


def test_concurrency_limits(emu: Emulator) -> None:
    emu.set_latency(0.15)
    specs, secrets = [], {}
    for i in range(8):
        secret = make_secret()
        emu.add_key(EmulatedKey(secret=secret))
        specs.append(openai_key(f"k{i}", emu.openai_base_url))
        secrets[f"k{i}"] = secret
    results = run(specs, secrets, concurrency=8, per_host=2)
    assert all(r.verdict == VALID for r in results.values())
    assert emu.max_in_flight == 2
    emu.clear()
    run(specs, secrets, concurrency=3, per_host=32)
    assert emu.max_in_flight == 3


def test_one_keys_targets_run_concurrently_within_limits(emu: Emulator) -> None:
    # Many deployments of one key must not be probed one after another.
    deployments = {f"d{i}": "gpt-4o" for i in range(8)}
    secret = make_azure_secret()
    emu.add_key(EmulatedKey.azure(secret, deployments))
    emu.set_latency(0.15)
    spec = azure_key("a", emu.azure_endpoint, deployments)
    result = run([spec], {"a": secret}, concurrency=8, per_host=4)["a"]
    assert set(verdicts(result).values()) == {VALID}
    assert list(verdicts(result)) == list(deployments)  # order kept
    assert emu.max_in_flight == 4  # parallel, yet within --per-host
    emu.clear()
    run([spec], {"a": secret}, concurrency=2, per_host=32)
    assert emu.max_in_flight == 2  # and within --concurrency


@pytest.mark.parametrize("deep", [True, False])
def test_openai_models_run_concurrently(emu: Emulator, deep: bool) -> None:
    # deep: one chat request per model; restricted key: one retrieve per model.
    models = tuple(f"m{i}" for i in range(6))
    secret = make_secret()
    scopes = ("model.request",) if not deep else ()
    emu.stop()
    with Emulator(scope_requirements={"models.retrieve": "model.request"}) as e2:
        key = EmulatedKey(secret=secret, scopes=scopes) if scopes else EmulatedKey(
            secret=secret)
        e2.add_key(key)
        e2.set_latency(0.15)
        spec = openai_key("k", e2.openai_base_url, models)
        result = run([spec], {"k": secret}, deep=deep, concurrency=8, per_host=3)
        assert list(verdicts(result["k"])) == list(models)
        assert e2.max_in_flight == 3


# -- what failures say ----------------------------------------------------


@pytest.mark.parametrize("fault", [
    Fault(path="/v1/models", status=503),
    Fault(path="/v1/models", kind="reset"),
    Fault(path="/v1/models", kind="html", status=502),
])
def test_unreachable_names_the_configured_host(emu: Emulator, fault: Fault) -> None:
    secret = make_secret()
    emu.add_key(EmulatedKey(secret=secret))
    emu.add_fault(fault)
    spec = openai_key("k", "https://api.openai.com/v1", ("gpt-4o", "gpt-4o-mini"))
    result = run([spec], {"k": secret}, allow_hosts=(),
                 resolve={"api.openai.com": emu.url})["k"]
    assert result.verdict == UNREACHABLE
    assert "api.openai.com" in result.detail, result.detail
    assert {t.detail for t in result.targets} == {
        "not checked: api.openai.com was unreachable"
    }


def test_timeout_names_the_host(emu: Emulator) -> None:
    secret = make_secret()
    emu.add_key(EmulatedKey(secret=secret))
    emu.add_fault(Fault(path="/v1/models", kind="hang", seconds=5))
    result = run([openai_key("k", emu.openai_base_url)], {"k": secret},
                 timeout=0.3)["k"]
    assert "no answer from 127.0.0.1 within 0.3s" in result.detail


def test_skipped_targets_say_why(emu: Emulator) -> None:
    emu.add_key(EmulatedKey(secret=make_secret()))
    refused = openai_key("r", "https://nowhere.example/v1",
                         provider="openai_compatible")
    bad = openai_key("b", emu.openai_base_url)
    found = run([refused, bad], {"r": make_secret(), "b": make_secret()})
    assert found["r"].verdict == MISCONFIGURED
    assert found["r"].targets[0].detail == (
        "not checked: the key's configuration is wrong"
    )
    assert found["b"].verdict == INVALID_KEY
    assert found["b"].targets[0].detail == "not checked: the key itself failed"


# -- where keys go --------------------------------------------------------


def test_refused_host_sends_nothing(emu: Emulator) -> None:
    secret = make_secret()
    emu.add_key(EmulatedKey(secret=secret))
    spec = openai_key("k", emu.openai_base_url, provider="openai_compatible")
    result = run([spec], {"k": secret}, allow_hosts=())["k"]
    assert result.verdict == MISCONFIGURED
    assert "not allowed" in result.detail
    assert emu.requests == []


def test_resolve_sends_provider_host_to_loopback(emu: Emulator) -> None:
    secret = make_secret()
    emu.add_key(EmulatedKey(secret=secret))
    spec = openai_key("k", "https://api.openai.com/v1")
    result = run([spec], {"k": secret}, allow_hosts=(),
                 resolve={"api.openai.com": emu.url})["k"]
    assert result.verdict == VALID and result.host == "api.openai.com"
    assert len(emu.requests) == 1


def test_resolve_does_not_bypass_allow_list(emu: Emulator) -> None:
    secret = make_secret()
    emu.add_key(EmulatedKey(secret=secret))
    spec = openai_key("k", "https://evil.example/v1")
    result = run([spec], {"k": secret}, allow_hosts=(),
                 resolve={"evil.example": emu.url})["k"]
    assert result.verdict == MISCONFIGURED and emu.requests == []


def test_env_variables_change_nothing_on_the_wire(
    emu: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret, other = make_secret(), make_secret()
    emu.add_key(EmulatedKey(secret=secret))
    monkeypatch.setenv("OPENAI_ORG_ID", "org-stray")
    monkeypatch.setenv("OPENAI_PROJECT_ID", "proj_stray")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.2:9/v1")
    monkeypatch.setenv("OPENAI_API_KEY", other)
    monkeypatch.setenv("OPENAI_CUSTOM_HEADERS",
                       f"Authorization: Bearer {other}\nX-Stray: 1")
    monkeypatch.setenv("AZURE_OPENAI_AD_TOKEN", other)
    monkeypatch.setenv("OPENAI_API_VERSION", "2099-01-01")
    az = make_azure_secret()
    emu.add_key(EmulatedKey.azure(az, {"chat": "gpt-4o"}))
    specs = [openai_key("k", emu.openai_base_url),
             azure_key("a", emu.azure_endpoint, {"chat": "gpt-4o"})]
    results = run(specs, {"k": secret, "a": az})
    assert results["k"].verdict == VALID and results["a"].verdict == VALID
    for request in emu.requests:
        headers = request.headers
        assert "openai-organization" not in headers
        assert "openai-project" not in headers
        assert request.api_key in (secret, az)
        assert other not in repr(dict(headers))
    assert {r.query.get("api-version") for r in emu.requests_to("/openai")} == {
        "2024-10-21"}


def test_configured_org_and_project_are_sent(emu: Emulator) -> None:
    secret = make_secret()
    emu.add_key(EmulatedKey(secret=secret, organization="org-a", project="proj_a"))
    spec = openai_key("k", emu.openai_base_url, organization="org-a",
                      project="proj_a")
    assert run([spec], {"k": secret})["k"].verdict == VALID
    headers = emu.requests[0].headers
    assert headers["openai-organization"] == "org-a"
    assert headers["openai-project"] == "proj_a"


def test_redirect_to_another_host_is_refused(emu: Emulator) -> None:
    secret = make_secret()
    emu.add_key(EmulatedKey(secret=secret))
    with Emulator() as elsewhere:
        emu.add_fault(Fault(path="/v1/models", status=307, times=1,
                            headers={"location": elsewhere.openai_base_url
                                     + "/models"}))
        # Allowed by IP for any port, so only the approve-list stops it.
        result = run([openai_key("k", emu.openai_base_url)], {"k": secret},
                     retries=2)["k"]
        assert elsewhere.requests == []
    assert result.verdict == MISCONFIGURED
    assert len(emu.requests) == 1



# -- a provider that echoes the key ---------------------------------------


def test_vllm_echo_of_truncated_key_is_scrubbed(emu: Emulator) -> None:
    secret = make_secret("Zq+/x=Y+")
    emu.add_key(EmulatedKey(secret=secret, dialects=("vllm",)))
    emu.add_fault(Fault(path="/compat/vllm/v1/", status=403, body=json.dumps(
        {"error": f"API key {secret[:-4]}**** is not allowed"})))
    spec = openai_key("v", emu.compat_base_url("vllm"), provider="openai_compatible")
    result = run([spec], {"v": secret})["v"]
    assert result.verdict == FORBIDDEN
    assert "[redacted]" in result.detail
    assert_no_piece(repr(dataclasses.asdict(result)), secret)


def test_azure_echo_in_message_and_request_id_is_scrubbed(emu: Emulator) -> None:
    secret = make_azure_secret()
    emu.add_key(EmulatedKey.azure(secret, {"chat": "gpt-4o"}))
    message = f"Rate limit for key {secret[:20]}..."
    emu.add_fault(Fault(path="/openai/", status=429,
                        body=json.dumps({"error": {"code": "429",
                                                   "message": message}}),
                        headers={"x-request-id": secret, "retry-after": "0"}))
    result = run([azure_key("a", emu.azure_endpoint, {"chat": "gpt-4o"})],
                 {"a": secret})["a"]
    assert result.verdict == RATE_LIMITED
    assert result.request_id is None
    assert all(t.request_id is None for t in result.targets)
    assert_no_piece(repr(dataclasses.asdict(result)), secret)


@pytest.mark.parametrize("header", ["x-request-id", "apim-request-id"])
def test_request_id_holding_the_key_is_dropped_on_success(
    emu: Emulator, header: str
) -> None:
    secret = make_secret()
    emu.add_key(EmulatedKey(secret=secret))
    emu.add_fault(Fault(path="/v1/models", status=200, headers={
        header: urllib.parse.quote(secret, safe="").upper()}))
    result = run([openai_key("k", emu.openai_base_url)], {"k": secret})["k"]
    assert result.request_id is None or result.request_id.startswith("req_")
    assert_no_piece(repr(dataclasses.asdict(result)), secret)


def assert_no_piece(text: str, secret: str) -> None:
    assert_no_leak(text)
    lowered = urllib.parse.unquote(text).lower()
    runs = {secret[i : i + 8].lower() for i in range(len(secret) - 7)}
    assert not [r for r in runs if r in lowered], text


# -- keys that cannot go in a header --------------------------------------


@pytest.mark.parametrize("stray", ["\n", "\r\n", "\x00", "\t", "\x7f"])
@pytest.mark.parametrize("azure", [False, True])
def test_key_with_control_character_is_misconfigured(
    emu: Emulator, stray: str, azure: bool
) -> None:
    if azure:
        secret = make_azure_secret()
        emu.add_key(EmulatedKey.azure(secret, {"chat": "gpt-4o"}))
        spec = azure_key("k", emu.azure_endpoint, {"chat": "gpt-4o"})
    else:
        secret = make_secret()
        emu.add_key(EmulatedKey(secret=secret))
        spec = openai_key("k", emu.openai_base_url)
    result = run([spec], {"k": secret[:10] + stray + secret[10:]})["k"]
    assert result.verdict == MISCONFIGURED
    assert result.detail == ("the API key contains a line break or control "
                             "character: re-encrypt it without one")
    assert [t.verdict for t in result.targets] == [MISCONFIGURED]
    assert emu.requests == []


def test_key_with_non_ascii_character_is_misconfigured(emu: Emulator) -> None:
    secret = make_secret()
    result = run([openai_key("k", emu.openai_base_url)],
                 {"k": secret + "\u00e9"})["k"]
    assert result.verdict == MISCONFIGURED and "non-ASCII" in result.detail
    assert emu.requests == []


# -- --resolve with a path ------------------------------------------------


def compat_behind(emu: Emulator, flavour: str = "vllm") -> dict[str, Any]:
    """Options that send llm.example.com to the emulator's compat server."""
    return {"allow_hosts": ("llm.example.com",),
            "resolve": {"llm.example.com": f"{emu.url}/compat/{flavour}/"}}


def test_resolve_path_prefix_reaches_the_compat_server(emu: Emulator) -> None:
    secret = make_secret()
    emu.add_key(EmulatedKey(secret=secret, dialects=("vllm",)))
    spec = openai_key("v", "https://llm.example.com/v1", ("gpt-4o",),
                      provider="openai_compatible")
    result = run([spec], {"v": secret}, **compat_behind(emu))["v"]
    assert result.verdict == VALID and result.host == "llm.example.com"
    assert [r.path for r in emu.requests] == ["/compat/vllm/v1/models"]


def test_resolve_path_prefix_vllm_401_is_invalid_key(emu: Emulator) -> None:
    emu.add_key(EmulatedKey(secret=make_secret(), dialects=("vllm",)))
    spec = openai_key("v", "https://llm.example.com/v1", ("gpt-4o",),
                      provider="openai_compatible")
    result = run([spec], {"v": make_secret()}, **compat_behind(emu))["v"]
    assert result.verdict == INVALID_KEY
    assert [r.path for r in emu.requests] == ["/compat/vllm/v1/models"]


def test_resolve_path_prefix_keeps_the_query(emu: Emulator) -> None:
    secret = make_azure_secret()
    emu.add_key(EmulatedKey.azure(secret, {"chat": "gpt-4o"}))
    spec = azure_key("a", "https://contoso.openai.azure.com", {"chat": "gpt-4o"})
    with Emulator() as front:
        # The emulator serves Azure at its root only: a prefix shows as 404.
        result = run([spec], {"a": secret}, allow_hosts=(),
                     resolve={"*.openai.azure.com": f"{front.url}/gw"})["a"]
        assert [r.path for r in front.requests] == ["/gw/openai/models"]
        assert front.requests[0].query.get("api-version") == "2024-10-21"
    assert result.verdict == MISCONFIGURED
