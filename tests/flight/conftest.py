"""Short local names for the fixtures of tests/fixtures_flight.py.

Other plugins define their own ``client``/``server``; inside tests/flight/
these names mean the Flight server and a plain ``pyarrow.flight`` client.
Flight SQL tests get ``sql_server`` (naming their module's ``warehouse`` ``wh``)
and ``conn``, an ADBC connection to it.
"""

from __future__ import annotations

import adbc_driver_flightsql.dbapi as flightsql
import pytest

from catalog import TableRef


@pytest.fixture
def make_server(make_flight_server):
    return make_flight_server


@pytest.fixture
def server(flight_server):
    return flight_server


@pytest.fixture
def client(flight_client):
    return flight_client


@pytest.fixture
def sql_server(make_server, warehouse: TableRef):
    return make_server(warehouses={"wh": f"file://{warehouse.warehouse}"})


@pytest.fixture
def conn(sql_server):
    with flightsql.connect(sql_server.location, autocommit=True) as connection:
        yield connection
