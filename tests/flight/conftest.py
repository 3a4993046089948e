"""Short local names for the fixtures of tests/fixtures_flight.py.

Other plugins define their own ``client``/``server``; inside tests/flight/
these names mean the Flight server and a plain ``pyarrow.flight`` client.
"""

from __future__ import annotations

import pytest


@pytest.fixture
def make_server(make_flight_server):
    return make_flight_server


@pytest.fixture
def server(flight_server):
    return flight_server


@pytest.fixture
def client(flight_client):
    return flight_client
