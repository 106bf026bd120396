"""The provider emulator, driven through the real openai SDK and raw HTTP."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from byok_reconcile.errors import ConfigError
from byok_reconcile.testing import (
    EmulatedKey,
    Emulator,
    Fault,
    RateLimit,
    config_from_mapping,
    load_config,
)
from tests import canary
from tests.fixtures.emulator import add_azure_key, add_openai_key

CHAT: list[ChatCompletionMessageParam] = [{"role": "user", "content": "ping"}]
AZURE_GA = "2024-10-21"


def _client(emu: Emulator, key: str, **kwargs: Any) -> openai.OpenAI:
    return openai.OpenAI(api_key=key, base_url=emu.openai_base_url,
                         max_retries=0, timeout=5, **kwargs)


def _azure(emu: Emulator, key: str, version: str = AZURE_GA) -> openai.AzureOpenAI:
    return openai.AzureOpenAI(api_key=key, azure_endpoint=emu.azure_endpoint,
                              api_version=version, max_retries=0, timeout=5)


def _status_error(call: Callable[[], Any]) -> openai.APIStatusError:
    with pytest.raises(openai.APIStatusError) as info:
        call()
    canary.assert_no_leak(str(info.value), "SDK error")
    canary.assert_no_leak(info.value.response.text, "response body")
    return info.value


def _raw(emu: Emulator, method: str, path: str, headers: dict[str, str] | None = None,
         body: Any = None, timeout: float = 5) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", emu.port, timeout=timeout)
    data = None if body is None else json.dumps(body).encode()
    conn.request(method, path, body=data, headers=headers or {})
    resp = conn.getresponse()
    payload = resp.read()
    conn.close()
    return resp.status, {k.lower(): v for k, v in resp.getheaders()}, payload


# --- OpenAI: success ----------------------------------------------------------


def test_models_list_and_headers(emulator: Emulator) -> None:
    key = add_openai_key(emulator, organization="org-a", models=("gpt-4o",))
    raw = _client(emulator, key).models.with_raw_response.list()
    assert [m.id for m in raw.parse()] == ["gpt-4o"]
    assert raw.headers["x-request-id"].startswith("req_")
    assert raw.headers["openai-organization"] == "org-a"
    assert raw.headers["openai-version"] == "2020-10-01"
    assert int(raw.headers["openai-processing-ms"]) > 0
    assert emulator.requests[-1].api_key == key


def test_inference_objects_are_shaped_like_the_real_ones(emulator: Emulator) -> None:
    client = _client(emulator, add_openai_key(emulator))
    chat = client.chat.completions.with_raw_response.create(
        model="gpt-4o", messages=CHAT, max_completion_tokens=2)
    completion = chat.parse()
    assert completion.id.startswith("chatcmpl-")
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage is not None and completion.usage.completion_tokens == 2
    assert chat.headers["x-ratelimit-remaining-requests"].isdigit()
    response = client.responses.create(model="gpt-4o", input="ping",
                                       max_output_tokens=16)
    assert response.id.startswith("resp_") and response.output_text
    vectors = client.embeddings.create(model="text-embedding-3-small",
                                       input=["a", "b"], dimensions=4)
    assert [len(d.embedding) for d in vectors.data] == [4, 4]


def test_model_retrieve_and_unknown(emulator: Emulator) -> None:
    client = _client(emulator, add_openai_key(emulator))
    assert client.models.retrieve("gpt-4o").id == "gpt-4o"
    error = _status_error(lambda: client.models.retrieve("no-such-model"))
    assert (error.status_code, error.code, error.param) == (404, "model_not_found",
                                                            "model")


# --- OpenAI: key and account errors -------------------------------------------


def test_invalid_key_is_echoed_redacted(emulator: Emulator) -> None:
    add_openai_key(emulator)
    wrong = canary.make_secret()
    error = _status_error(lambda: _client(emulator, wrong).models.list())
    assert isinstance(error, openai.AuthenticationError)
    assert (error.code, error.type) == ("invalid_api_key", "invalid_request_error")
    assert error.request_id and error.request_id.startswith("req_")
    assert "sk-proj-" in error.message and wrong[-4:] + "." in error.message
    assert "*" * 20 in error.message


def test_missing_key(emulator: Emulator) -> None:
    status, headers, body = _raw(emulator, "GET", "/v1/models")
    error = json.loads(body)["error"]
    assert status == 401 and error["code"] is None
    assert error["message"].startswith("You didn't provide an API key.")
    assert headers["x-request-id"].startswith("req_")


@pytest.mark.parametrize(("fields", "status", "code"), [
    ({"deactivated": True}, 401, "account_deactivated"),
    ({"no_organization": True}, 401, "no_organization"),
    ({"country_blocked": True}, 403, "unsupported_country_region_territory"),
])
def test_account_problems(emulator: Emulator, fields: dict[str, Any], status: int,
                          code: str) -> None:
    client = _client(emulator, add_openai_key(emulator, **fields))
    error = _status_error(lambda: client.models.list())
    assert (error.status_code, error.code) == (status, code)


@pytest.mark.parametrize(("kwargs", "code"), [
    ({"organization": "org-other"}, "mismatched_organization"),
    ({"organization": "org-nobody"}, "invalid_organization"),
    ({"project": "proj_other"}, "mismatched_project"),
])
def test_org_and_project_headers(emulator: Emulator, kwargs: dict[str, str],
                                 code: str) -> None:
    add_openai_key(emulator, organization="org-other")
    key = add_openai_key(emulator, organization="org-mine", project="proj_mine")
    error = _status_error(lambda: _client(emulator, key, **kwargs).models.list())
    assert (error.status_code, error.code) == (401, code)
    sent = emulator.requests[-1].headers
    assert sent.get("openai-organization") == kwargs.get("organization")


def test_restricted_key_without_model_read(emulator: Emulator) -> None:
    client = _client(emulator, add_openai_key(emulator, scopes=("model.request",)))
    error = _status_error(lambda: client.models.list())
    assert isinstance(error, openai.PermissionDeniedError)
    assert "Missing scopes: api.model.read" in error.message
    assert client.chat.completions.create(model="gpt-4o", messages=CHAT).choices
    error = _status_error(lambda: client.responses.create(model="gpt-4o",
                                                          input="x"))
    assert error.status_code == 401 and "api.responses.write" in error.message


# --- OpenAI: model errors -------------------------------------------------------


def test_unknown_model_differs_by_api(emulator: Emulator) -> None:
    client = _client(emulator, add_openai_key(emulator))
    chat = _status_error(lambda: client.chat.completions.create(
        model="gpt-9", messages=CHAT))
    assert isinstance(chat, openai.NotFoundError) and chat.code == "model_not_found"
    resp = _status_error(lambda: client.responses.create(model="gpt-9", input="x"))
    assert isinstance(resp, openai.BadRequestError)
    assert (resp.code, resp.param) == ("model_not_found", "model")


def test_project_without_model_access(emulator: Emulator) -> None:
    client = _client(emulator, add_openai_key(emulator, models=("gpt-4o",)))
    error = _status_error(lambda: client.chat.completions.create(
        model="gpt-4o-mini", messages=CHAT))
    assert (error.status_code, error.code) == (403, "model_not_found")
    assert "does not have access to model `gpt-4o-mini`" in error.message


def test_wrong_kind_and_parameters(emulator: Emulator) -> None:
    client = _client(emulator, add_openai_key(emulator))
    error = _status_error(lambda: client.chat.completions.create(
        model="text-embedding-3-small", messages=CHAT))
    assert error.status_code == 400 and "not a chat model" in error.message
    error = _status_error(lambda: client.chat.completions.create(
        model="o3-mini", messages=CHAT, max_tokens=5))
    assert (error.code, error.param) == ("unsupported_parameter", "max_tokens")
    error = _status_error(lambda: client.responses.create(
        model="gpt-4o", input="x", max_output_tokens=1))
    assert error.code == "integer_below_min_value"


# --- OpenAI: quota, rate limits, server errors ------------------------------------


def test_no_credit_lists_models_but_fails_inference(emulator: Emulator) -> None:
    client = _client(emulator, add_openai_key(emulator, credit=False))
    assert len(client.models.list().data) > 1
    error = _status_error(lambda: client.chat.completions.create(
        model="gpt-4o", messages=CHAT))
    assert isinstance(error, openai.RateLimitError)
    assert (error.code, error.type) == ("insufficient_quota", "insufficient_quota")


def test_rate_limit_sends_retry_headers(emulator: Emulator) -> None:
    client = _client(emulator, add_openai_key(emulator))
    emulator.add_rate_limit(RateLimit(limit=1, path="/v1/chat", retry_after=0.25))
    client.chat.completions.create(model="gpt-4o", messages=CHAT)
    error = _status_error(lambda: client.chat.completions.create(
        model="gpt-4o", messages=CHAT))
    assert (error.status_code, error.code, error.type) == (
        429, "rate_limit_exceeded", "requests")
    assert error.response.headers["retry-after-ms"] == "250"
    assert error.response.headers["retry-after"] == "1"
    assert client.models.list().data  # other paths are not limited


def test_injected_5xx_then_recovery(emulator: Emulator) -> None:
    client = _client(emulator, add_openai_key(emulator))
    emulator.add_fault(Fault(path="/v1/models", status=503, times=1))
    emulator.add_fault(Fault(path="/v1/chat", status=500, times=1))
    error = _status_error(lambda: client.models.list())
    assert isinstance(error, openai.InternalServerError)
    assert (error.status_code, error.type) == (503, "server_error")
    assert error.request_id and error.request_id in error.message
    assert "overloaded" in error.message
    error = _status_error(lambda: client.chat.completions.create(
        model="gpt-4o", messages=CHAT))
    assert error.status_code == 500 and "had an error" in error.message
    assert client.models.list().data
    assert [r.fault for r in emulator.requests] == ["status", "status", None]


def test_unknown_openai_path(emulator: Emulator) -> None:
    client = _client(emulator, add_openai_key(emulator))
    error = _status_error(lambda: client.get("/nothing", cast_to=object))
    assert error.status_code == 404 and "Invalid URL (GET /v1/nothing)" in error.message


# --- Azure ----------------------------------------------------------------------


def test_azure_dated_success(emulator: Emulator) -> None:
    key = add_azure_key(emulator, {"chat": "gpt-4o", "emb": "text-embedding-3-small"})
    client = _azure(emulator, key)
    raw = client.models.with_raw_response.list()
    assert "gpt-4o" in [m.id for m in raw.parse()]
    assert raw.headers["apim-request-id"]
    assert client.chat.completions.create(model="chat", messages=CHAT).choices
    assert client.embeddings.create(model="emb", input="x").data[0].embedding
    sent = emulator.requests[-1]
    assert sent.path == "/openai/deployments/emb/embeddings"
    assert sent.query["api-version"] == AZURE_GA and sent.headers["api-key"] == key


def test_azure_wrong_key(emulator: Emulator) -> None:
    add_azure_key(emulator)
    error = _status_error(lambda: _azure(emulator, canary.make_azure_secret())
                          .models.list())
    assert isinstance(error, openai.AuthenticationError)
    assert (error.code, error.type) == ("401", None)
    assert "invalid subscription key" in error.message


def test_azure_missing_deployment(emulator: Emulator) -> None:
    client = _azure(emulator, add_azure_key(emulator))
    error = _status_error(lambda: client.chat.completions.create(
        model="nope", messages=CHAT))
    assert (error.status_code, error.code) == (404, "DeploymentNotFound")


def test_azure_api_versions(emulator: Emulator) -> None:
    key = add_azure_key(emulator, api_versions=(AZURE_GA,))
    error = _status_error(lambda: _azure(emulator, key, "2099-01-01").models.list())
    assert (error.status_code, error.code) == (404, "404")
    assert error.body == {"code": "404", "message": "Resource not found"}
    error = _status_error(lambda: _azure(emulator, key, "2024-06-01").models.list())
    assert (error.status_code, error.code) == (400, "BadRequest")
    assert "API version not supported" in error.message
    status, _, body = _raw(emulator, "GET", "/openai/models", {"api-key": key})
    assert status == 404 and b"Resource not found" in body


def test_azure_deployment_list_only_on_old_versions(emulator: Emulator) -> None:
    key = add_azure_key(emulator, {"d1": "gpt-4o"})
    old = "/openai/deployments?api-version=2023-03-15-preview"
    status, _, body = _raw(emulator, "GET", old, {"api-key": key})
    assert status == 200 and json.loads(body)["data"][0]["id"] == "d1"
    new = f"/openai/deployments?api-version={AZURE_GA}"
    assert _raw(emulator, "GET", new, {"api-key": key})[0] == 404


def test_azure_chat_on_embedding_deployment(emulator: Emulator) -> None:
    key = add_azure_key(emulator, {"emb": "text-embedding-3-small"})
    client = _azure(emulator, key)
    error = _status_error(lambda: client.chat.completions.create(
        model="emb", messages=CHAT))
    assert (error.status_code, error.code) == (400, "OperationNotSupported")


def test_azure_rate_limit(emulator: Emulator) -> None:
    client = _azure(emulator, add_azure_key(emulator))
    emulator.add_rate_limit(RateLimit(limit=0, path="/openai/", retry_after=2))
    error = _status_error(lambda: client.chat.completions.create(
        model="chat", messages=CHAT))
    assert (error.status_code, error.code) == (429, "429")
    assert error.response.headers["retry-after"] == "2"
    assert error.response.headers["retry-after-ms"] == "2000"
    assert "Please retry after 2 seconds" in error.message


def test_azure_v1(emulator: Emulator) -> None:
    key = add_azure_key(emulator)
    client = openai.OpenAI(api_key=key, base_url=emulator.azure_v1_base_url,
                           max_retries=0, timeout=5)
    assert client.chat.completions.create(model="chat", messages=CHAT).choices
    assert emulator.requests[-1].headers["authorization"] == f"Bearer {key}"
    status, _, _ = _raw(emulator, "GET", "/openai/v1/models", {"api-key": key})
    assert status == 200
    dated = client.with_options(default_query={"api-version": AZURE_GA})
    error = _status_error(lambda: dated.models.list())
    assert (error.status_code, error.code) == (400, "BadRequest")


# --- compatible servers -----------------------------------------------------------


def test_vllm_shapes(emulator: Emulator) -> None:
    key = add_openai_key(emulator, dialects=("vllm",))
    base = emulator.compat_base_url("vllm")
    bad = openai.OpenAI(api_key="wrong", base_url=base, max_retries=0)
    error = _status_error(lambda: bad.models.list())
    assert error.status_code == 401
    assert error.response.json() == {"error": "Unauthorized"}
    path = "/compat/vllm/v1/chat/completions"
    status, _, body = _raw(emulator, "POST", path, {"authorization": f"Bearer {key}"},
                           {"model": "missing", "messages": CHAT})
    assert status == 404 and json.loads(body)["error"]["code"] == 404
    good = openai.OpenAI(api_key=key, base_url=base, max_retries=0)
    assert good.chat.completions.create(model="gpt-4o", messages=CHAT).choices


def test_ollama_has_no_auth_and_string_errors(emulator: Emulator) -> None:
    client = openai.OpenAI(api_key="ollama", base_url=emulator.compat_base_url(
        "ollama"), max_retries=0)
    assert client.chat.completions.create(model="gpt-4o", messages=CHAT).choices
    error = _status_error(lambda: client.chat.completions.create(
        model="llama9", messages=CHAT))
    assert error.status_code == 404
    assert error.response.json() == {
        "error": 'model "llama9" not found, try pulling it first'}


# --- connection-level faults and HTTP behaviour ------------------------------------


def test_html_body(emulator: Emulator) -> None:
    client = _client(emulator, add_openai_key(emulator))
    emulator.add_fault(Fault(path="/v1/", kind="html", status=502))
    error = _status_error(lambda: client.models.list())
    assert error.status_code == 502 and "<html>" in error.response.text
    assert error.response.headers["content-type"].startswith("text/html")


def test_hang_times_out_the_client(emulator: Emulator) -> None:
    client = _client(emulator, add_openai_key(emulator))
    emulator.add_fault(Fault(path="/v1/models", kind="hang", seconds=20, times=1))
    with pytest.raises(openai.APITimeoutError):
        client.with_options(timeout=0.3).models.list()
    assert emulator.requests[-1].fault == "hang"
    assert emulator.requests[-1].status is None


@pytest.mark.parametrize("kind", ["drop", "reset"])
def test_drop_and_reset(emulator: Emulator, kind: str) -> None:
    client = _client(emulator, add_openai_key(emulator))
    emulator.add_fault(Fault(path="/v1/models", kind=kind))  # type: ignore[arg-type]
    with pytest.raises(openai.APIConnectionError):
        client.models.list()
    with pytest.raises((ConnectionError, http.client.RemoteDisconnected)):
        _raw(emulator, "GET", "/v1/models")


def test_keep_alive_and_content_length(emulator: Emulator) -> None:
    key = add_openai_key(emulator)
    conn = http.client.HTTPConnection("127.0.0.1", emulator.port, timeout=5)
    peers = set()
    for _ in range(3):
        conn.request("GET", "/v1/models", headers={"authorization": f"Bearer {key}"})
        resp = conn.getresponse()
        body = resp.read()
        assert resp.version == 11
        assert int(resp.headers["content-length"]) == len(body)
        assert conn.sock is not None
        peers.add(conn.sock.getsockname())
    conn.close()
    assert len(peers) == 1


def test_serves_64_requests_at_once(make_emulator: Callable[..., Emulator]) -> None:
    key = canary.make_secret()
    # Generous latency and a common start: on a loaded machine, starting 64
    # threads can take longer than the first request does.
    emu = make_emulator(keys=[EmulatedKey(key)], latency=3.0)
    statuses: list[int] = []
    start = threading.Barrier(64)

    def one() -> None:
        start.wait()
        statuses.append(_raw(emu, "GET", "/v1/models",
                             {"authorization": f"Bearer {key}"})[0])

    threads = [threading.Thread(target=one) for _ in range(64)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [200] * 64
    assert emu.max_in_flight == 64 and emu.in_flight == 0
    emu.clear()
    assert emu.requests == [] and emu.max_in_flight == 0


def test_stop_releases_hanging_requests(make_emulator: Callable[..., Emulator]) -> None:
    emu = make_emulator(faults=[Fault(kind="hang", seconds=60)])
    errors: list[BaseException] = []

    def hang() -> None:
        try:
            _raw(emu, "GET", "/v1/models", timeout=30)
        except (OSError, http.client.HTTPException) as exc:
            errors.append(exc)

    thread = threading.Thread(target=hang)
    thread.start()
    while emu.in_flight == 0:
        threading.Event().wait(0.01)
    emu.stop()
    thread.join(timeout=10)
    assert not thread.is_alive() and errors


# --- configuration file and command line ----------------------------------------


def test_config_file_with_secret_from_env(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    key = canary.make_secret()
    monkeypatch.setenv("EMU_KEY", key)
    path = tmp_path / "emulator.yaml"
    path.write_text(
        "latency: 0.1\n"
        "keys:\n  - secret_env: EMU_KEY\n    scopes: [model.request]\n"
        "    credit: false\n"
        "faults:\n  - {path: /v1/models, kind: drop, times: 1}\n"
        "rate_limits:\n  - {limit: 5, path: /v1/chat, retry_after: 2}\n"
    )
    config = load_config(path)
    assert config.keys[0].secret == key and config.keys[0].credit is False
    assert config.keys[0].scopes == ("model.request",)
    assert config.faults[0].kind == "drop" and config.rate_limits[0].limit == 5
    canary.assert_no_leak(repr(config), "config repr")


@pytest.mark.parametrize(("data", "words"), [
    ({"keyz": []}, "unknown field keyz"),
    ({"keys": [{"secret": "x", "credits": True}]}, "keys[0].credits"),
    ({"keys": [{"secret_env": "EMU_UNSET"}]}, "EMU_UNSET is not set"),
    ({"keys": [{"secret": "x", "dialects": ["anthropic"]}]}, "unknown dialect"),
])
def test_config_errors(data: dict[str, Any], words: str) -> None:
    with pytest.raises(ConfigError, match=words.replace("[", r"\[")):
        config_from_mapping(data)


def test_cli_serve_prints_url_and_stops_on_sigterm(tmp_path: Path) -> None:
    key = canary.make_secret()
    env = {**os.environ, "EMU_KEY": key}
    config = tmp_path / "emulator.json"
    config.write_text(json.dumps({"keys": [{"secret_env": "EMU_KEY"}]}))
    proc = subprocess.Popen(
        [sys.executable, "-m", "byok_reconcile.testing", "serve", "--config",
         str(config), "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        host, port = url[len("http://"):].split(":")
        with socket.create_connection((host, int(port)), timeout=5):
            pass
        client = openai.OpenAI(api_key=key, base_url=url + "/v1", max_retries=0)
        assert client.models.list().data
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=10)
    finally:
        proc.kill()
    assert proc.returncode == 0
    canary.assert_no_leak(url + out + err, "emulator CLI output")


def test_key_changes_apply_at_once(emulator: Emulator) -> None:
    key = add_openai_key(emulator)
    client = _client(emulator, key)
    assert client.models.list().data
    emulator.update_key(key, credit=False)
    error = _status_error(lambda: client.chat.completions.create(
        model="gpt-4o", messages=CHAT))
    assert error.code == "insufficient_quota"
    emulator.remove_key(key)
    assert _status_error(lambda: client.models.list()).code == "invalid_api_key"


def test_latency_per_path(make_emulator: Callable[..., Emulator]) -> None:
    key = canary.make_secret()
    emu = make_emulator(keys=[EmulatedKey(key)], path_latency={"/v1/chat": 5.0})
    client = _client(emu, key).with_options(timeout=0.5)
    assert client.models.list().data
    with pytest.raises(openai.APITimeoutError):
        client.chat.completions.create(model="gpt-4o", messages=CHAT)


def test_from_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key = canary.make_azure_secret()
    monkeypatch.setenv("EMU_AZURE", key)
    path = tmp_path / "emulator.yaml"
    path.write_text("keys:\n  - secret_env: EMU_AZURE\n    dialects: [azure]\n"
                    "    deployments: {chat: gpt-4o}\n")
    with Emulator.from_config(path) as emu:
        reply = _azure(emu, key).chat.completions.create(model="chat",
                                                         messages=CHAT)
    assert reply.model == "gpt-4o"


def test_rate_limit_window_tells_the_time_left(emulator: Emulator) -> None:
    client = _client(emulator, add_openai_key(emulator))
    emulator.add_rate_limit(RateLimit(limit=1, path="/v1/models", window=30,
                                      retry_after=None))
    client.models.list()
    error = _status_error(lambda: client.models.list())
    assert 0 < int(error.response.headers["retry-after-ms"]) <= 30_000
    assert emulator.requests[-1].status == 429
