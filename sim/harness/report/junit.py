"""junit.xml as CI dashboards group it: one class per feature, requirement ids as properties.

pytest writes junit.xml with every testcase under ``classname="steps.test_conformance"``.
After the run the suite rewrites each scenario's testcase with junitparser: ``classname``
becomes the feature (``features.<file stem>``, so a dashboard's package/class tree is
features/feature), ``name`` the scenario (with its example's values), with properties
``requirement`` (one per id, recorded by the pytest plugin while it ran) and ``feature``
(the feature's title). The test suite carries the properties ``run_id`` and ``verdict``,
ahead of its testcases as the JUnit XML schema orders them.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from junitparser import JUnitXml, Properties, Property, TestCase, TestSuite

from sim.harness.report.plain import plain
from sim.harness.report.results import ScenarioResult


def junit_address(nodeid: str) -> tuple[str, str]:
    """The (classname, name) pytest's junitxml gives a node id ("steps/test_x.py::test_y[z]")."""
    path, *names = nodeid.split("::")
    module = path.removesuffix(".py").replace("/", ".").replace("\\", ".")
    return ".".join([module, *names[:-1]]), names[-1] if names else path


def _suite_properties(suite: TestSuite, properties: Mapping[str, str]) -> None:
    """Add the suite's properties; a new <properties> goes before the testcases."""
    created = suite.child(Properties) is None  # type: ignore[no-untyped-call]  # junitparser: unannotated
    cases = list(suite) if created else []
    for case in cases:
        suite.remove(case)  # type: ignore[no-untyped-call]
    for name, value in properties.items():
        suite.add_property(name, value)
    suite.extend(cases)  # type: ignore[no-untyped-call]


def _plain_texts(case: TestCase) -> None:
    """No terminal escape sequences in a testcase's messages and captured output."""
    for outcome in case.result:
        if outcome.message:
            outcome.message = plain(outcome.message)
        if outcome.text:
            outcome.text = plain(outcome.text)
    for name in ("system_out", "system_err"):
        text = getattr(case, name)
        if text:
            setattr(case, name, plain(text))


def _regroup(case: TestCase, result: ScenarioResult) -> None:
    stem = Path(result.feature_uri).stem or "unknown"
    case.classname = f"features.{stem}"
    case.name = result.scenario
    properties = case.child(Properties)  # type: ignore[no-untyped-call]
    if properties is None:
        properties = Properties()  # type: ignore[no-untyped-call]
        case.append(properties)  # type: ignore[no-untyped-call]
    properties.add_property(Property("feature", result.feature))


def group_by_feature(path: Path, results: Mapping[str, ScenarioResult], run_id: str, verdict: str) -> None:
    """Rewrite ``path`` in place (see the module docstring)."""
    by_address = {junit_address(nodeid): result for nodeid, result in results.items()}
    xml = JUnitXml.fromfile(str(path))
    suites: list[TestSuite] = [xml] if isinstance(xml, TestSuite) else list(xml)
    for suite in suites:
        _suite_properties(suite, {"run_id": run_id, "verdict": verdict})
        for case in suite:
            _plain_texts(case)
            result = by_address.get((case.classname or "", case.name or ""))
            if result is not None:
                _regroup(case, result)
    xml.write(str(path))
