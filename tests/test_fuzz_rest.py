"""The short REST fuzz campaign: schemathesis, every check, every route, a few hundred cases.

The long one is ``bench/fuzz_rest.py`` (docs/operations.md). A fixed seed keeps this
one the same run every time; the long one draws a new seed each time. The routes are
fuzzed in two halves, a test each, so that neither comes near the per-test time limit
on a loaded two-core machine as routes are added.
"""

from __future__ import annotations

import pytest

from tests.fuzzing import run_schemathesis, seeded_server

SESSION_ROUTES = r"^/v1/notebooks/\{session_id\}"
HALVES = {
    "notebook-sessions": ("--include-path-regex", SESSION_ROUTES),
    "everything-else": ("--exclude-path-regex", SESSION_ROUTES),
}


@pytest.mark.parametrize("half", HALVES)
def test_every_route_answers_as_its_document_says(tmp_path, half: str) -> None:
    with seeded_server(tmp_path) as (url, seeds):
        outcome = run_schemathesis(url, seeds, examples=4, seed=1, only=HALVES[half])
    assert outcome.returncode == 0 and outcome.failures == 0, outcome.output[-20_000:]
    assert outcome.cases >= 250, outcome.output[-5_000:]
