"""cucumber.json: every scenario of the run in Cucumber's JSON report format.

Written by the suite from what the recorder heard through pytest-bdd's hooks, rather than by
pytest-bdd's own ``--cucumberjson``, which leaves out every scenario that was skipped before
its first step. Here a not-applicable scenario has status ``skipped`` with the reason as the
error message of the step that found it (or, when no step ran, its first step), so Cucumber
consumers show it. The run id is a tag on every feature, ``@peerpods-run:<id>``, since the
format has no field for it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

from sim.harness.report.results import FAILED, PASSED, FeatureInfo, ScenarioResult

RUN_TAG = "peerpods-run"


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _tags(tags: Iterable[str], line: int) -> list[dict[str, Any]]:
    return [{"name": f"@{tag}", "line": max(line - 1, 1)} for tag in tags]


def _result(status: str, duration: float, error: str | None) -> dict[str, Any]:
    result: dict[str, Any] = {"status": status, "duration": math.floor(duration * 1e9)}
    if error is not None or status == FAILED:
        result["error_message"] = error or "failed"
    return result


def _element(feature_id: str, scenario: ScenarioResult) -> dict[str, Any]:
    element: dict[str, Any] = {
        "keyword": scenario.keyword,
        "id": f"{feature_id};{_slug(scenario.scenario)}",
        "name": scenario.scenario,
        "line": scenario.line or 1,
        "description": "",
        "tags": _tags(scenario.tags, scenario.line or 1),
        "type": "scenario",
        "steps": [
            {
                "keyword": step.keyword,
                "name": step.name,
                "line": step.line,
                "match": {"location": scenario.nodeid},
                "result": _result(step.status, step.duration, step.error),
            }
            for step in scenario.steps
        ],
    }
    if not scenario.steps:  # it never reached its first step: say why in a before hook
        status = {PASSED: PASSED, FAILED: FAILED}.get(scenario.outcome, "skipped")
        result = _result(status, scenario.duration, scenario.reason)
        element["before"] = [{"match": {"location": scenario.nodeid}, "result": result}]
        return element
    # the time outside the steps (the environment's set-up and tear-down) as hooks, so that the
    # scenario's total is JUnit's (setup + call + teardown)
    location = {"location": f"{scenario.nodeid} (environment)"}
    element["before"] = [{"match": location, "result": _result(PASSED, scenario.before, None)}]
    element["after"] = [{"match": location, "result": _result(PASSED, scenario.after, None)}]
    return element


def cucumber_report(
    features: Mapping[str, FeatureInfo], scenarios: Iterable[ScenarioResult], run_id: str
) -> list[dict[str, Any]]:
    """The Cucumber JSON document: one entry per feature, every scenario of the run in it."""
    by_feature: dict[str, list[ScenarioResult]] = {}
    for scenario in scenarios:
        by_feature.setdefault(scenario.feature_uri or scenario.feature, []).append(scenario)
    document = []
    for uri, members in sorted(by_feature.items()):
        info = features.get(uri) or FeatureInfo(uri, "Feature", members[0].feature or uri, 1, "", "en", [])
        feature_id = _slug(info.name)
        document.append(
            {
                "keyword": info.keyword,
                "uri": info.uri,
                "name": info.name,
                "id": feature_id,
                "line": info.line,
                "description": info.description,
                "tags": _tags([*info.tags, f"{RUN_TAG}:{run_id}"], info.line),
                "elements": [
                    _element(feature_id, s) for s in sorted(members, key=lambda s: (s.line, s.nodeid))
                ],
            }
        )
    return document
