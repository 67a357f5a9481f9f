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
from sim.harness.report.plain import short_reason
from sim.harness.report.results import FAILED, NOT_APPLICABLE, NOT_RUN, OUTCOMES, PASSED
from sim.harness.targets.base import CAPABILITIES

TEMPLATE = "report.html.j2"
#: The chart's geometry (SVG user units): label column, bar column, row height.
CHART_WIDTH, CHART_LABEL, CHART_BAR, CHART_ROW = 760, 350, 300, 22
CHART_LABEL_CHARS = 58


@dataclass(frozen=True)
class Segment:
    """One outcome's part of a chart bar."""

    outcome: str
    count: int
    x: float
    width: float


@dataclass(frozen=True)
class ChartBar:
    label: str
    title: str
    y: int
    total: int
    passed: int
    segments: list[Segment]


@dataclass(frozen=True)
class Chart:
    """MUST scenarios per feature as horizontal stacked bars (inline SVG, no script)."""

    width: int
    height: int
    label_width: int
    bar_width: int
    row: int
    bars: list[ChartBar]


@dataclass(frozen=True)
class NotApplicableRow:
    """What the target lacks, said once, and what it cost."""

    lacks: str
    meaning: str
    detail: str
    scenarios: int
    requirements: list[str]


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


def must_chart(summary: Summary) -> Chart:
    """Per feature, its scenarios that check a MUST requirement, by outcome."""
    musts = {r["id"] for r in summary["requirements"] if r["level"] == "MUST"}
    per: dict[str, Counter[str]] = {}
    for scenario in summary["scenarios"]:
        if musts.intersection(scenario["requirements"]):
            per.setdefault(scenario["feature"] or "(unknown feature)", Counter())[scenario["outcome"]] += 1
    widest = max((sum(c.values()) for c in per.values()), default=1) or 1
    bars: list[ChartBar] = []
    for index, (name, counts) in enumerate(sorted(per.items())):
        x = float(CHART_LABEL)
        segments = []
        for outcome in OUTCOMES:
            if counts.get(outcome):
                width = CHART_BAR * counts[outcome] / widest
                segments.append(Segment(outcome, counts[outcome], round(x, 1), round(width, 1)))
                x += width
        label = name if len(name) <= CHART_LABEL_CHARS else name[: CHART_LABEL_CHARS - 1] + "…"
        total = sum(counts.values())
        title = f"{name}: " + ", ".join(f"{counts[o]} {o}" for o in OUTCOMES if counts.get(o))
        bars.append(ChartBar(label, title, index * CHART_ROW, total, counts.get(PASSED, 0), segments))
    height = max(len(bars), 1) * CHART_ROW + 4
    return Chart(CHART_WIDTH, height, CHART_LABEL, CHART_BAR, CHART_ROW, bars)


def not_applicable_rows(summary: Summary) -> list[NotApplicableRow]:
    """The not-applicable groups without repeating the reason the capability already says."""
    rows = []
    for group in summary["not_applicable"]:
        lacks = group["capability"] or group["lacks"]
        meaning = CAPABILITIES.get(lacks, "")
        detail = short_reason(group["reason"], width=300)
        if detail in (f"needs {lacks}", lacks, ""):
            detail = ""
        rows.append(NotApplicableRow(lacks, meaning, detail, len(group["scenarios"]), group["requirements"]))
    return rows


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    minutes, rest = divmod(round(seconds, 1), 60)
    return f"{int(minutes)} min {rest:.0f} s" if minutes else f"{rest:.1f} s"


def identity_blocks(summary: Summary) -> dict[str, dict[str, str]]:
    """The certificate's identity: the product, the target (and each LPAR's own facts, in a run over
    several), the suite, the host and the run."""
    suite = summary["suite"]
    installation = suite.get("installation") or {}
    suite_block = {"name": suite["name"], "version": suite["version"]}
    if installation.get("wheel_sha256"):
        suite_block["wheel sha256"] = installation["wheel_sha256"]
    if suite["commit"] != "unknown" or not installation:
        suite_block["commit"] = suite["commit"]
    if installation.get("record_sha256"):
        suite_block["installed files (RECORD) sha256"] = installation["record_sha256"]
    if installation.get("installed"):
        suite_block["installed"] = installation["installed"]
    host = summary.get("host")
    run_block = {
        "run id": summary["run_id"],
        "started": summary["started"],
        "finished": summary["finished"],
        "duration": _duration(summary.get("duration_seconds")),
        "selection": " ".join(summary["selection"]) or "the whole catalogue",
    }
    product = summary.get("product") or {"product": "not named (peerpods-conformance run --product FILE)"}
    lpars = {f"LPAR {uri}": dict(facts) for uri, facts in summary.get("lpars", {}).items()}
    return {
        "Product under test": dict(product),
        "Target": dict(summary["target"]),
        **lpars,
        "Suite": suite_block,
        "Host": {key: str(value) for key, value in host.items()} if host else {"host": "unknown"},
        "Run": run_block,
    }


def render_report(summary: Summary, summary_sha256: str) -> str:
    """The whole HTML document."""
    artifacts = {name: f"sha256 {info['sha256']}" for name, info in summary["artifacts"].items()}
    artifacts["summary.json"] = f"sha256 {summary_sha256}"
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
            identity=identity_blocks(summary),
            chart=must_chart(summary),
            not_applicable=not_applicable_rows(summary),
            artifacts=artifacts,
        )
    )
