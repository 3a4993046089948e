"""The AI assistant's chat routes against a scripted provider on loopback (API.md §10):
status, models, model choice, complete and SSE stream with both protocols, the context the
model is sent, and provider failures (429, 500, timeout, malformed stream, a client that
leaves) mapped to the contract's statuses and events, with the key never shown."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from foundation import Settings
from notebooks import NotebookManager
from rest.app import create_app
from rest.notebook_ai import notebook_ai_router
from rest.notebooks import notebook_router
from tests.ai_provider import Answer, Provider
from tests.fixtures_notebooks import PYTHONS
from tests.servers import serve_asgi

KEY = "sk-test-SECRETKEY-0123456789abcdef"


@pytest.fixture
def serve(settings: Settings) -> Iterator[Callable[..., tuple[httpx.Client, str]]]:
    """A Quiver REST server with the AI routes (given settings); a client and a new session."""
    stops: list[Callable[[], None]] = []
    clients: list[httpx.Client] = []

    def make(**overrides: Any) -> tuple[httpx.Client, str]:
        s = settings.model_copy(update=overrides)
        m = NotebookManager(s, python_versions=dict(PYTHONS))
        app = create_app(
            [notebook_router(m, s, extra=[lambda r: notebook_ai_router(m, s, router=r)])]
        )
        url, stop = serve_asgi(app, lifespan="off")
        stops.append(stop)
        client = httpx.Client(base_url=url, timeout=30)
        clients.append(client)
        r = client.post("/v1/notebooks/create", json={"parent_path": ".", "name": "ai"})
        assert r.status_code == 200, r.text
        return client, f"/v1/notebooks/{r.json()['session_id']}"

    yield make
    for c in clients:
        c.close()
    for stop in stops:
        stop()


def openai_server(serve: Callable[..., Any], provider: Provider, **extra: Any) -> Any:
    return serve(ai_base_url=provider.openai_url, ai_api_key=SecretStr(KEY), ai_model="m1", **extra)


def sse(text: str) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for block in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((lines["event"], json.loads(lines["data"])))
    return events


def test_unconfigured_says_what_to_set(serve: Callable[..., Any]) -> None:
    client, base = serve()
    assert client.get(f"{base}/ai/status").json() == {
        "available": False, "model": None, "provider": None,
    }  # fmt: skip
    assert client.get(f"{base}/ai/models").json() == {"models": [], "current": None}
    for route in ("complete", "stream"):
        r = client.post(f"{base}/ai/{route}", json={"message": "hi"})
        assert r.status_code == 503, r.text
        assert "QUIVER_AI_API_KEY" in r.json()["detail"]


def test_status_models_and_model_choice(serve: Callable[..., Any], provider: Provider) -> None:
    client, base = openai_server(serve, provider)
    status = client.get(f"{base}/ai/status").json()
    assert status == {"available": True, "model": "m1", "provider": "local"}
    models = client.get(f"{base}/ai/models").json()
    assert models == {"models": ["alpha-model", "zeta-model"], "current": "m1", "provider": "local"}
    r = client.put(f"{base}/ai/model", json={"model": "alpha-model"})
    assert r.json() == {"model": "alpha-model"}
    assert client.get(f"{base}/ai/status").json()["model"] == "alpha-model"
    assert client.put(f"{base}/ai/model", json={"model": ""}).status_code == 422


def test_models_failure_is_an_empty_list(serve: Callable[..., Any]) -> None:
    client, base = serve(
        ai_base_url="http://127.0.0.1:9/v1", ai_model="m", ai_api_key=SecretStr(KEY)
    )
    assert client.get(f"{base}/ai/models").json()["models"] == []


def test_notebook_env_key_picks_anthropic(
    serve: Callable[..., Any], provider: Provider, tmp_path: Any
) -> None:
    client, base = serve(ai_base_url=provider.url)
    r = client.put(f"{base}/env", json={"env": {"ANTHROPIC_API_KEY": KEY}})
    assert r.status_code == 200
    status = client.get(f"{base}/ai/status").json()
    assert status == {"available": True, "model": "claude-sonnet-4-5", "provider": "anthropic"}
    provider.script(Answer(text=["Bonjour"]))
    r = client.post(f"{base}/ai/complete", json={"message": "hi"})
    assert r.status_code == 200, r.text
    assert r.json() == {"content": "Bonjour", "model": "scripted-model",
                        "tokens": {"input": 11, "output": 7}}  # fmt: skip
    sent = provider.requests[-1]
    assert sent["path"] == "/v1/messages"
    assert KEY in (sent["headers"].get("x-api-key"), sent["headers"].get("authorization", "")[7:])
    assert "Quiver notebook" in sent["body"]["system"]
    provider.script(Answer(text=["a", "b", "c"]))
    r = client.post(f"{base}/ai/stream", json={"message": "hi"})
    assert [e for e, _ in sse(r.text)] == ["delta", "delta", "delta", "done"]
    assert sse(r.text)[-1][1] == {"model": "scripted-model", "tokens": {"input": 11, "output": 7}}
    toml = next(iter(tmp_path.rglob("notebook.toml"))).read_text()
    assert "api_key" not in toml  # the [ai] table never holds a key


def test_complete_sends_context_and_history(serve: Callable[..., Any], provider: Provider) -> None:
    client, base = openai_server(serve, provider)
    cid = client.post(f"{base}/cells", json={"language": "python"}).json()["id"]
    client.put(f"{base}/cells/{cid}", json={"source": "answer = 41 + 1"})
    provider.script(Answer(text=["It adds."]))
    history = [{"role": "user", "content": "earlier"}, {"role": "assistant", "content": "ok"}]
    r = client.post(
        f"{base}/ai/complete", json={"message": "What does it do?", "cell_id": cid,
                                     "history": history}
    )  # fmt: skip
    assert r.status_code == 200, r.text
    assert r.json()["content"] == "It adds."
    body = provider.requests[-1]["body"]
    assert body["model"] == "m1" and not body.get("stream")
    assert provider.requests[-1]["headers"]["authorization"] == f"Bearer {KEY}"
    roles = [m["role"] for m in body["messages"]]
    assert roles == ["system", "user", "assistant", "user"]
    system = body["messages"][0]["content"]
    assert f"cell {cid}" in system and "answer = 41 + 1" in system
    assert "looking at cell" in system


def test_stream_frames_and_headers(serve: Callable[..., Any], provider: Provider) -> None:
    client, base = openai_server(serve, provider)
    provider.script(Answer(text=["Hel", "lo"], input_tokens=3, output_tokens=2))
    with client.stream("POST", f"{base}/ai/stream", json={"message": "hi"}) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        assert r.headers["cache-control"] == "no-cache"
        assert r.headers["x-accel-buffering"] == "no"
        text = r.read().decode()
    assert sse(text) == [
        ("delta", {"text": "Hel"}),
        ("delta", {"text": "lo"}),
        ("done", {"model": "scripted-model", "tokens": {"input": 3, "output": 2}}),
    ]
    assert provider.requests[-1]["body"]["stream"] is True


@pytest.mark.parametrize(
    ("answer", "status", "words"),
    [
        (Answer(status=429, error="slow down"), 429, "rate-limiting"),
        (Answer(status=500, error="boom"), 502, "HTTP 500"),
        (Answer(hang_after=0), 504, "did not answer"),
    ],
)
def test_complete_provider_failures(
    serve: Callable[..., Any], provider: Provider, answer: Answer, status: int, words: str
) -> None:
    # a short timeout only where the provider hangs: a loaded machine never turns a 429 into a 504
    timeout = 0.5 if answer.hang_after is not None else 60.0
    client, base = openai_server(serve, provider, ai_timeout_s=timeout)
    provider.script(answer)
    r = client.post(f"{base}/ai/complete", json={"message": "hi"})
    assert r.status_code == status, r.text
    assert words in r.json()["detail"]
    assert KEY not in r.text


@pytest.mark.parametrize(
    ("answer", "words"),
    [
        (Answer(status=429), "rate-limiting"),
        (Answer(status=500, error=f"bad key {KEY}"), "HTTP 500"),
        (Answer(hang_after=2), "did not answer"),
        (Answer(raw=b"data: {not json\n\n"), "could not be read"),
    ],
)
def test_stream_provider_failures_end_with_an_error_event(
    serve: Callable[..., Any],
    provider: Provider,
    answer: Answer,
    words: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    timeout = 0.5 if answer.hang_after is not None else 60.0
    client, base = openai_server(serve, provider, ai_timeout_s=timeout)
    provider.script(answer)
    r = client.post(f"{base}/ai/stream", json={"message": "hi"})
    assert r.status_code == 200
    events = sse(r.text)
    assert events[-1][0] == "error" and words in events[-1][1]["message"], events
    assert all(e == "delta" for e, _ in events[:-1])
    assert KEY not in r.text
    assert KEY not in caplog.text and KEY[8:20] not in caplog.text


def test_client_leaving_cancels_the_provider_request(
    serve: Callable[..., Any], provider: Provider
) -> None:
    client, base = openai_server(serve, provider)  # the provider timeout stays long
    provider.script(Answer(text=["one", "two", "three"], hang_after=2))
    with client.stream("POST", f"{base}/ai/stream", json={"message": "hi"}) as r:
        first = next(r.iter_lines())
        assert first == "event: delta"
    assert provider.wait_disconnect(10), "the provider request stayed open"


def test_request_limits(serve: Callable[..., Any], provider: Provider) -> None:
    client, base = openai_server(serve, provider)
    too_long = {"message": "x" * 10_001}
    assert client.post(f"{base}/ai/complete", json=too_long).status_code == 422
    history = [{"role": "user", "content": "x"}] * 21
    r = client.post(f"{base}/ai/complete", json={"message": "m", "history": history})
    assert r.status_code == 422
    bad_role = [{"role": "system", "content": "x"}]
    r = client.post(f"{base}/ai/complete", json={"message": "m", "history": bad_role})
    assert r.status_code == 422
    assert client.get("/v1/notebooks/nope/ai/status").status_code == 404
