"""The long REST fuzz campaign: schemathesis, every check, every route, thousands of cases.

    flock /tmp/quiver-heavy.lock .venv/bin/python bench/fuzz_rest.py [--examples 100] [--seed N]

Starts the app over a seeded store (``tests/fuzzing.py``), runs schemathesis's
command with ``tests/schemathesis.toml`` and prints its summary, the number of
cases and of failures. Exit code 0 when nothing failed. ``make test`` runs a short
form (``tests/test_fuzz_rest.py``).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fuzzing import run_schemathesis, seeded_server


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=100, help="cases per operation")
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="quiver-fuzz-") as tmp:
        started = time.perf_counter()
        with seeded_server(Path(tmp)) as (url, seeds):
            outcome = run_schemathesis(url, seeds, examples=args.examples, seed=args.seed)
        took = time.perf_counter() - started
    summary = outcome.output[outcome.output.rfind("SUMMARY") - 40 :]
    print(summary if outcome.returncode == 0 else outcome.output)
    print(f"cases: {outcome.cases}  failures: {outcome.failures}  time: {took:.0f} s")
    return outcome.returncode


if __name__ == "__main__":
    sys.exit(main())
