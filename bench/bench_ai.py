"""Issue 18: how long the assistant's stream holds a token.

From the moment the scripted provider sends its first token to the moment the
client of ``POST …/ai/stream`` holds the first ``delta`` frame, against the
baseline of the same token reaching an ``openai`` client that reads the
provider directly (the provider's own latency as any client sees it). The
difference is what Quiver adds: parsing, the frame, the ASGI send.

    .venv/bin/python bench/side_by_side.py ai
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import openai
from pydantic import SecretStr

from foundation import Settings
from notebooks import NotebookManager
from rest.app import create_app
from rest.notebook_ai import notebook_ai_router
from rest.notebooks import notebook_router
from tests.ai_provider import Answer, Provider, start_provider
from tests.servers import serve_asgi

KEY = "sk-bench-key-0123456789"
CHUNKS = ["The", " answer", " is", " forty", "-two", "."] * 4


@contextmanager
def ai_setup(tmp: Path) -> Iterator[tuple[Provider, httpx.Client, str]]:
    provider, stop_provider = start_provider()
    settings = Settings(
        data_dir=tmp / "data", notebook_root=tmp / "nb", ai_base_url=provider.openai_url,
        ai_api_key=SecretStr(KEY), ai_model="bench",
    )  # fmt: skip
    manager = NotebookManager(settings)
    app = create_app([notebook_router(manager, settings,
                                      extra=[notebook_ai_router(manager, settings)])])  # fmt: skip
    url, stop = serve_asgi(app, lifespan="off")
    client = httpx.Client(base_url=url, timeout=30)
    try:
        r = client.post("/v1/notebooks/create", json={"parent_path": ".", "name": "bench"})
        yield provider, client, f"/v1/notebooks/{r.json()['session_id']}"
    finally:
        client.close()
        stop()
        stop_provider()


def through_quiver(provider: Provider, client: httpx.Client, base: str) -> float:
    """Seconds from the provider's first token to the first delta frame at the client."""
    provider.script(Answer(text=list(CHUNKS)))
    with client.stream("POST", f"{base}/ai/stream", json={"message": "hi"}) as r:
        chunks = r.iter_raw()
        for chunk in chunks:
            if b"event: delta" in chunk:
                got = time.perf_counter()
                break
        for _ in chunks:  # the rest of the answer, so the next round starts clean
            pass
    return got - provider.first_chunk_at[-1]


def direct(provider: Provider, sdk: openai.OpenAI) -> float:
    """Seconds from the provider's first token to an openai client reading it directly."""
    provider.script(Answer(text=list(CHUNKS)))
    got = 0.0
    stream = sdk.chat.completions.create(
        model="bench", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    with stream:
        for chunk in stream:
            if not got and chunk.choices and chunk.choices[0].delta.content:
                got = time.perf_counter()
    return got - provider.first_chunk_at[-1]


def first_byte(rounds: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp, ai_setup(Path(tmp)) as (provider, client, base):
        sdk = openai.OpenAI(api_key=KEY, base_url=provider.openai_url, max_retries=0)
        for _ in range(3):  # warm both paths
            through_quiver(provider, client, base)
            direct(provider, sdk)
        ours = [through_quiver(provider, client, base) * 1000 for _ in range(rounds)]
        base_ms = [direct(provider, sdk) * 1000 for _ in range(rounds)]
        sdk.close()
    return {"ours": ours, "direct": base_ms}


def p50(values: list[float]) -> float:
    return statistics.median(values)


def p90(values: list[float]) -> float:
    return sorted(values)[int(0.9 * (len(values) - 1))]
