"""Fuzz the JSON readers (jsonl, massive, snips-json) with well-formed JSON of any type in any
field: every read must succeed or raise the project's typed error (``NluDataError``).

    .venv/bin/python benchmarks/fuzz_json_readers.py [--cases 12000] [--seed 0]

The cases come from ``tests/json_records.py``, the strategy ``tests/test_json_fuzz.py`` runs
a few hundred of; each case is read in repair and strict mode and what reads is written as
CoNLL and read back (``read_or_typed_error``). Prints, per format and in total, the cases
run, how many read, how many gave a typed error, the untyped exceptions (a failed CoNLL
round trip counts as one; the first few are shown with their traceback) and the seconds
taken. Exits 1 if any exception was untyped. Needs the dev extras (hypothesis). ``--tiny``
runs 10 cases per format: it checks that the benchmark runs (tests/test_benchmarks.py).
"""

from __future__ import annotations

import argparse
import collections
import sys
import tempfile
import time
import traceback
from pathlib import Path

from hypothesis import HealthCheck, Phase, given, seed, settings

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY))
sys.path.insert(0, str(REPOSITORY / "tests"))

from json_records import JSON_FORMATS, json_files, read_or_typed_error  # noqa: E402

SHOWN_TRACEBACKS = 3


def fuzz(fmt: str, cases: int, random_seed: int, folder: Path) -> collections.Counter:
    outcomes: collections.Counter = collections.Counter()

    # Generation only: an untyped exception is counted, not shrunk, so the run goes on.
    @seed(random_seed)
    @settings(max_examples=cases, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(json_files(fmt))
    def case(text: str) -> None:
        try:
            read = read_or_typed_error(text, fmt, folder)
        except Exception:  # noqa: BLE001 -- what the fuzz counts
            outcomes["untyped"] += 1
            if outcomes["untyped"] <= SHOWN_TRACEBACKS:
                print(f"--- {fmt}: untyped exception for {text!r}\n{traceback.format_exc()}")
        else:
            outcomes["read" if read is not None else "typed error"] += 1

    case()
    return outcomes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=12_000, help="in total, split evenly")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tiny", action="store_true", help="10 cases per format")
    args = parser.parse_args(argv)
    if args.tiny:
        args.cases = 10 * len(JSON_FORMATS)
    total: collections.Counter = collections.Counter()
    started = time.perf_counter()
    print(f"{'format':<11} {'cases':>7} {'read':>7} {'typed error':>12} {'untyped':>8} "
          f"{'seconds':>8}")
    with tempfile.TemporaryDirectory() as folder:
        for fmt in JSON_FORMATS:
            format_started = time.perf_counter()
            outcomes = fuzz(fmt, args.cases // len(JSON_FORMATS), args.seed, Path(folder))
            total.update(outcomes)
            print(f"{fmt:<11} {sum(outcomes.values()):>7,} {outcomes['read']:>7,} "
                  f"{outcomes['typed error']:>12,} {outcomes['untyped']:>8,} "
                  f"{time.perf_counter() - format_started:>8.1f}")
    print(f"{'total':<11} {sum(total.values()):>7,} {total['read']:>7,} "
          f"{total['typed error']:>12,} {total['untyped']:>8,} "
          f"{time.perf_counter() - started:>8.1f}")
    return 1 if total["untyped"] else 0


if __name__ == "__main__":
    sys.exit(main())
