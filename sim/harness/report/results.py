"""Recording each scenario and its steps while pytest runs.

The recorder hears pytest-bdd's public hooks (``pytest_bdd_before_scenario``, ``..._before_step``,
``..._after_step``, ``..._step_error``) and pytest's reports, and keeps what the result files
need: the feature, the scenario (an outline's example with its values), each step's status,
the requirements a scenario checks, and whether a skip means *not applicable on this target*
(marked by the conftest in the item's stash under :data:`NOT_APPLICABLE_KEY`), which is never
counted as passed. Every result file (summary.json, report.html, junit.xml's grouping,
cucumber.json) is built from what it records.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Generator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pytest

from sim.harness.catalogue import requirement_tags
from sim.harness.report.plain import plain

PASSED, FAILED, NOT_APPLICABLE, NOT_RUN = "passed", "failed", "not applicable", "not run"
#: The suite's words for a scenario's outcome, in the order the console and the report give them.
OUTCOMES = (PASSED, FAILED, NOT_APPLICABLE, NOT_RUN)
#: The pytest fixture pytest-bdd parametrizes a scenario outline's examples with.
EXAMPLE_PARAM = "_pytest_bdd_example"
#: The fixture the pytest plugin parametrizes an ``@each-lpar`` scenario with: one instance per LPAR.
LPAR_PARAM = "peerpods_lpar"


@dataclass(frozen=True)
class NotApplicableMark:
    """Why a scenario is not applicable; ``capability`` is the ``@needs-`` capability it lacks, if known."""

    reason: str
    capability: str | None = None


#: Set on a test item when its scenario is not applicable on the target (see conftest.py).
NOT_APPLICABLE_KEY = pytest.StashKey[NotApplicableMark]()


@dataclass
class StepResult:
    """One step of a scenario as it ran (Cucumber's step ``result``)."""

    keyword: str
    name: str
    line: int
    status: str = "skipped"  # passed | failed | skipped (Cucumber's words)
    duration: float = 0.0
    error: str | None = None


@dataclass
class FeatureInfo:
    """What Cucumber JSON says about a feature."""

    uri: str
    keyword: str
    name: str
    line: int
    description: str
    language: str
    tags: list[str]


#: Set by the target when its scenarios run on one LPAR of several (the libvirt URI); else None.
CURRENT_LPAR: dict[str, str | None] = {"uri": None}


def ran_here() -> dict[str, str | None]:
    """Where a scenario runs: the xdist worker (``main`` in a serial run), the host, the LPAR."""
    return {
        "worker": os.environ.get("PYTEST_XDIST_WORKER") or "main",
        "host": socket.gethostname(),
        "lpar": CURRENT_LPAR["uri"],
    }


@dataclass
class ScenarioResult:
    """One scenario (one example of an outline) and its verdict."""

    nodeid: str
    feature: str
    scenario: str
    requirements: list[str]
    outcome: str = PASSED
    reason: str | None = None
    duration: float = 0.0
    #: Seconds spent before the first step (pytest's setup: the scenario's environment) and after
    #: the steps (the call's time outside steps, and the teardown); with the steps', ``duration``.
    before: float = 0.0
    after: float = 0.0
    feature_uri: str = ""
    line: int = 0
    keyword: str = "Scenario"
    #: The outline's own name when this is one of its examples, else None.
    outline: str | None = None
    examples: dict[str, str] | None = None
    capability: str | None = None
    tags: list[str] = field(default_factory=list)
    steps: list[StepResult] = field(default_factory=list)
    #: Where it ran (see :func:`ran_here`); a parallel run's scenarios differ only here and in timings.
    ran_on: dict[str, str | None] = field(default_factory=ran_here)

    def to_dict(self) -> dict[str, Any]:
        """As summary.json records it (its ``duration`` is the whole scenario's)."""
        record = asdict(self)
        del record["before"], record["after"]
        return record


def is_scenario(item: pytest.Item) -> bool:
    """A test item pytest-bdd made from a scenario (it takes the examples parameter)."""
    return EXAMPLE_PARAM in getattr(item, "fixturenames", ())


def _example(item: pytest.Item) -> dict[str, str]:
    callspec: Any = getattr(item, "callspec", None)
    example = callspec.params.get(EXAMPLE_PARAM) if callspec is not None else None
    return {str(k): str(v) for k, v in (example or {}).items()}


def item_lpar(item: pytest.Item) -> str | None:
    """The LPAR this instance of an ``@each-lpar`` scenario is for (several LPARs), else None."""
    callspec: Any = getattr(item, "callspec", None)
    uri = callspec.params.get(LPAR_PARAM) if callspec is not None else None
    return str(uri) if uri is not None else None


def _on_lpar(item: pytest.Item) -> str:
    """The scenario name's suffix of an ``@each-lpar`` scenario's instance: " (LPAR: <uri>)"."""
    uri = item_lpar(item)
    return f" (LPAR: {uri})" if uri is not None else ""


def _documented_names(item: pytest.Item) -> tuple[str, str]:
    """Feature and scenario names from the test function's docstring, "feature: scenario".

    pytest-bdd writes that docstring on every scenario function; it names a scenario that
    never started (deselected, or failed before its first step).
    """
    doc = (getattr(getattr(item, "obj", None), "__doc__", None) or "").strip()
    feature, sep, scenario = doc.partition(": ")
    return (feature, scenario) if sep else ("", doc or item.name)


def scenario_label(item: pytest.Item) -> str:
    """How a report names a scenario that did not run: "feature: scenario (example values)"."""
    feature, scenario = _documented_names(item)
    example = _example(item)
    values = f" ({'; '.join(f'{k}: {v}' for k, v in example.items())})" if example else ""
    values += _on_lpar(item)
    return f"{feature}: {scenario}{values}" if feature else scenario + values


def _failure_text(report: pytest.TestReport) -> str:
    """The assertion message, short enough for a table cell."""
    crash = getattr(report.longrepr, "reprcrash", None)
    text = plain(getattr(crash, "message", None) or str(report.longrepr))
    phase = "" if report.when == "call" else f"(during {report.when}) "
    return phase + text.strip().splitlines()[0][:500] if text.strip() else phase + "failed"


def _skip_reason(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return plain(str(longrepr[2]).removeprefix("Skipped: "))
    return plain(str(longrepr))


@dataclass
class ResultRecorder:
    """A pytest plugin object: a ScenarioResult per scenario, and what was not run."""

    results: dict[str, ScenarioResult] = field(default_factory=dict)
    features: dict[str, FeatureInfo] = field(default_factory=dict)
    #: Scenarios left out by -k, -m (``--tags``) or any other deselection: nodeid -> label.
    deselected: dict[str, str] = field(default_factory=dict)
    #: Scenarios selected to run, in order: nodeid -> label.
    selected: dict[str, str] = field(default_factory=dict)
    #: Set when the user interrupted the run (Ctrl-C), as against a collection error.
    keyboard_interrupt: bool = False
    _step_started: float = 0.0
    _current: dict[str, int] = field(default_factory=dict)

    def pytest_keyboard_interrupt(self) -> None:
        self.keyboard_interrupt = True

    # -- collection -----------------------------------------------------------------------
    def pytest_deselected(self, items: list[pytest.Item]) -> None:
        for item in items:
            if is_scenario(item):
                self.deselected[item.nodeid] = scenario_label(item)

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.selected = {item.nodeid: scenario_label(item) for item in session.items if is_scenario(item)}

    # -- pytest-bdd's public hooks ----------------------------------------------------------
    @pytest.hookimpl(tryfirst=True)
    def pytest_bdd_before_scenario(self, request: pytest.FixtureRequest, feature: Any, scenario: Any) -> None:
        item = request.node
        uri = str(getattr(feature, "rel_filename", "") or Path(feature.filename).name)
        if uri not in self.features:
            self.features[uri] = FeatureInfo(
                uri=uri,
                keyword=feature.keyword,
                name=feature.name or uri,
                line=feature.line_number,
                description=(feature.description or "").strip(),
                language=feature.language,
                tags=sorted(feature.tags),
            )
        rule_tags = scenario.rule.tags if scenario.rule is not None else set()
        tags = sorted(set(scenario.tags) | set(feature.tags) | set(rule_tags))
        example = _example(item)
        _, template_name = _documented_names(item)
        name = scenario.name
        earlier = self.results.get(item.nodeid)  # its setup's report came first
        if example and name == template_name:
            name = f"{name} ({'; '.join(f'{k}: {v or (chr(34) * 2)}' for k, v in example.items())})"
        name += _on_lpar(item)
        self.results[item.nodeid] = ScenarioResult(
            nodeid=item.nodeid,
            feature=feature.name or uri,
            scenario=name,
            requirements=requirement_tags(mark.name for mark in item.iter_markers()),
            feature_uri=uri,
            line=scenario.line_number,
            keyword=scenario.keyword,
            outline=template_name if example else None,
            examples=example or None,
            tags=tags,
            steps=[StepResult(step.keyword, step.name, step.line_number) for step in scenario.steps],
        )
        if earlier is not None:
            self.results[item.nodeid].duration = earlier.duration
            self.results[item.nodeid].before = earlier.before
        self._current[item.nodeid] = -1

    def _step(self, request: pytest.FixtureRequest, step: Any) -> StepResult | None:
        result = self.results.get(request.node.nodeid)
        if result is None:
            return None
        index = self._current.get(request.node.nodeid, -1)
        for offset, candidate in enumerate(result.steps[index + 1 :], start=index + 1):
            if candidate.line == step.line_number:
                self._current[request.node.nodeid] = offset
                return candidate
        return None

    def pytest_bdd_before_step(self, request: pytest.FixtureRequest, step: Any) -> None:
        self._step_started = time.perf_counter()
        self._step(request, step)

    def _current_step(self, request: pytest.FixtureRequest) -> StepResult | None:
        result = self.results.get(request.node.nodeid)
        index = self._current.get(request.node.nodeid, -1)
        return result.steps[index] if result is not None and 0 <= index < len(result.steps) else None

    def pytest_bdd_after_step(self, request: pytest.FixtureRequest) -> None:
        step = self._current_step(request)
        if step is not None:
            step.status = PASSED
            step.duration = time.perf_counter() - self._step_started

    def pytest_bdd_step_error(self, request: pytest.FixtureRequest, exception: Exception) -> None:
        step = self._current_step(request)
        if step is not None:
            step.duration = time.perf_counter() - self._step_started
            step.status = FAILED
            step.error = plain(f"{type(exception).__name__}: {exception}")

    # -- pytest's reports -----------------------------------------------------------------
    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield
        if not is_scenario(item):
            return report
        result = self.results.get(item.nodeid)
        if result is None:  # failed or skipped before its first step: names from the docstring
            feature, scenario = _documented_names(item)
            example = _example(item)
            result = self.results[item.nodeid] = ScenarioResult(
                item.nodeid,
                feature,
                scenario_label(item).removeprefix(f"{feature}: ") if feature else scenario,
                requirement_tags(mark.name for mark in item.iter_markers()),
                outline=scenario if example else None,
                examples=example or None,
            )
        result.duration += report.duration
        if report.when == "setup":
            result.before += report.duration
        elif report.when == "call":
            result.after += max(report.duration - sum(step.duration for step in result.steps), 0.0)
        else:
            result.after += report.duration
        mark = item.stash.get(NOT_APPLICABLE_KEY, None)
        if report.skipped and mark is not None:
            result.outcome, result.reason, result.capability = (
                NOT_APPLICABLE,
                plain(mark.reason),
                mark.capability,
            )
            self._mark_skipped_step(item.nodeid, mark.reason)
        elif report.skipped:
            result.outcome, result.reason = NOT_RUN, _skip_reason(report)
            self._mark_skipped_step(item.nodeid, result.reason)
        elif report.failed and result.outcome != FAILED:
            result.outcome = FAILED
            result.reason = _failure_text(report)
            if not any(step.status == FAILED for step in result.steps) and result.steps:
                first_open = next((s for s in result.steps if s.status != PASSED), result.steps[-1])
                first_open.status, first_open.error = FAILED, result.reason
        return report

    def _mark_skipped_step(self, nodeid: str, reason: str) -> None:
        """The step that found the scenario not applicable (or the first) is skipped with the reason."""
        result = self.results[nodeid]
        if not result.steps:
            return
        index = self._current.get(nodeid, -1)
        step = result.steps[index] if index >= 0 and result.steps[index].status != PASSED else None
        if step is None:
            step = next((s for s in result.steps if s.status != PASSED), result.steps[-1])
        step.status, step.error = "skipped", reason

    def not_run(self) -> dict[str, str]:
        """Every scenario that was deselected, or selected but never reported (``-x``, an interrupt)."""
        missing = {nodeid: label for nodeid, label in self.selected.items() if nodeid not in self.results}
        return {**self.deselected, **missing}
