"""The tiny form of the load campaign (``bench/load_rest.py``): a real ``quiver serve``,
a few concurrent clients for two seconds, every kind of operation, no error."""

from __future__ import annotations

from bench.load_rest import campaign


def test_concurrent_clients_of_every_kind_see_no_error(tmp_path) -> None:
    result = campaign(tmp_path, clients=6, seconds=2, runners=1)
    assert result.failures == 0, result.report()
    assert set(result.tally.latencies) == {
        "materialize hit", "flight doget", "rest data", "notebook edit", "cell run"
    }, result.report()  # fmt: skip
