"""``peerpods-conformance results PATH``: read a run's results back, as ``sonobuoy results`` does.

PATH is a ``results.tar.gz`` (written by ``run``) or a report directory. It prints the verdict
and its scope, the counts, failed MUST requirements, advisories, what was not applicable and
whether the files match their SHA256SUMS; ``--detailed`` adds one line per scenario. Exit 0
when the results could be read (whatever their verdict), 2 when they could not, 1 when a file
does not match its checksum.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from sim.harness.report.bundle import BUNDLE, read_results
from sim.harness.report.plain import short_reason
from sim.harness.report.results import OUTCOMES

__all__ = ["register"]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "results",
        help=f"print the summary of a {BUNDLE} or a report directory (--detailed: every scenario)",
        description=f"Read a run's results back: a {BUNDLE} written by `run`, or a report directory.",
        epilog="examples:\n  peerpods-conformance results reports/results.tar.gz\n"
        "  peerpods-conformance results reports --detailed",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("path", type=Path, help=f"a {BUNDLE} or a report directory")
    parser.add_argument("--detailed", action="store_true", help="also list every scenario and its outcome")
    parser.set_defaults(func=_results)


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{counts.get(word, 0)} {word}" for word in OUTCOMES)


def _results(args: argparse.Namespace) -> int:
    read = read_results(args.path)
    summary = read.summary
    target = summary.get("target", {})
    suite = summary.get("suite", {})
    product = summary.get("product") or {}
    lines = [
        f"{summary.get('headline', summary['verdict'])}",
        f"  run {summary.get('run_id', '?')}: {summary.get('started', '?')} to "
        f"{summary.get('finished', '?')}",
        f"  target {target.get('name', '?')}"
        + (f" ({target['implementation']})" if target.get("implementation") else ""),
        f"  suite {suite.get('name', '?')} {suite.get('version', '?')}, commit {suite.get('commit', '?')}",
    ]
    if product:
        named = " ".join(str(product.get(key, "?")) for key in ("vendor", "product", "version"))
        lines.append(f"  product {named}")
    counts = summary.get("counts", {})
    for label, key in (
        ("scenarios", "scenarios"),
        ("MUST requirements", "must"),
        ("advisories (SHOULD)", "should"),
    ):
        if key in counts:
            lines.append(f"  {label}: {_counts(counts[key])}")
    failed = [
        r["id"]
        for r in summary.get("requirements", [])
        if r.get("level") == "MUST" and r.get("verdict") == "failed"
    ]
    if failed:
        lines.append(f"  failed MUST requirements: {', '.join(failed)}")
    for advisory in summary.get("advisories", []):
        lines.append(f"  advisory {advisory['id']}: {advisory['text']}")
    for group in summary.get("not_applicable", []):
        lines.append(
            f"  not applicable: {len(group['scenarios'])} scenario(s) lacking {group['lacks']}"
            f" ({', '.join(group['requirements'])})"
        )
    mismatched = {name: state for name, state in read.checksums.items() if state != "ok"}
    if read.checksums:
        state = "all match" if not mismatched else ", ".join(f"{n}: {s}" for n, s in mismatched.items())
        lines.append(f"  SHA256SUMS: {state}")
    logs = [m for m in read.members if m.startswith("logs/")]
    if logs:
        lines.append(f"  logs in the bundle: {', '.join(logs)}")
    if args.detailed:
        lines.append("")
        lines.extend(_scenario_lines(summary))
    print("\n".join(lines))
    return 1 if mismatched else 0


def _scenario_lines(summary: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    feature = None
    for scenario in sorted(summary["scenarios"], key=lambda s: (s.get("feature", ""), s.get("line", 0))):
        if scenario.get("feature") != feature:
            feature = scenario.get("feature")
            lines.append(f"Feature: {feature}")
        outcome = scenario["outcome"]
        ids = ",".join(scenario.get("requirements", []))
        line = f"  {outcome:<14} {scenario['scenario']} [{ids}]"
        if outcome == "failed" and scenario.get("reason"):
            line += f"\n{' ' * 17}{scenario['reason']}"
        elif outcome != "passed" and scenario.get("reason"):
            line += f" - {short_reason(scenario['reason'])}"
        lines.append(line)
    return lines
