"""summary.json: the machine-readable certification result of one run.

It names the run (its id), the suite (version and commit), the target, the dates, the
verdict and its scope (the whole catalogue, or a selection and what it left out), a
verdict per requirement with its level and the scenarios behind it (the traceability
matrix), the counts (MUSTs, and SHOULDs as advisories), the reasons scenarios were not
applicable grouped by what the target lacks, and the SHA-256 of junit.xml and cucumber.json.

The verdict counts MUST requirements only:

* ``NOT CONFORMANT``: a MUST requirement failed (in a full run or a selection);
* ``NOTHING VERIFIED``: no MUST requirement passed (every scenario not applicable, or none ran);
* ``PARTIAL``: every applicable MUST scenario that ran passed, but not the whole catalogue ran;
* ``CONFORMANT``: the whole catalogue ran and every applicable MUST scenario passed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import cast

from plumbum import local
from plumbum.commands.processes import CommandNotFound, ProcessExecutionError, ProcessTimedOut
from pytest_bdd.feature import get_features

from sim import __version__
from sim.files import sha256_file
from sim.harness.catalogue import Catalogue
from sim.harness.report.identity import host_identity, installed_identity
from sim.harness.report.model import (
    Advisory,
    Artifact,
    Counts,
    CountsByKind,
    HostInfo,
    NotApplicableGroup,
    RequirementRecord,
    ScenarioRecord,
    Scope,
    SuiteInfo,
    Summary,
)
from sim.harness.report.results import FAILED, NOT_APPLICABLE, NOT_RUN, OUTCOMES, PASSED, ScenarioResult
from sim.paths import CHECKOUT, FEATURES_DIR, PROJECT_ROOT

SCHEMA = "peerpods-conformance/summary/v2"
CONFORMANT, NOT_CONFORMANT, PARTIAL, NOTHING_VERIFIED = (
    "CONFORMANT",
    "NOT CONFORMANT",
    "PARTIAL",
    "NOTHING VERIFIED",
)
#: The one sentence each verdict is given in, on the console, in summary.json and in report.html.
HEADLINES = {
    CONFORMANT: "CONFORMANT: the whole catalogue ran and every applicable MUST scenario passed",
    NOT_CONFORMANT: "NOT CONFORMANT: a MUST requirement failed",
    PARTIAL: "PARTIAL: only a selection ran; every applicable MUST scenario in it passed, "
    "but a selection is not a certificate",
    NOTHING_VERIFIED: "NOTHING VERIFIED: no applicable MUST scenario ran",
}
#: The run's exit status for each verdict (2 is bad input, 4 an interrupted run: no verdict).
EXIT_CODES = {CONFORMANT: 0, NOT_CONFORMANT: 1, PARTIAL: 3, NOTHING_VERIFIED: 5}


def suite_commit(root: Path | None = PROJECT_ROOT if CHECKOUT else None) -> str:
    """The suite's git commit, with ``-dirty`` when the work tree has changes; ``unknown`` outside git.

    An installed wheel has no commit (its version says which suite it is): never ask git about
    whatever repository the environment it is installed in happens to sit in.
    """
    if root is None:
        return "unknown"
    try:
        git = local["git"]["-C", str(root)]
        commit = str(git("rev-parse", "HEAD", timeout=10)).strip()
        dirty = str(git("status", "--porcelain", "--untracked-files=no", timeout=10)).strip()
    except (OSError, CommandNotFound, ProcessExecutionError, ProcessTimedOut):
        return "unknown"
    return commit + ("-dirty" if dirty else "")


def suite_info() -> SuiteInfo:
    """The suite's version, and its commit (a checkout) or its installed digests (a wheel)."""
    return {
        "name": "peerpods-conformance",
        "version": __version__,
        "commit": suite_commit(),
        "installation": {} if CHECKOUT else installed_identity(),
    }


def catalogue_scenarios(features_dir: Path = FEATURES_DIR) -> set[tuple[str, int]]:
    """Every scenario of the features (an outline once), as (feature file name, line)."""
    paths = sorted(str(p) for p in features_dir.glob("**/*.feature"))
    return {
        (Path(feature.filename).name, template.line_number)
        for feature in get_features(paths)
        for template in feature.scenarios.values()
    }


