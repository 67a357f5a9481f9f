"""Print two runs of bench_hostile.py side by side (before a change, after it).

    python benchmarks/compare_hostile.py --before before*.json --after after*.json

Each side may be given as several result files (e.g. ``--skip slow`` and ``--skip huge`` runs);
they are merged. Rows: the huge reviews (status, latency, answer size, worker peak RSS, the
worst latency of the small reviews and of /readyz meanwhile), then the slow readers (the
worker's RSS and the connections the server still held at the end of each round).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

HUGE_ROWS = (
    ("status", "status"),
    ("latency_s", "latency (s)"),
    ("reply_bytes", "answer (bytes)"),
    ("worker_peak_rss_mib", "worker peak RSS (MiB)"),
    ("small_review_max_s", "small reviews meanwhile, worst (s)"),
    ("small_review_median_s", "small reviews meanwhile, median (s)"),
    ("readyz_max_s", "/readyz meanwhile, worst (s)"),
)


def merged(paths: list[Path]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for path in paths:
        result.update(json.loads(path.read_text()))
    return result


def _row(label: str, before: object, after: object) -> str:
    return f"  {label:42} {before!s:>16} {after!s:>16}"


def _round_ends(result: dict[str, Any]) -> dict[int, dict[str, Any]]:
    """The last sample of each slow-reader round."""
    ends: dict[int, dict[str, Any]] = {}
    for sample in result.get("samples", []):
        ends[sample.get("round", 1)] = sample
    return ends


def render(before: dict[str, Any], after: dict[str, Any]) -> str:
    lines = [_row("", "before", "after")]
    for key in sorted(k for k in {*before, *after} if k.startswith("huge_")):
        b, a = before.get(key, {}), after.get(key, {})
        lines.append(f"{key.replace('huge_', '')} empty containers ({b.get('request_bytes', '?')} bytes):")
        lines += [_row(label, b.get(field, "-"), a.get(field, "-")) for field, label in HUGE_ROWS]
    for key in sorted(k for k in {*before, *after} if k.startswith("slow_")):
        b, a = before.get(key, {}), after.get(key, {})
        lines.append(f"{key}: 4 clients per round that never read (SO_RCVBUF 4096)")
        lines.append(
            _row("worker RSS before (MiB)", b.get("rss_before_mib", "-"), a.get("rss_before_mib", "-"))
        )
        b_ends, a_ends = _round_ends(b), _round_ends(a)
        for round_ in sorted({*b_ends, *a_ends}):
            bs, as_ = b_ends.get(round_, {}), a_ends.get(round_, {})
            lines.append(
                _row(
                    f"end of round {round_}: RSS (MiB)",
                    bs.get("worker_rss_mib", "-"),
                    as_.get("worker_rss_mib", "-"),
                )
            )
            lines.append(
                _row(f"end of round {round_}: connections held", bs.get("held", "-"), as_.get("held", "-"))
            )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--before", type=Path, nargs="+", required=True)
    parser.add_argument("--after", type=Path, nargs="+", required=True)
    args = parser.parse_args()
    print(render(merged(args.before), merged(args.after)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
