"""The crash campaign's short form: a few kill -9 of a real ``quiver serve`` mid-workload.
The long form (50 kills) is run by hand: ``python -m tests.campaigns.crash``."""

from __future__ import annotations

import json
import random

from tests.campaigns.crash import SHORT, Campaign


def test_kill_9_mid_workload_loses_nothing_acknowledged(tmp_path) -> None:
    seed = random.randrange(2**32)  # a new moment each run; the seed replays the choices
    report = Campaign(tmp_path, seed=seed, sizes=SHORT).run(kills=3)
    summary = json.dumps({"seed": seed, **report.json()}, indent=1)
    assert not report.violations, summary
    assert not report.errors_before_kill, summary
    assert report.kills == 3 and report.with_reader == 2, summary
    assert report.acked["upload"] > 0 and report.verified_reads > 0, summary
