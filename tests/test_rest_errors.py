"""Error bodies the REST app must always be able to send."""

from __future__ import annotations


def test_a_422_echoing_text_that_is_not_unicode_is_still_a_422(rest) -> None:
    # JSON may carry a lone surrogate; the 422 echoes the bad input and must still encode.
    raw = b'{"name": "n", "artifact_id": "a", "version": "\\ud800"}'
    answer = rest.http.post("/v1/names", content=raw, headers={"content-type": "application/json"})
    assert answer.status_code == 422, answer.text
    (problem,) = answer.json()["detail"]
    assert problem["loc"] == ["body", "version"] and problem["input"] == "\ud800"
    ok = rest.http.post(
        "/v1/names", content=b'{"name": "n"}', headers={"content-type": "application/json"}
    )
    assert ok.status_code == 422 and {p["loc"][-1] for p in ok.json()["detail"]} == {
        "artifact_id",
        "version",
    }


def test_a_json_upload_without_data_is_a_422_naming_it(rest) -> None:
    answer = rest.http.put("/v1/artifacts", json={"inputs": [], "transform": None})
    assert answer.status_code == 422, answer.text
    assert [p["loc"] for p in answer.json()["detail"]] == [["body", "data"]]
