"""report.html: the certification report a vendor hands on, one self-contained file.

No scripts, no external styles or fonts: it must open (and print) the same way in an archive
years later. Everything in it comes from the typed summary (summary.json), so the two can
never disagree. The markup is the Jinja2 template ``templates/report.html.j2``, rendered
with autoescaping on; this module only arranges the summary for it (per-feature counts, an
outline's examples grouped under their scenario).

Its order is a certifier's: the verdict and its scope first (the whole catalogue or a
selection, the MUST requirements that decide it, the SHOULD advisories that do not), then a
summary per feature, what was not applicable grouped by what the target lacks, the
traceability matrix (an outline's examples folded under their scenario: "12 of 12
examples passed", the examples on demand), what was not run, and the run's identity and
result files. A print stylesheet lays it out for PDF.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from functools import cache

import jinja2

from sim.harness.report.model import Counts, RequirementRecord, ScenarioRecord, Summary
from sim.harness.report.results import FAILED, NOT_APPLICABLE, NOT_RUN, OUTCOMES, PASSED

TEMPLATE = "report.html.j2"


@dataclass(frozen=True)
class FeatureRow:
    """One feature's scenarios, counted by outcome."""

    name: str
    total: int
    counts: Counts


@dataclass(frozen=True)
class ScenarioGroup:
    """A scenario, or an outline with its examples folded under one line."""

    name: str
    members: list[ScenarioRecord]
    single: bool
    overall: str
    tally: str
    opened: bool


@dataclass(frozen=True)
class MatrixRow:
    """A requirement of the traceability matrix and the scenarios that decided it."""

    requirement: RequirementRecord
    groups: list[ScenarioGroup]


@cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("sim.harness.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )


def feature_rows(summary: Summary) -> list[FeatureRow]:
    per: dict[str, Counter[str]] = {}
    for scenario in summary["scenarios"]:
        per.setdefault(scenario["feature"] or "(unknown feature)", Counter())[scenario["outcome"]] += 1
    return [FeatureRow(name, sum(c.values()), dict(c)) for name, c in sorted(per.items())]


def _group(name: str, members: list[ScenarioRecord]) -> ScenarioGroup:
    outcomes = Counter(m["outcome"] for m in members)
    overall = next((o for o in (FAILED, PASSED, NOT_APPLICABLE) if outcomes.get(o)), NOT_RUN)
    tally = f"{outcomes.get(PASSED, 0)} of {len(members)} examples passed" + "".join(
        f", {outcomes[o]} {o}" for o in (FAILED, NOT_APPLICABLE, NOT_RUN) if outcomes.get(o)
    )
    single = len(members) == 1 and not members[0].get("outline")
    return ScenarioGroup(name, members, single, overall, tally, bool(outcomes.get(FAILED)))


def scenario_groups(scenarios: list[ScenarioRecord]) -> list[ScenarioGroup]:
    """One requirement's scenarios; an outline's examples fold under one group."""
    groups: dict[tuple[str, str], list[ScenarioRecord]] = {}
    for scenario in scenarios:
        key = (scenario["feature"], scenario.get("outline") or scenario["scenario"])
        groups.setdefault(key, []).append(scenario)
    return [_group(name, members) for (_, name), members in groups.items()]


def matrix_rows(summary: Summary) -> list[MatrixRow]:
    scenarios = {s["nodeid"]: s for s in summary["scenarios"]}
    return [
        MatrixRow(req, scenario_groups([scenarios[n] for n in req["scenarios"] if n in scenarios]))
        for req in summary["requirements"]
    ]


def render_report(summary: Summary, summary_sha256: str) -> str:
    """The whole HTML document."""
    artifacts = {name: f"sha256 {info['sha256']}" for name, info in summary["artifacts"].items()}
    artifacts["summary.json"] = f"sha256 {summary_sha256}"
    suite = summary["suite"]
    suite_facts = {
        "name": suite["name"],
        "version": suite["version"],
        "commit": suite["commit"],
        "run id": summary["run_id"],
        "started": summary["started"],
        "finished": summary["finished"],
        "selection": " ".join(summary["selection"]) or "the whole catalogue",
    }
    return (
        _environment()
        .get_template(TEMPLATE)
        .render(
            summary=summary,
            outcomes=OUTCOMES,
            failed_musts=[
                r for r in summary["requirements"] if r["level"] == "MUST" and r["verdict"] == FAILED
            ],
            features=feature_rows(summary),
            matrix=matrix_rows(summary),
            requirement_texts={r["id"]: r["text"] for r in summary["requirements"]},
            suite_facts=suite_facts,
            artifacts=artifacts,
        )
    )
