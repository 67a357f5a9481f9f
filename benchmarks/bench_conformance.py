"""How long the whole reference-target conformance run takes, beside the cost of collecting it.

Prints, from one run on this machine: the wall time of ``peerpods-conformance run`` on
the reference target (in a fresh process, as a user runs it), the per-scenario median
and maximum from its summary.json, and the wall time of a bare ``pytest --collect-only``
of the same features, so the suite's own cost can be told apart from pytest's and
pytest-bdd's. Goal: the run under 5 s on a 2-core machine.

Usage: python benchmarks/bench_conformance.py [--repeat N]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def timed(command: list[str]) -> float:
    """Wall time of one command, which must succeed."""
    start = time.perf_counter()
    completed = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if completed.returncode != 0:
        sys.exit(
            f"{' '.join(command)} failed ({completed.returncode}):\n"
            f"{completed.stdout[-2000:]}{completed.stderr}"
        )
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs of each command (the median is printed)")
    args = parser.parse_args()
    runs: list[float] = []
    collects: list[float] = []
    durations: list[float] = []
    scenarios = 0
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory() as reports:
            runs.append(
                timed(
                    [
                        sys.executable,
                        "-m",
                        "sim",
                        "run",
                        "--target",
                        "reference",
                        "--report-dir",
                        reports,
                        "-q",
                    ]
                )
            )
            summary = json.loads((Path(reports) / "summary.json").read_text())
            durations = [s["duration"] for s in summary["scenarios"]]
            scenarios = len(durations)
        collects.append(
            timed([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--collect-only", "-q", "steps"])
        )
    run_s, collect_s = statistics.median(runs), statistics.median(collects)
    print(f"reference conformance run : {run_s:6.2f} s wall (median of {args.repeat}), {scenarios} scenarios")
    print(f"pytest --collect-only     : {collect_s:6.2f} s wall (median of {args.repeat})")
    print(f"run / collect-only        : {run_s / collect_s:6.2f}x")
    print(f"scenario time, median     : {statistics.median(durations) * 1000:6.1f} ms")
    print(f"scenario time, max        : {max(durations) * 1000:6.1f} ms")
    print(f"goal: run < 5 s           : {'met' if run_s < 5 else 'NOT met'}")


if __name__ == "__main__":
    main()
