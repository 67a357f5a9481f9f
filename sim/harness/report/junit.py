"""junit.xml as CI dashboards group it: one class per feature, requirement ids as properties.

pytest writes junit.xml with every testcase under ``classname="steps.test_conformance"``.
After the run the suite rewrites each scenario's testcase: ``classname`` becomes the
feature (``features.<file stem>``, so a dashboard's package/class tree is features/feature),
``name`` the scenario (with its example's values), with properties ``feature`` (the
feature's title) and ``requirement`` (one per id, added by conftest.py while it ran). The
test suite carries the properties ``run_id`` and ``verdict``.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping
from pathlib import Path

from sim.harness.report.results import ScenarioResult


def junit_address(nodeid: str) -> tuple[str, str]:
    """The (classname, name) pytest's junitxml gives a node id ("steps/test_x.py::test_y[z]")."""
    path, *names = nodeid.split("::")
    module = path.removesuffix(".py").replace("/", ".").replace("\\", ".")
    return ".".join([module, *names[:-1]]), names[-1] if names else path


def _properties(element: ET.Element) -> ET.Element:
    properties = element.find("properties")
    if properties is None:
        properties = ET.Element("properties")
        element.insert(0, properties)
    return properties


def group_by_feature(path: Path, results: Mapping[str, ScenarioResult], run_id: str, verdict: str) -> None:
    """Rewrite ``path`` in place (see the module docstring)."""
    by_address = {junit_address(nodeid): result for nodeid, result in results.items()}
    tree = ET.parse(path)
    root = tree.getroot()
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    for suite in suites:
        props = _properties(suite)
        ET.SubElement(props, "property", name="run_id", value=run_id)
        ET.SubElement(props, "property", name="verdict", value=verdict)
        for testcase in suite.iter("testcase"):
            result = by_address.get((testcase.get("classname", ""), testcase.get("name", "")))
            if result is None:
                continue
            stem = Path(result.feature_uri).stem or "unknown"
            testcase.set("classname", f"features.{stem}")
            testcase.set("name", result.scenario)
            _properties(testcase).insert(0, ET.Element("property", name="feature", value=result.feature))
    tree.write(path, encoding="utf-8", xml_declaration=True)
