"""Where a key may be sent: the allow-list and --resolve (no network)."""

from __future__ import annotations

import pytest

from byok_reconcile.commands.checkopts import build_options
from byok_reconcile.errors import UsageError
from byok_reconcile.providers.hosts import (
    HostPattern,
    HostPolicy,
    Origin,
    parse_origin,
)


def policy(*allowed: str, **resolve: str) -> HostPolicy:
    return HostPolicy.build(allowed, resolve)


@pytest.mark.parametrize(
    ("provider", "url"),
    [
        ("openai", "https://api.openai.com/v1"),
        ("openai", "https://API.OpenAI.com./v1"),
        ("azure_openai", "https://contoso.openai.azure.com/"),
        ("azure_openai", "https://x.cognitiveservices.azure.com"),
        ("azure_openai", "https://a.b.services.ai.azure.com/"),
    ],
)
def test_provider_hosts_are_allowed_by_default(provider: str, url: str) -> None:
    assert policy().refusal(provider, url) is None


@pytest.mark.parametrize(
    ("provider", "url"),
    [
        ("openai", "https://api.openai.com.evil.example/v1"),
        ("openai", "https://evil.example/v1"),
        ("openai", "https://api.openai.com@evil.example/v1"),
        ("openai", "http://api.openai.com/v1"),  # plain http off loopback
        ("openai", "https://contoso.openai.azure.com/"),  # other provider's host
        ("azure_openai", "https://openai.azure.com/"),  # apex, not a resource
        ("azure_openai", "https://evilopenai.azure.com/"),
        ("azure_openai", "https://api.openai.com/"),
        ("openai_compatible", "https://vllm.internal/v1"),
        ("openai_compatible", "http://127.0.0.1:8000/v1"),  # loopback: explicit
        ("openai", "ftp://api.openai.com/"),
    ],
)
def test_other_hosts_are_refused(provider: str, url: str) -> None:
    assert policy().refusal(provider, url) is not None


def test_explicit_allow_covers_compatible_and_loopback() -> None:
    p = policy("vllm.internal", "*.corp.example", "127.0.0.1:8000")
    assert p.refusal("openai_compatible", "https://vllm.internal/v1") is None
    assert p.refusal("openai_compatible", "https://a.b.corp.example/v1") is None
    assert p.refusal("openai_compatible", "https://corp.example/v1") is not None
    assert p.refusal("openai_compatible", "http://127.0.0.1:8000/v1") is None
    assert p.refusal("openai_compatible", "http://127.0.0.1:8001/v1") is not None


def test_plain_http_refused_even_when_host_allowed() -> None:
    p = policy("vllm.internal")
    why = p.refusal("openai_compatible", "http://vllm.internal/v1")
    assert why is not None and "http://" in why


def test_ipv6_loopback_pattern() -> None:
    p = policy("[::1]:9000")
    assert p.refusal("openai_compatible", "http://[::1]:9000/v1") is None
    assert HostPattern.parse("[::1]:9000") == HostPattern("::1", 9000)


def test_resolve_rewrites_only_matching_hosts() -> None:
    p = policy(**{"*.openai.azure.com": "http://127.0.0.1:9999"})
    azure = parse_origin("https://contoso.openai.azure.com/")
    assert p.target(azure) == Origin("http", "127.0.0.1", 9999)
    other = parse_origin("https://api.openai.com/v1")
    assert p.target(other) == other
    # The allow-list still judges the original host.
    assert p.refusal("azure_openai", "https://contoso.openai.azure.com/") is None


@pytest.mark.parametrize(
    "url", ["http://192.0.2.1:80", "https://api.openai.com", "http://10.0.0.1"]
)
def test_resolve_refuses_non_loopback_targets(url: str) -> None:
    with pytest.raises(UsageError, match="not loopback"):
        policy(**{"api.openai.com": url})


@pytest.mark.parametrize("bad", ["exa mple.com", "host:99999", "a/b"])
def test_bad_allow_patterns_are_usage_errors(bad: str) -> None:
    with pytest.raises(UsageError):
        policy(bad)


