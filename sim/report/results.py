"""Recording each scenario's verdict while pytest runs.

JUnit XML and Cucumber JSON (pytest's and pytest-bdd's own) are written as they are; this
recorder keeps what they do not say plainly: which requirements a scenario checks, and
whether a skip means *not applicable on this target*, which is never counted as passed.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import asdict, dataclass, field
from typing import Any

import pytest
from pytest_bdd.scenario import scenario_wrapper_template_registry

from sim.catalogue import requirement_tags

PASSED, FAILED, NOT_APPLICABLE, SKIPPED = "passed", "failed", "not applicable", "skipped"
NOT_APPLICABLE_PREFIX = "not applicable"


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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _template(item: pytest.Item) -> Any:
    """pytest-bdd's scenario template behind a test item, or None for an ordinary test."""
    function = getattr(item, "function", None)
    return scenario_wrapper_template_registry.get(function) if function is not None else None


def _scenario_names(item: pytest.Item) -> tuple[str, str]:
    """The feature and scenario names pytest-bdd attached to the test function."""
    template = _template(item)
    if template is None:
        return "", item.name
    feature = getattr(template.feature, "name", "")
    name = template.name
    callspec: Any = getattr(item, "callspec", None)
    example = callspec.params.get("_pytest_bdd_example") if callspec is not None else None
    if example:
        rendered = template.render(example).name
        values = "; ".join(f"{key}: {value or '(none)'}" for key, value in example.items())
        name = rendered if rendered != template.name else f"{name} ({values})"
    return feature, name


def _skip_reason(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


@dataclass
class ResultRecorder:
    """A pytest plugin object: collects a ScenarioResult per feature test."""

    results: dict[str, ScenarioResult] = field(default_factory=dict)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield
        if _template(item) is None:
            return report
        result = self.results.get(item.nodeid)
        if result is None:
            feature, scenario = _scenario_names(item)
            ids = requirement_tags(mark.name for mark in item.iter_markers())
            result = self.results[item.nodeid] = ScenarioResult(item.nodeid, feature, scenario, ids)
        result.duration += report.duration
        if report.skipped:
            reason = _skip_reason(report)
            result.outcome = NOT_APPLICABLE if reason.startswith(NOT_APPLICABLE_PREFIX) else SKIPPED
            result.reason = reason
        elif report.failed and result.outcome != FAILED:
            result.outcome = FAILED
            result.reason = _failure_text(report)
        return report


def _failure_text(report: pytest.TestReport) -> str:
    """The assertion message, short enough for a table cell."""
    crash = getattr(report.longrepr, "reprcrash", None)
    text = getattr(crash, "message", None) or str(report.longrepr)
    phase = "" if report.when == "call" else f"(during {report.when}) "
    return phase + text.strip().splitlines()[0][:500] if text.strip() else phase + "failed"
