"""summary.json: the machine-readable certification result of one run.

It names the suite (version and commit), the target, the date, a verdict per requirement
with the scenarios behind it (the traceability matrix), the counts, and the SHA-256 of
the other result files, so a vendor's report can be checked against its raw results.
"""

from __future__ import annotations

import subprocess
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sim import __version__
from sim.catalogue import PROJECT_ROOT, Catalogue
from sim.files import sha256_file
from sim.report.results import FAILED, NOT_APPLICABLE, PASSED, SKIPPED, ScenarioResult

NOT_RUN = "not run"
SCHEMA = "peerpods-conformance/summary/v1"


def suite_commit(root: Path = PROJECT_ROOT) -> str:
    """The suite's git commit, with ``-dirty`` when the work tree has changes; ``unknown`` outside git."""
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return commit + ("-dirty" if dirty else "")


def requirement_verdict(outcomes: Iterable[str]) -> str:
    """One requirement's verdict from its scenarios' outcomes.

    Any failure fails it; otherwise it passes when at least one applicable scenario ran
    and passed; a requirement whose scenarios were all not applicable is *not applicable*.
    """
    seen = list(outcomes)
    if not seen:
        return NOT_RUN
    if FAILED in seen:
        return FAILED
    if PASSED in seen:
        return PASSED
    if NOT_APPLICABLE in seen:
        return NOT_APPLICABLE
    return SKIPPED


def build_summary(
    *,
    catalogue: Catalogue,
    results: Iterable[ScenarioResult],
    target: Mapping[str, str],
    artifacts: Mapping[str, Path],
    started: datetime,
    finished: datetime,
    selection: list[str],
) -> dict[str, Any]:
    """Assemble summary.json's content."""
    scenarios = sorted(results, key=lambda r: r.nodeid)
    by_requirement: dict[str, list[ScenarioResult]] = {r.id: [] for r in catalogue.requirements}
    for result in scenarios:
        for requirement_id in result.requirements:
            by_requirement.setdefault(requirement_id, []).append(result)
    requirements = [
        {
            "id": requirement.id,
            "text": requirement.text,
            "source": requirement.source,
            "since": requirement.since,
            "verdict": requirement_verdict(r.outcome for r in by_requirement[requirement.id]),
            "scenarios": [r.nodeid for r in by_requirement[requirement.id]],
        }
        for requirement in catalogue.requirements
    ]
    scenario_counts = Counter(r.outcome for r in scenarios)
    requirement_counts = Counter(entry["verdict"] for entry in requirements)
    applicable = [r for r in scenarios if r.outcome != NOT_APPLICABLE]
    return {
        "schema": SCHEMA,
        "suite": {"name": "peerpods-conformance", "version": __version__, "commit": suite_commit()},
        "target": dict(target),
        "started": started.astimezone(UTC).isoformat(timespec="seconds"),
        "finished": finished.astimezone(UTC).isoformat(timespec="seconds"),
        "selection": selection,
        "verdict": PASSED if applicable and all(r.outcome == PASSED for r in applicable) else FAILED,
        "counts": {
            "scenarios": {
                key: scenario_counts.get(key, 0) for key in (PASSED, FAILED, NOT_APPLICABLE, SKIPPED)
            },
            "requirements": {
                key: requirement_counts.get(key, 0)
                for key in (PASSED, FAILED, NOT_APPLICABLE, SKIPPED, NOT_RUN)
            },
        },
        "requirements": requirements,
        "scenarios": [r.to_dict() for r in scenarios],
        "artifacts": {
            name: {"file": path.name, "sha256": sha256_file(path)} for name, path in artifacts.items()
        },
    }