def requirement_verdict(outcomes: Iterable[str]) -> str:
    """One requirement's verdict from its scenarios' outcomes.

    Any failure fails it; otherwise it passes when at least one applicable scenario ran
    and passed; a requirement whose scenarios were all not applicable is *not applicable*;
    one none of whose scenarios ran is *not run*.
    """
    seen = set(outcomes)
    for verdict in (FAILED, PASSED, NOT_APPLICABLE):
        if verdict in seen:
            return verdict
    return NOT_RUN


def run_verdict(requirements: list[RequirementRecord], scenarios: list[ScenarioResult], full: bool) -> str:
    """The run's verdict from the MUST requirements only (see the module docstring)."""
    musts = [r for r in requirements if r["level"] == "MUST"]
    if any(r["verdict"] == FAILED for r in musts) or any(
        s.outcome == FAILED and not s.requirements for s in scenarios
    ):
        return NOT_CONFORMANT
    if not any(r["verdict"] == PASSED for r in musts):
        return NOTHING_VERIFIED
    return CONFORMANT if full else PARTIAL


def _counts(verdicts: Iterable[str]) -> Counts:
    counter = Counter(verdicts)
    return {key: counter.get(key, 0) for key in OUTCOMES}


def not_applicable_groups(scenarios: list[ScenarioResult]) -> list[NotApplicableGroup]:
    """Not-applicable scenarios grouped by the capability the target lacks (else by the reason)."""
    groups: dict[str, NotApplicableGroup] = {}
    for s in scenarios:
        if s.outcome != NOT_APPLICABLE:
            continue
        key = s.capability or (s.reason or "").removeprefix("not applicable: ")
        group = groups.setdefault(
            key,
            {
                "lacks": key,
                "capability": s.capability,
                "reason": s.reason,
                "scenarios": [],
                "requirements": [],
            },
        )
        group["scenarios"].append(s.nodeid)
        group["requirements"] = sorted(set(group["requirements"]) | set(s.requirements))
    return sorted(groups.values(), key=lambda g: (-len(g["scenarios"]), g["lacks"]))


ByRequirement = dict[str, list[ScenarioResult]]


def scenarios_by_requirement(catalogue: Catalogue, scenarios: list[ScenarioResult]) -> ByRequirement:
    """Each requirement's scenarios (a requirement the catalogue lacks is kept too)."""
    found: ByRequirement = {r.id: [] for r in catalogue.requirements}
    for result in scenarios:
        for requirement_id in result.requirements:
            found.setdefault(requirement_id, []).append(result)
    return found


def requirement_records(catalogue: Catalogue, by_requirement: ByRequirement) -> list[RequirementRecord]:
    """The traceability matrix: each requirement of the catalogue, its verdict and scenarios."""
    return [
        {
            "id": requirement.id,
            "level": requirement.level,
            "text": requirement.text,
            "source": requirement.source,
            "since": requirement.since,
            "verdict": requirement_verdict(r.outcome for r in by_requirement[requirement.id]),
            "scenarios": [r.nodeid for r in by_requirement[requirement.id]],
        }
        for requirement in catalogue.requirements
    ]


def is_full_run(
    scenarios: list[ScenarioResult],
    not_run: Mapping[str, str],
    narrowed: bool,
    expected: set[tuple[str, int]] | None,
) -> bool:
    """Whether the whole catalogue ran: nothing narrowed, left out, or missing from the features."""
    if narrowed or not_run or any(s.outcome == NOT_RUN for s in scenarios):
        return False
    ran = {(Path(s.feature_uri).name, s.line) for s in scenarios}
    return not ((catalogue_scenarios() if expected is None else expected) - ran)


def run_scope(
    scenarios: list[ScenarioResult],
    requirements: list[RequirementRecord],
    *,
    full: bool,
    selection: list[str],
    not_run: Mapping[str, str],
) -> Scope:
    """What ran, and what a selection left out."""
    not_run_labels = sorted(
        set(not_run.values()) | {f"{s.feature}: {s.scenario}" for s in scenarios if s.outcome == NOT_RUN}
    )
    return {
        "full": full,
        "selection": selection,
        "scenarios_run": sum(1 for s in scenarios if s.outcome != NOT_RUN),
        "scenarios_not_run": not_run_labels,
        "requirements_not_run": [r["id"] for r in requirements if r["verdict"] == NOT_RUN],
    }