def test_build_options_reads_environment() -> None:
    env = {
        "BYOK_ALLOW_HOSTS": "vllm.internal, *.corp.example",
        "BYOK_RESOLVE": "api.openai.com=http://127.0.0.1:1234",
    }
    opts = build_options(
        allow_hosts=("127.0.0.1",),
        resolve=("*.openai.azure.com=http://localhost:5678",),
        env=env,
    )
    assert opts.allow_hosts == ("127.0.0.1", "vllm.internal", "*.corp.example")
    assert opts.resolve == {
        "api.openai.com": "http://127.0.0.1:1234",
        "*.openai.azure.com": "http://localhost:5678",
    }


def test_build_options_rejects_malformed_resolve() -> None:
    with pytest.raises(UsageError, match="HOST=URL"):
        build_options(resolve=("api.openai.com",), env={})


@pytest.mark.parametrize(
    ("option", "env", "named"),
    [
        ({}, {"BYOK_RESOLVE": "api.openai.com"}, "BYOK_RESOLVE"),
        ({}, {"BYOK_RESOLVE": "api.openai.com=http://10.0.0.1"}, "BYOK_RESOLVE"),
        ({}, {"BYOK_RESOLVE": "a b=http://127.0.0.1"}, "BYOK_RESOLVE"),
        ({}, {"BYOK_ALLOW_HOSTS": "ok.example,exa mple.com"}, "BYOK_ALLOW_HOSTS"),
        ({"resolve": ("api.openai.com",)}, {}, "--resolve"),
        ({"resolve": ("x=http://10.0.0.1",)}, {}, "--resolve"),
        ({"allow_hosts": ("host:99999",)}, {}, "--allow-host"),
    ],
)
def test_bad_entry_names_where_it_came_from(
    option: dict[str, tuple[str, ...]], env: dict[str, str], named: str
) -> None:
    with pytest.raises(UsageError) as caught:
        build_options(**option, env=env)  # type: ignore[arg-type]
    message = str(caught.value)
    assert named in message, message
    others = {"BYOK_RESOLVE", "BYOK_ALLOW_HOSTS", "--resolve", "--allow-host"}
    assert not [o for o in others - {named} if o in caught.value.message]


def test_resolve_keeps_the_target_path_as_a_prefix() -> None:
    p = policy(**{"llm.example.com": "http://127.0.0.1:8000/compat/vllm/",
                  "api.openai.com": "http://localhost:9"})
    assert p.resolve["llm.example.com"] == "http://127.0.0.1:8000/compat/vllm"
    assert p.resolve["api.openai.com"] == "http://localhost:9"
    llm = parse_origin("https://llm.example.com/v1")
    assert p.route(llm) == (Origin("http", "127.0.0.1", 8000), "/compat/vllm")
    assert p.target(llm) == Origin("http", "127.0.0.1", 8000)
    openai = parse_origin("https://api.openai.com/v1")
    assert p.route(openai) == (Origin("http", "localhost", 9), "")
    other = parse_origin("https://elsewhere.example/v1")
    assert p.route(other) == (other, "")


@pytest.mark.parametrize("url", ["http://127.0.0.1:1/p?x=1",
                                 "http://127.0.0.1:1/p#frag"])
def test_resolve_target_with_query_or_fragment_is_usage_error(url: str) -> None:
    with pytest.raises(UsageError, match="query or fragment"):
        policy(**{"llm.example.com": url})


def test_resolve_prefix_is_applied_to_the_request() -> None:
    httpx2 = pytest.importorskip("httpx2")
    from byok_reconcile.providers.transport import apply_resolve

    p = policy(**{"llm.example.com": "http://127.0.0.1:8000/compat/vllm"})
    request = httpx2.Request("GET", "https://llm.example.com/v1/models?a=b%2B")
    assert apply_resolve(p, request) == Origin("http", "127.0.0.1", 8000)
    assert str(request.url) == "http://127.0.0.1:8000/compat/vllm/v1/models?a=b%2B"
    assert request.headers["host"] == "llm.example.com"
    untouched = httpx2.Request("GET", "https://api.openai.com/v1/models")
    apply_resolve(p, untouched)
    assert str(untouched.url) == "https://api.openai.com/v1/models"
