"""The OpenAPI document states statuses, content types and constraints; 405s name every
method of their path."""

from __future__ import annotations

import re

from catalog import validate_name
from foundation import Settings
from rest.app import app_from_settings
from tests.servers import serving


def _doc(rest) -> dict:
    return rest.http.get("/openapi.json").json()


def test_every_operation_states_its_errors_with_the_error_model(rest) -> None:
    doc = _doc(rest)
    for path, item in doc["paths"].items():
        for method, op in item.items():
            statuses = set(op["responses"])
            assert "500" in statuses, (method, path)
            if "requestBody" in op:
                assert {"400", "413"} <= statuses, (method, path)
    artifact = doc["paths"]["/v1/artifacts/{artifact_id}/v/{version}"]["get"]
    assert {"200", "400", "404", "422", "500", "503"} <= set(artifact["responses"])
    error = artifact["responses"]["404"]["content"]["application/json"]["schema"]
    assert error == {"$ref": "#/components/schemas/ErrorBody"}
    assert "detail" in doc["components"]["schemas"]["ErrorBody"]["properties"]
    assert "401" not in artifact["responses"]  # no token configured: never a 401


def test_content_types_and_constraints_are_stated(rest) -> None:
    paths = _doc(rest)["paths"]
    data = paths["/v1/artifacts/{artifact_id}/v/{version}/data"]["get"]
    assert set(data["responses"]["200"]["content"]) == {
        "application/vnd.apache.arrow.stream", "text/csv", "application/vnd.apache.parquet"
    }  # fmt: skip
    prometheus = paths["/metrics/prometheus"]["get"]["responses"]["200"]["content"]
    assert list(prometheus) == ["text/plain"]
    params = {p["name"]: p["schema"] for p in data["parameters"]}
    assert params["version"]["minimum"] == 1
    assert re.fullmatch(params["artifact_id"]["pattern"], "abc-1")
    name = paths["/v1/names/{name}"]["get"]["parameters"][0]["schema"]
    assert name["maxLength"] == 256
    for good in ("a", "team/model.v2", "x/.hidden", "a/...b"):
        assert re.fullmatch(name["pattern"], good) and validate_name(good)
    for bad in ("", "/a", "a//b", "a/./b", "a/../b", "a b", "a\n"):
        assert not re.fullmatch(name["pattern"], bad)
    upload = paths["/v1/artifacts"]["put"]["requestBody"]["content"]
    assert set(upload) == {"multipart/form-data", "application/json"}


def test_a_token_makes_401_and_the_bearer_scheme_part_of_the_document(tmp_path) -> None:
    settings = Settings(data_dir=tmp_path / "d", notebook_root=tmp_path / "n", token="s3cret")
    app = app_from_settings(settings, flight_uri="grpc://127.0.0.1:9")
    import httpx

    with serving(app) as url:
        doc = httpx.get(f"{url}/openapi.json").json()
    assert doc["components"]["securitySchemes"] == {"bearer": {"type": "http", "scheme": "bearer"}}
    op = doc["paths"]["/v1/names"]["get"]
    assert "401" in op["responses"] and op["security"] == [{"bearer": []}]
    assert "401" not in doc["paths"]["/health"]["get"]["responses"]


def test_a_405_names_every_method_of_its_path(rest) -> None:
    answer = rest.http.request("OPTIONS", "/v1/artifacts")
    assert answer.status_code == 405
    assert answer.headers["allow"] == "GET, PUT", answer.headers
    assert answer.json() == {"detail": "Method Not Allowed"}
    alias = rest.http.request("PATCH", "/v1/names/m/aliases/prod")
    assert alias.status_code == 405
    assert set(alias.headers["allow"].split(", ")) >= {"GET", "PUT", "DELETE"}


JSON = {"content-type": "application/json"}


def test_what_the_fuzzer_found_answers_4xx(rest) -> None:
    """Each of these answered 500 before the campaign found it."""
    http = rest.http
    bad_json = http.put(
        "/v1/artifacts", content=b"\x83e\xd4", headers={"content-type": "application/json"}
    )
    assert bad_json.status_code == 422, bad_json.text  # non-UTF-8 JSON: shown, not a 500
    huge_limit = http.get("/v1/artifacts/abc/v/1/dependents", params={"limit": 10**20})
    assert huge_limit.status_code == 404, huge_limit.text  # was SQLite's OverflowError
    for parent in ('"~nobody-here"', '"' + "x" * 300 + '"', '"a/\\ud800"'):  # JSON text
        body = '{"parent_path": ' + parent + ', "name": "n"}'
        made = http.post("/v1/notebooks/create", content=body, headers=JSON)
        assert made.status_code == 400, made.text
    opened = http.post("/v1/notebooks/open", json={"path": "y" * 5000})
    assert opened.status_code == 400, opened.text
    # a trailing newline is not part of a valid name or id (Python's "$" let it through)
    assert (
        http.post("/v1/names", json={"name": "abc\n", "artifact_id": "a", "version": 1}).status_code
        == 400
    )
    assert http.get("/v1/artifacts/abc%0A/v/1").status_code == 400