def _by_level(requirements: list[RequirementRecord], level: str) -> list[RequirementRecord]:
    return [r for r in requirements if r["level"] == level]


def run_counts(
    scenarios: list[ScenarioResult], requirements: list[RequirementRecord], not_run: Mapping[str, str]
) -> CountsByKind:
    """The counts: scenarios (those never reported as not run), requirements, MUSTs, SHOULDs."""
    return {
        "scenarios": _counts([s.outcome for s in scenarios] + [NOT_RUN] * len(not_run)),
        "requirements": _counts(r["verdict"] for r in requirements),
        "must": _counts(r["verdict"] for r in _by_level(requirements, "MUST")),
        "should": _counts(r["verdict"] for r in _by_level(requirements, "SHOULD")),
    }


def advisories(requirements: list[RequirementRecord], by_requirement: ByRequirement) -> list[Advisory]:
    """The SHOULD requirements that failed, with their scenarios' reasons."""
    return [
        {
            "id": r["id"],
            "text": r["text"],
            "verdict": r["verdict"],
            "reasons": sorted(
                {s.reason for s in by_requirement[r["id"]] if s.outcome == FAILED and s.reason}
            ),
        }
        for r in _by_level(requirements, "SHOULD")
        if r["verdict"] == FAILED
    ]


def artifact_records(artifacts: Mapping[str, Path]) -> dict[str, Artifact]:
    """Each result file's name and SHA-256."""
    return {name: {"file": path.name, "sha256": sha256_file(path)} for name, path in artifacts.items()}


def build_summary(
    *,
    catalogue: Catalogue,
    results: Iterable[ScenarioResult],
    target: Mapping[str, str],
    artifacts: Mapping[str, Path],
    started: datetime,
    finished: datetime,
    selection: list[str],
    run_id: str = "",
    not_run: Mapping[str, str] | None = None,
    narrowed: bool = False,
    expected: set[tuple[str, int]] | None = None,
    product: Mapping[str, str] | None = None,
    lpars: Mapping[str, Mapping[str, str]] | None = None,
) -> Summary:
    """Assemble summary.json's content.

    ``not_run`` names the scenarios that were deselected or never reported; ``narrowed``
    says the command line selected part of the catalogue (``--tags``, ``-k``, ``-m``, paths);
    ``expected`` is every scenario a full run has (default: the features' own); ``lpars`` each
    LPAR's facts in a run over several (``target`` then holds the facts they share).
    """
    scenarios = sorted(results, key=lambda r: r.nodeid)
    left_out = dict(not_run or {})
    by_requirement = scenarios_by_requirement(catalogue, scenarios)
    requirements = requirement_records(catalogue, by_requirement)
    full = is_full_run(scenarios, left_out, narrowed, expected)
    verdict = run_verdict(requirements, scenarios, full)
    summary: Summary = {
        "schema": SCHEMA,
        "run_id": run_id,
        "suite": suite_info(),
        "target": dict(target),
        "product": dict(product) if product else None,
        "started": started.astimezone(UTC).isoformat(timespec="seconds"),
        "finished": finished.astimezone(UTC).isoformat(timespec="seconds"),
        "duration_seconds": round((finished - started).total_seconds(), 3),
        "host": cast(HostInfo, host_identity()),
        "selection": selection,
        "verdict": verdict,
        "headline": HEADLINES[verdict],
        "scope": run_scope(scenarios, requirements, full=full, selection=selection, not_run=left_out),
        "counts": run_counts(scenarios, requirements, left_out),
        "advisories": advisories(requirements, by_requirement),
        "not_applicable": not_applicable_groups(scenarios),
        "requirements": requirements,
        "scenarios": [cast(ScenarioRecord, r.to_dict()) for r in scenarios],
        "artifacts": artifact_records(artifacts),
    }
    if lpars:
        summary["lpars"] = {uri: dict(facts) for uri, facts in lpars.items()}
    return summary
