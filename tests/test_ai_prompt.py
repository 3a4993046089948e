"""Prompt cells against a scripted provider: the template filled from upstream values (a
table as schema plus preview), the answer as the cell's output, the cache keyed by the
model too, and ``# @json`` answers parsed (a list of records becomes a table artifact)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import SecretStr

from foundation import Settings
from tests.ai_notebook import open_ai_nb
from tests.ai_provider import Answer, Provider
from tests.fixtures_execution import Nb

KEY = "sk-prompt-SECRET-abcdef0123456789"


@pytest.fixture
def ai_nb(settings: Settings, flight_server: Any, provider: Provider) -> Iterator[Nb]:
    s = settings.model_copy(
        update={"ai_base_url": provider.openai_url, "ai_api_key": SecretStr(KEY),
                "ai_model": "m1"}
    )  # fmt: skip
    nb, close = open_ai_nb(s, flight_server.location)
    yield nb
    close()


def test_prompt_cell_fills_runs_and_caches(ai_nb: Nb, provider: Provider) -> None:
    nb = ai_nb
    nb.add("import pyarrow as pa\nsales = pa.table({'region': ['north', 'south'], 'n': [3, 5]})")
    cid = nb.add("# @name summary\nSummarise {{ sales }} in one line.", language="prompt")
    provider.script(Answer(text=["South sells more."]))
    out = nb.run(cid)
    assert out["status"] == "ready", out
    assert out["outputs"]["summary"]["preview"] == "South sells more."
    prompt = provider.requests[-1]["body"]["messages"][-1]["content"]
    assert "region: string" in prompt and "| south | 5 |" in prompt and "@name" not in prompt
    assert nb.cells()[cid]["status"] == "ready"
    asked = len(provider.requests)
    again = nb.run(cid)  # unchanged: from the cache, no request
    assert (
        again["cache_hit"] is True and again["outputs"]["summary"]["preview"] == "South sells more."
    )
    assert len(provider.requests) == asked
    nb.client.put(f"{nb.base}/ai/model", json={"model": "m2"})  # another model asks again
    provider.script(Answer(text=["From m2."]))
    third = nb.run(cid)
    assert third["cache_hit"] is False and third["outputs"]["summary"]["preview"] == "From m2."
    assert provider.requests[-1]["body"]["model"] == "m2"


def test_json_records_become_a_table(ai_nb: Nb, provider: Provider) -> None:
    nb = ai_nb
    cid = nb.add("# @name cities\n# @json\nList two cities with their country.", "prompt")
    records = '[{"city": "Lyon", "country": "FR"}, {"city": "Porto", "country": "PT"}]'
    provider.script(Answer(text=["```json\n", records, "\n```"]))
    out = nb.run(cid)
    assert out["status"] == "ready", out
    table = out["outputs"]["cities"]
    assert table["content_type"] == "arrow/ipc" and table["rows"] == 2
    assert table["columns"] == ["city", "country"]
    uri = table["artifact_uri"]
    r = nb.client.get(f"{nb.base}/cells/{cid}/data", params={"artifact_uri": uri})
    assert r.status_code == 200, r.text
    assert "Porto" in r.text
    assert "JSON only" in provider.requests[-1]["body"]["messages"][0]["content"]
    down = nb.add("n = len(cities)\nprint(n)")
    assert nb.run(down)["status"] == "ready"


def test_prompt_failures_are_cell_errors(ai_nb: Nb, provider: Provider) -> None:
    nb = ai_nb
    cid = nb.add("# @json\nGive me JSON.", "prompt")
    provider.script(Answer(text=["not json at all"]))
    out = nb.run(cid)
    assert out["status"] == "error" and "not JSON" in out["error"]
    provider.script(Answer(status=500, error=f"invalid key {KEY}"))
    out = nb.run(cid)
    assert out["status"] == "error" and "HTTP 500" in out["error"] and KEY not in str(out)


def test_prompt_without_a_model_says_what_to_set(settings: Settings, flight_server: Any) -> None:
    nb, close = open_ai_nb(settings, flight_server.location)
    try:
        cid = nb.add("Hello", "prompt")
        out = nb.run(cid)
        assert out["status"] == "error" and "QUIVER_AI_API_KEY" in out["error"]
    finally:
        close()
