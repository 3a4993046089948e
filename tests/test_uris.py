"""Input URI parsing: every accepted form, and every refusal with its reason."""

from __future__ import annotations

import pytest

from catalog.uris import ACCEPTED_FORMS, ArtifactRef, NameRef, TableRef, parse_uri
from foundation import InvalidArgument


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("file:///wh#db.events", TableRef("/wh", ("db",), "events")),
        ("file://localhost/wh#db.events", TableRef("/wh", ("db",), "events")),
        ("/wh#db.events", TableRef("/wh", ("db",), "events")),
        ("/data/my%20wh#db.events", TableRef("/data/my wh", ("db",), "events")),
        ("/wh/#db.events", TableRef("/wh", ("db",), "events")),
        ("/wh#a.b.events", TableRef("/wh", ("a", "b"), "events")),
        ("strata://artifact/abc123@v=1", ArtifactRef("abc123", 1)),
        ("strata://artifact/a-b_c@v=42", ArtifactRef("a-b_c", 42)),
        ("strata://name/daily", NameRef("daily")),
        ("strata://name/team/daily.v2", NameRef("team/daily.v2")),
    ],
)
def test_accepted(uri: str, expected: object) -> None:
    assert parse_uri(uri) == expected


def test_table_uri_round_trips() -> None:
    ref = parse_uri("/wh#db.events")
    assert ref.uri == "file:///wh#db.events" and parse_uri(ref.uri) == ref


@pytest.mark.parametrize(
    ("uri", "reason"),
    [
        ("s3://bucket/wh#db.t", "unsupported scheme 's3'"),
        ("http://x/wh#db.t", "unsupported scheme 'http'"),
        ("c:/wh#db.t", "unsupported scheme 'c'"),
        ("/wh", "missing '#namespace.table'"),
        ("s3://bucket/wh", "unsupported scheme 's3'"),
        ("/wh#", "the table identifier after '#' is empty"),
        ("/wh#events", "must be namespace.table"),
        ("/wh#db.", "has an empty part"),
        ("/wh#.t", "has an empty part"),
        ("/wh#db.t#x", "more than one '#'"),
        ("/wh#db.t-?", "is not a valid namespace or table name"),
        ("#db.t", "the warehouse path is empty"),
        ("wh#db.t", "must be absolute"),
        ("file://wh#db.t", "needs an absolute path"),
        ("/wh/../etc#db.t", "'..' path segments are not allowed"),
        ("/wh/%2e%2e/etc#db.t", "'..' path segments are not allowed"),
        ("/wh/./x#db.t", "'..' path segments are not allowed"),
        ("/wh\x00#db.t", "NUL byte"),
        ("file:///wh?x=1#db.t", "query strings are not allowed"),
        ("", "empty or surrounded by whitespace"),
        (" /wh#db.t", "empty or surrounded by whitespace"),
        ("strata://artifact/abc", "strata://artifact/{id}@v={n}"),
        ("strata://artifact/abc@v=0", "positive integer"),
        ("strata://artifact/abc@v=x", "positive integer"),
        ("strata://artifact/@v=1", "letters, digits"),
        ("strata://artifact/a.b@v=1", "letters, digits"),
        ("strata://name/", "non-empty"),
        ("strata://name/a//b", "empty, '.' or '..'"),
        ("strata://name/a/../b", "empty, '.' or '..'"),
        ("strata://thing/x", "strata://artifact/... or strata://name/..."),
        (42, "a URI must be a string"),
        (None, "a URI must be a string"),
    ],
)
def test_refused_with_reason_and_forms(uri: object, reason: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        parse_uri(uri)
    message = str(info.value)
    assert reason in message
    assert message.endswith(f"accepted forms: {ACCEPTED_FORMS}")
    assert info.value.detail["accepted_forms"] == ACCEPTED_FORMS
