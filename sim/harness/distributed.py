"""``run --workers N``: the scenarios spread over pytest-xdist workers, one run's results.

pytest-xdist (over execnet) runs the workers and schedules the scenarios; nothing here schedules.
Each worker builds the target from the same options (``--target ...`` on its pytest command
line) and records its scenarios with a :class:`WorkerRecorder`, which puts each finished
scenario's record on the teardown report it sends back anyway. The controller's
:class:`ControllerRecorder` hears those reports through ``pytest_runtest_logreport`` -- results
travel through xdist's own channel, never through files a worker left -- and rebuilds what a
serial run's :class:`~sim.harness.report.results.ResultRecorder` would hold, in the serial order.

A worker that dies fails the scenario it was running with xdist's reason; a scenario no worker
got to after that is failed too ("lost"), so a parallel run never claims conformance with
scenarios missing.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pytest
from junitparser import JUnitXml, TestSuite

from sim.harness.catalogue import requirement_tags
from sim.harness.report.junit import junit_address
from sim.harness.report.results import (
    FAILED,
    FeatureInfo,
    ResultRecorder,
    ScenarioResult,
    StepResult,
    is_scenario,
    scenario_label,
)
from sim.harness.targets import bootconcurrency

#: Test seam: a worker exits abruptly (as when the OOM killer takes it) at the start of the first
#: scenario whose node id contains this text; once per run (a marker file next to the reports).
CRASH_SEAM_ENV = "PEERPODS_TEST_WORKER_CRASH"
NOTES_KEY = "peerpods_notes"
#: The report attributes a worker adds (plain JSON data, as xdist serializes a report's attributes).
SCENARIO_ATTR, FEATURE_ATTR, COLLECTION_ATTR = "peerpods_scenario", "peerpods_feature", "peerpods_collection"


def worker_count(text: str) -> int:
    """``--workers``: a positive whole number, or ``auto`` (this machine's cores)."""
    if text == "auto":
        return os.cpu_count() or 1
    try:
        count = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a number of workers (a whole number >= 1, or auto)"
        ) from None
    if count < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: at least one worker (or auto)")
    return count


def worker_id(config: pytest.Config) -> str | None:
    """This process's xdist worker id (gw0, gw1, ...), or None on the controller / a serial run."""
    workerinput: dict[str, Any] | None = getattr(config, "workerinput", None)
    return str(workerinput["workerid"]) if workerinput is not None else None


class WorkerRecorder(ResultRecorder):
    """A worker's recorder: each scenario's record and the collection go back on the reports."""

    def __init__(self) -> None:
        super().__init__()
        self._collection: dict[str, Any] | None = None
        self._collection_sent = False

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        super().pytest_collection_finish(session)
        self._collection = {
            "selected": [
                {
                    "nodeid": item.nodeid,
                    "label": scenario_label(item),
                    "requirements": requirement_tags(mark.name for mark in item.iter_markers()),
                }
                for item in session.items
                if is_scenario(item)
            ],
            "deselected": self.deselected,
        }

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_call(self, item: pytest.Item) -> None:
        seam = os.environ.get(CRASH_SEAM_ENV, "")
        if seam and seam in item.nodeid:
            marker = Path(os.environ.get(CRASH_SEAM_ENV + "_MARKER", "/nonexistent/marker"))
            try:
                marker.touch(exist_ok=False)
            except OSError:
                return  # crashed once already (or no marker given): the restarted worker goes on
            os._exit(70)

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Runs before xdist serializes the report for the controller."""
        if not self._collection_sent and self._collection is not None:
            setattr(report, COLLECTION_ATTR, self._collection)
            self._collection_sent = True
        result = self.results.get(report.nodeid)
        if report.when != "teardown" or result is None:
            return
        setattr(report, SCENARIO_ATTR, result.to_dict())
        feature = self.features.get(result.feature_uri)
        if feature is not None:
            setattr(report, FEATURE_ATTR, asdict(feature))

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        """After the target closed: its notes (boots per LPAR) go back with the worker's output."""
        workeroutput: dict[str, Any] | None = getattr(session.config, "workeroutput", None)
        if workeroutput is not None:
            workeroutput[NOTES_KEY] = list(bootconcurrency.NOTES)


