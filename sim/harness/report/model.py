"""The shape of summary.json, typed: what :func:`sim.harness.report.summary.build_summary`
returns and what report.html and the console line are rendered from.

TypedDicts rather than dataclasses because summary.json *is* this data: it is written with
``json.dumps`` as it is, and ``schemas/summary.schema.json`` describes the same fields for
the file's readers (a test validates a real run's file against it).
"""

from __future__ import annotations

from typing import NotRequired, TypedDict

#: outcome ("passed", "failed", "not applicable", "not run") -> how many
Counts = dict[str, int]


class SuiteInfo(TypedDict):
    name: str
    version: str
    commit: str
    #: Installed from a wheel: wheel_sha256 (as pip recorded it), record_sha256 (the installed
    #: files' RECORD), or installed ("editable, ..."); empty in a checkout.
    installation: dict[str, str]


class HostInfo(TypedDict):
    """Where the suite ran."""

    host: str
    os: str
    architecture: str
    python: str


class Scope(TypedDict):
    """Whether the whole catalogue ran, and what a selection left out."""

    full: bool
    selection: list[str]
    scenarios_run: int
    scenarios_not_run: list[str]
    requirements_not_run: list[str]


class CountsByKind(TypedDict):
    scenarios: Counts
    requirements: Counts
    must: Counts
    should: Counts


class Advisory(TypedDict):
    """A SHOULD requirement that failed: reported, never deciding the verdict."""

    id: str
    text: str
    verdict: str
    reasons: list[str]


class NotApplicableGroup(TypedDict):
    """Not-applicable scenarios sharing what the target lacks."""

    lacks: str
    capability: str | None
    reason: str | None
    scenarios: list[str]
    requirements: list[str]


class RequirementRecord(TypedDict):
    """One row of the traceability matrix."""

    id: str
    level: str
    text: str
    source: str
    since: str
    verdict: str
    scenarios: list[str]


class StepRecord(TypedDict):
    keyword: str
    name: str
    line: int
    status: str
    duration: float
    error: str | None


class RanOn(TypedDict):
    """Where a scenario ran: the xdist worker (``main`` when serial), the host, the LPAR (or None)."""

    worker: str
    host: str
    lpar: str | None


class ScenarioRecord(TypedDict):
    """One scenario (one example of an outline), as ScenarioResult.to_dict() gives it."""

    nodeid: str
    feature: str
    scenario: str
    requirements: list[str]
    outcome: str
    reason: str | None
    duration: float
    feature_uri: str
    line: int
    keyword: str
    outline: str | None
    examples: dict[str, str] | None
    capability: str | None
    tags: list[str]
    steps: list[StepRecord]
    ran_on: RanOn


class Artifact(TypedDict):
    file: str
    sha256: str


class Summary(TypedDict):
    """summary.json."""

    schema: str
    run_id: str
    suite: SuiteInfo
    target: dict[str, str]
    #: A run over several LPARs (``--libvirt-uri`` more than once): each LPAR's own facts, by URI.
    lpars: NotRequired[dict[str, dict[str, str]]]
    #: The product under test (``--product FILE``): vendor, product, version, contact, ...
    product: dict[str, str] | None
    started: str
    finished: str
    duration_seconds: float
    host: HostInfo
    selection: list[str]
    verdict: str
    headline: str
    scope: Scope
    counts: CountsByKind
    advisories: list[Advisory]
    not_applicable: list[NotApplicableGroup]
    requirements: list[RequirementRecord]
    scenarios: list[ScenarioRecord]
    artifacts: dict[str, Artifact]
