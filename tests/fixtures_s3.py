"""A real S3-compatible server for tests: moto's server mode on an ephemeral loopback port."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

S3_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.fixture
def s3() -> Iterator[str]:
    """The server's endpoint URL (``http://127.0.0.1:PORT``), stopped after the test."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def make_bucket(endpoint: str, bucket: str) -> None:
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    client.create_bucket(Bucket=bucket)


@pytest.fixture(params=["local", "s3"])
def part_uri(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> str:
    """A part storage of each kind: a directory, and a bucket on the S3 server above."""
    if request.param == "local":
        return str(tmp_path / "parts")
    endpoint = request.getfixturevalue("s3")
    for k, v in S3_CREDENTIALS.items():
        monkeypatch.setenv(k, v)
    make_bucket(endpoint, "quiver")
    host = endpoint.removeprefix("http://")
    prefix = f"parts-{uuid.uuid4().hex[:8]}"  # a storage per test, as per head: one bucket
    return f"s3://quiver/{prefix}?endpoint_override={host}&scheme=http&region=us-east-1"
