"""The short REST fuzz campaign: schemathesis, every check, every route, a few hundred cases.

The long one is ``bench/fuzz_rest.py`` (docs/operations.md). A fixed seed keeps this
one the same run every time; the long one draws a new seed each time.
"""

from __future__ import annotations

from tests.fuzzing import run_schemathesis, seeded_server


def test_every_route_answers_as_its_document_says(tmp_path) -> None:
    with seeded_server(tmp_path) as (url, seeds):
        outcome = run_schemathesis(url, seeds, examples=4, seed=1)
    assert outcome.returncode == 0 and outcome.failures == 0, outcome.output[-20_000:]
    assert outcome.cases >= 500, outcome.output[-5_000:]
