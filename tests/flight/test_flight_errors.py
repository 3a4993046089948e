"""Every error code reaches a plain pyarrow.flight client as the right class, cleanly."""

from __future__ import annotations

import json
import logging

import pyarrow as pa
import pyarrow.flight as fl
import pytest

from flight.errors import from_flight_error, one_line
from foundation import errors
from tests.fixtures_flight import GATES, act, cmd, gated_request


def failure(call) -> tuple[fl.FlightError, dict]:
    with pytest.raises(fl.FlightError) as info:
        call()
    exc = info.value
    message = str(exc).split(". Detail: ", 1)[0]
    assert "Traceback" not in str(exc) and "\n" not in message
    assert 'File "' not in str(exc)
    return exc, json.loads(exc.extra_info)


def scan(uri: str, **params: object) -> dict:
    return {"inputs": [uri], "transform": {"executor": "scan@v1", "params": params}}


CASES = [
    (
        "unknown executor",
        lambda c, t: act(c, "materialize", {"inputs": [], "transform": {"executor": "nope@v1"}}),
        "invalid_argument",
    ),
    (
        "bad params",
        lambda c, t: act(c, "materialize", scan(t.uri, columns=["nope"])),
        "invalid_argument",
    ),
    ("bad uri", lambda c, t: act(c, "materialize", scan("ftp://x#a.b")), "invalid_argument"),
    (
        "extra field",
        lambda c, t: act(c, "materialize", {**scan(t.uri), "bogus": 1}),
        "invalid_argument",
    ),
    ("not json", lambda c, t: list(c.do_action(fl.Action("health", b"{nope"))), "invalid_argument"),
    ("unknown action", lambda c, t: act(c, "frobnicate"), "invalid_argument"),
    (
        "bad ticket",
        lambda c, t: c.do_get(fl.Ticket(b'{"artifact_id": 3}')).read_all(),
        "invalid_argument",
    ),
    (
        "bad path",
        lambda c, t: c.get_flight_info(fl.FlightDescriptor.for_path("x")),
        "invalid_argument",
    ),
    (
        "missing table",
        lambda c, t: act(c, "materialize", scan(t.uri.replace("events", "nope"))),
        "not_found",
    ),
    (
        "missing warehouse",
        lambda c, t: act(c, "materialize", scan("file:///nowhere#db.t")),
        "not_found",
    ),
    (
        "missing artifact",
        lambda c, t: act(c, "status", {"artifact_uri": "strata://artifact/abc@v=1"}),
        "not_found",
    ),
    (
        "missing name",
        lambda c, t: c.do_get(fl.Ticket(b"strata://name/nope")).read_all(),
        "not_found",
    ),
    (
        "missing name info",
        lambda c, t: c.get_flight_info(fl.FlightDescriptor.for_path("name", "nope")),
        "not_found",
    ),
    ("too large", lambda c, t: act(c, "materialize", {"inputs": ["x" * 3_000_000]}), "too_large"),
]


@pytest.mark.parametrize(("what", "call", "code"), CASES, ids=[c[0] for c in CASES])
def test_error_codes(client, demo_table, what, call, code) -> None:
    exc, payload = failure(lambda: call(client, demo_table))
    assert isinstance(exc, fl.FlightServerError)
    assert payload["code"] == code and "detail" in payload
    assert type(from_flight_error(exc)).code == code


def test_build_failure_mid_stream_and_conflict(client) -> None:
    request = gated_request("fails", fail_at=1)
    GATES.setdefault("fails", __import__("threading").Event()).set()
    res = act(client, "materialize", request)
    # depending on timing the failure comes with the first message or mid-stream
    exc, payload = failure(lambda: client.do_get(fl.Ticket(res["ticket"].encode())).read_all())
    assert payload["code"] == "build_failed" and "boom at batch 1" in str(exc)
    status = act(client, "status", {"artifact_uri": res["artifact_uri"]})
    assert status["state"] == "failed"
    # naming a failed artifact is a conflict; so is reading it by path
    _, payload = failure(
        lambda: act(client, "name-set", {"name": "x", "artifact_uri": res["artifact_uri"]})
    )
    assert payload["code"] == "conflict"
    _, payload = failure(lambda: client.do_get(fl.Ticket(res["ticket"].encode())).read_all())
    assert payload["code"] == "build_failed"


def test_deleting_a_building_artifact_is_a_conflict(client) -> None:
    res = act(client, "materialize", gated_request("held"))
    _, payload = failure(lambda: act(client, "delete", {"artifact_uri": res["artifact_uri"]}))
    assert payload["code"] == "conflict"
    GATES["held"].set()


def test_unavailable_after_shutdown_began(server, client, demo_table) -> None:
    server.core.materializer.close()
    exc, payload = failure(lambda: act(client, "materialize", scan(demo_table.uri)))
    assert isinstance(exc, fl.FlightUnavailableError) and payload["code"] == "unavailable"


def test_internal_error_returns_only_an_id(server, client, monkeypatch, caplog) -> None:
    def broken() -> dict:
        raise RuntimeError("secret internals /etc/passwd")

    monkeypatch.setattr(server.core.store, "stats", broken)
    with caplog.at_level(logging.ERROR, logger="quiver.flight"):
        exc, payload = failure(lambda: act(client, "health"))
    assert isinstance(exc, fl.FlightInternalError) and payload["code"] == "internal"
    assert "secret" not in str(exc) and "secret" not in json.dumps(payload)
    error_id = payload["error_id"]
    assert error_id in str(exc)
    logged = [r for r in caplog.records if error_id in r.getMessage()]
    assert logged and logged[0].exc_info is not None


def test_client_side_mapping_keeps_code_message_detail() -> None:
    raised = fl.FlightServerError(
        "Name 'x' not found", json.dumps({"code": "not_found", "detail": {"name": "x"}}).encode()
    )
    err = from_flight_error(raised)
    assert isinstance(err, errors.NotFound) and err.message == "Name 'x' not found"
    assert err.detail == {"name": "x"}
    assert isinstance(
        from_flight_error(fl.FlightUnauthenticatedError("no")), errors.Unauthenticated
    )
    assert one_line("\n first \n second") == "first"


def test_bad_upload_descriptor(client) -> None:
    def put() -> None:
        writer, _ = client.do_put(fl.FlightDescriptor.for_path("elsewhere"), pa.schema([]))
        writer.close()

    _, payload = failure(put)
    assert payload["code"] == "invalid_argument"
    _, payload = failure(lambda: client.do_get(cmd_ticket()).read_all())
    assert payload["code"] == "invalid_argument"


def cmd_ticket() -> fl.Ticket:
    return fl.Ticket(cmd({"x": 1}).command)