def result_from_dict(data: dict[str, Any]) -> ScenarioResult:
    steps = [StepResult(**step) for step in data.get("steps", [])]
    return ScenarioResult(**{**data, "steps": steps})


@dataclass
class ControllerRecorder(ResultRecorder):
    """The controller's recorder: the workers' records, as a serial run's recorder would hold them."""

    #: Worker id -> why it went down (only workers that died).
    died: dict[str, str] = field(default_factory=dict)
    #: What the workers had to say at the end (their LPARs' boots), worker id -> lines.
    notes: dict[str, list[str]] = field(default_factory=dict)
    _requirements: dict[str, list[str]] = field(default_factory=dict)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        collection = getattr(report, COLLECTION_ATTR, None)
        if collection is not None and not self.selected:
            self.selected = {entry["nodeid"]: entry["label"] for entry in collection["selected"]}
            self._requirements = {entry["nodeid"]: entry["requirements"] for entry in collection["selected"]}
            self.deselected = dict(collection["deselected"])
        feature = getattr(report, FEATURE_ATTR, None)
        if feature is not None and feature["uri"] not in self.features:
            self.features[feature["uri"]] = FeatureInfo(**feature)
        scenario = getattr(report, SCENARIO_ATTR, None)
        if scenario is not None:
            self.results[report.nodeid] = result_from_dict(scenario)
        elif report.failed and report.when not in ("setup", "call", "teardown"):  # xdist: a crashed worker
            gateway = getattr(getattr(report, "node", None), "gateway", None)
            self._lost(report.nodeid, str(report.longrepr), worker=getattr(gateway, "id", None))

    def pytest_testnodedown(self, node: Any, error: object | None) -> None:
        said = getattr(node, "workeroutput", {}).get(NOTES_KEY)
        if said:
            self.notes[str(node.gateway.id)] = list(said)
        if error is not None:
            text = str(error).strip()
            self.died[str(node.gateway.id)] = text.splitlines()[-1] if text else "died"

    def _lost(self, nodeid: str, why: str, worker: str | None = None) -> None:
        label = self.selected.get(nodeid, nodeid)
        feature, sep, scenario = label.partition(": ")
        result = self.results[nodeid] = ScenarioResult(
            nodeid=nodeid,
            feature=feature if sep else "",
            scenario=scenario if sep else label,
            requirements=self._requirements.get(nodeid, []),
            outcome=FAILED,
            reason=f"lost: {why}",
        )
        if worker is not None:
            result.ran_on["worker"] = str(worker)

    def finish(self) -> None:
        """After the run: scenarios a dead worker took along fail; records in the serial order."""
        if self.died:
            why = "; ".join(f"worker {worker} died ({error})" for worker, error in sorted(self.died.items()))
            for nodeid in self.selected:
                if nodeid not in self.results:
                    self._lost(nodeid, f"never run: {why}")
        order = {nodeid: index for index, nodeid in enumerate(self.selected)}
        last = len(order)
        self.results = dict(sorted(self.results.items(), key=lambda kv: (order.get(kv[0], last), kv[0])))
        first_seen = {r.feature_uri: order.get(r.nodeid, last) for r in reversed(self.results.values())}
        self.features = dict(sorted(self.features.items(), key=lambda kv: first_seen.get(kv[0], last)))


def order_testcases(path: Path, nodeids: list[str]) -> None:
    """Put junit.xml's testcases in the serial run's order (xdist writes them as they finish)."""
    rank = {junit_address(nodeid): index for index, nodeid in enumerate(nodeids)}
    xml = JUnitXml.fromfile(str(path))
    suites: list[TestSuite] = [xml] if isinstance(xml, TestSuite) else list(xml)
    for suite in suites:
        cases = list(suite)
        for case in cases:
            suite.remove(case)  # type: ignore[no-untyped-call]  # junitparser: unannotated
        cases.sort(key=lambda case: rank.get((case.classname or "", case.name or ""), len(rank)))
        suite.extend(cases)  # type: ignore[no-untyped-call]
    xml.write(str(path))
