"""``peerpods-conformance list``: the requirements, tags and scenarios, and what a target answers.

Reads the catalogue and the feature files only: it runs nothing and never touches a report
directory (``run --collect-only`` is refused and points here).
"""

from __future__ import annotations

import argparse
import json
import textwrap
from collections.abc import Sequence
from typing import Any

from sim.harness.catalogue import feature_scenarios, load_catalogue
from sim.harness.listing import listing
from sim.harness.targets import TARGETS

__all__ = ["register"]

PARTS = ("requirements", "tags", "scenarios")
EXAMPLES = """examples:
  peerpods-conformance list                       everything, as tables
  peerpods-conformance list requirements          the requirement catalogue
  peerpods-conformance list scenarios --target lpar
                                                  which scenarios the lpar target can answer
  peerpods-conformance list --json | jq '.scenarios[] | select(.requirements[] == "WH-001")'"""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "list",
        help="list requirements, tags and scenarios (and what a --target can answer); runs nothing",
        description="List what the suite checks, from the requirement catalogue and the feature files. "
        "Nothing runs and no report is written.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("part", nargs="?", choices=PARTS, help="only this part (default: all three)")
    parser.add_argument(
        "--target",
        choices=tuple(sorted(TARGETS)),
        default=None,
        help="say, per scenario, whether this target can answer it (default: no target)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    parser.set_defaults(func=_list)


def _list(args: argparse.Namespace) -> int:
    data = listing(load_catalogue(), feature_scenarios(), args.target)
    parts = (args.part,) if args.part else PARTS
    if args.json:
        print(json.dumps({key: data[key] for key in (*parts, "target")}, indent=2))
        return 0
    blocks = {"requirements": _requirements, "tags": _tags, "scenarios": _scenarios}
    print("\n\n".join(blocks[part](data) for part in parts))
    return 0


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], wrap_last: int = 0) -> str:
    """Columns padded to their widest cell; the last column wrapped at ``wrap_last`` characters."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header) - 1)]
    lines = []
    for row in [header, *rows]:
        lead = "  ".join(cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=False))
        last = textwrap.wrap(row[-1], wrap_last) if wrap_last and row[-1] else [row[-1]]
        lines.append(f"{lead}  {last[0]}".rstrip())
        lines.extend(" " * (len(lead) + 2) + more for more in last[1:])
    return "\n".join(lines)


def _requirements(data: dict[str, Any]) -> str:
    rows = [(r["id"], r["level"], str(r["scenarios"]), r["text"]) for r in data["requirements"]]
    title = f"REQUIREMENTS ({len(rows)})"
    return title + "\n" + _table(("ID", "LEVEL", "SCENARIOS", "TEXT"), rows, wrap_last=70)


def _tags(data: dict[str, Any]) -> str:
    rows = [(f"@{t['tag']}", str(t["scenarios"]), t["meaning"]) for t in data["tags"]]
    return f"TAGS ({len(rows)})\n" + _table(("TAG", "SCENARIOS", "MEANING"), rows, wrap_last=70)


def _scenarios(data: dict[str, Any]) -> str:
    target = data["target"]
    scenarios = data["scenarios"]
    if target is None:
        plain = [(s["feature"], ",".join(s["requirements"]), s["scenario"]) for s in scenarios]
        return f"SCENARIOS ({len(plain)})\n" + _table(("FEATURE", "REQUIREMENTS", "SCENARIO"), plain)
    rows = [
        (
            s["feature"],
            ",".join(s["requirements"]),
            "yes" if s["answerable"] else "no",
            s["scenario"] + ("" if s["answerable"] else f"  [{s['why']}]"),
        )
        for s in scenarios
    ]
    answered = sum(1 for s in scenarios if s["answerable"])
    title = (
        f"SCENARIOS ({len(rows)}; target {target['name']} can answer {answered}, "
        f"capabilities: {', '.join(target['capabilities']) or 'none'})"
    )
    return title + "\n" + _table(("FEATURE", "REQUIREMENTS", "ANSWERS", "SCENARIO"), rows)
