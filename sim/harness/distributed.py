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

Several LPARs (``--libvirt-uri`` given more than once): worker ``gw<k>`` is bound to the
(k mod n)-th LPAR (:func:`bound_lpar`). A scenario tagged ``@each-lpar`` (it judges the LPAR itself)
is parametrized by LPAR at collection (node ids ending in ``[lpar1]``, ``[lpar2]``, ...), and
:class:`LparScheduling`, xdist's ``load`` scheduling otherwise unchanged, gives each such instance
only to a worker bound to its LPAR. Each worker's per-LPAR identity facts go back with its
``workeroutput`` (:data:`FACTS_KEY`); :func:`lpar_identities` puts them together per LPAR.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pytest
from junitparser import JUnitXml, TestSuite
from xdist.remote import Producer
from xdist.scheduler import LoadScheduling
from xdist.workermanage import WorkerController

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
#: The workeroutput key of a worker's LPAR and its per-LPAR facts: {"lpar": uri, "facts": {...}}.
FACTS_KEY = "peerpods_lpar_facts"
#: A worker's target's per-LPAR facts, taken at the end of its session, before the target closes.
FACTS_STASH = pytest.StashKey[tuple[str, dict[str, str]]]()
#: The tag of a scenario that judges the LPAR itself: with several LPARs it runs once on each.
EACH_LPAR = "each-lpar"


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


def worker_number(worker: str | None) -> int:
    """An xdist worker's number (gw3: 3); 0 on the controller or in a serial run."""
    number = (worker or "").removeprefix("gw")
    return int(number) if number.isdigit() else 0


def bound_lpar(worker: str | None, lpars: Sequence[str]) -> str:
    """The LPAR a worker is bound to among several: ``gw<k>`` to the (k mod n)-th ``--libvirt-uri``."""
    return lpars[worker_number(worker) % len(lpars)]


def lpar_param_id(index: int) -> str:
    """The parameter id of an ``@each-lpar`` scenario's instance for the ``index``-th LPAR (lpar1, ...)."""
    return f"lpar{index + 1}"


def pinned_lpar(nodeid: str, lpars: Sequence[str]) -> str | None:
    """The LPAR an ``@each-lpar`` scenario's instance is for, read from its node id (its last
    parameter id, see :func:`lpar_param_id`); None for every other scenario."""
    if not nodeid.endswith("]") or "[" not in nodeid:
        return None
    last = nodeid[nodeid.rindex("[") + 1 : -1].rsplit("-", 1)[-1]
    return next((uri for index, uri in enumerate(lpars) if last == lpar_param_id(index)), None)


class LparScheduling(LoadScheduling):  # type: ignore[misc]  # pytest-xdist: untyped
    """xdist's ``load`` scheduling, except that an ``@each-lpar`` scenario's instance goes only to a
    worker bound to its LPAR. The rest (chunks, rescheduling, a dead worker's items) is xdist's."""

    def __init__(self, config: pytest.Config, log: Producer | None, lpars: Sequence[str]) -> None:
        super().__init__(config, log)
        self.lpars = list(lpars)
        self._pins: dict[int, str] | None = None

    def pin(self, index: int) -> str | None:
        """The LPAR the collection's ``index``-th item must run on, or None (any worker)."""
        if self._pins is None:
            assert self.collection is not None
            found = ((i, pinned_lpar(nodeid, self.lpars)) for i, nodeid in enumerate(self.collection))
            self._pins = {i: uri for i, uri in found if uri is not None}
        return self._pins.get(index)

    def _may_take(self, node: WorkerController) -> list[int]:
        """The pending items ``node`` may run: any but another LPAR's instances."""
        mine = bound_lpar(str(node.gateway.id), self.lpars)
        return [index for index in self.pending if self.pin(index) in (None, mine)]

    def _give(self, node: WorkerController, num: int) -> None:
        chosen = [] if node.shutting_down else self._may_take(node)[:num]
        if chosen:
            taken = set(chosen)
            self.pending[:] = [index for index in self.pending if index not in taken]
            self.node2pending[node].extend(chosen)
            node.send_runtest_some(chosen)

    def _send_tests(self, node: WorkerController, num: int) -> None:
        self._give(node, num)
        self._settle()

    def schedule(self) -> None:
        super().schedule()
        self._settle()

    def remove_node(self, node: WorkerController) -> str | None:
        """A worker that went down: an instance for an LPAR no worker can take any more is not run
        (the controller reports it lost, naming the dead worker)."""
        crashed: str | None = super().remove_node(node)
        if self.collection is not None:
            takers = {bound_lpar(str(n.gateway.id), self.lpars) for n in self.nodes if not n.shutting_down}
            self.pending[:] = [index for index in self.pending if self.pin(index) in (None, *takers)]
            self._settle()
        return crashed

    def _settle(self) -> None:
        """Each worker holds two items (an xdist worker runs one only when it holds the next), or is
        told to finish what it holds when none of the pending items is for it: only a dead worker's
        items come back to the queue, and those go to a worker of their LPAR that is still taking."""
        if self.collection is None:
            return
        for node in self.nodes:
            if node.shutting_down or node not in self.node2collection:  # a restarted worker still collecting
                continue
            if not self._may_take(node):
                node.shutdown()
            elif len(self.node2pending[node]) < 2:
                self._give(node, 2 - len(self.node2pending[node]))


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
        """After the target closed: its notes (boots per LPAR) and its LPAR's facts go back with
        the worker's output."""
        workeroutput: dict[str, Any] | None = getattr(session.config, "workeroutput", None)
        if workeroutput is not None:
            workeroutput[NOTES_KEY] = list(bootconcurrency.NOTES)
            stashed = session.config.stash.get(FACTS_STASH, None)
            if stashed is not None:
                uri, facts = stashed
                workeroutput[FACTS_KEY] = {"lpar": uri, "facts": dict(facts)}


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
    #: With several LPARs: worker id -> its LPAR and that LPAR's facts (see :data:`FACTS_KEY`).
    lpar_facts: dict[str, dict[str, Any]] = field(default_factory=dict)
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
        output = getattr(node, "workeroutput", {})
        said = output.get(NOTES_KEY)
        if said:
            self.notes[str(node.gateway.id)] = list(said)
        if output.get(FACTS_KEY):
            self.lpar_facts[str(node.gateway.id)] = dict(output[FACTS_KEY])
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


def lpar_identities(
    lpars: Sequence[str], reported: Mapping[str, Mapping[str, Any]]
) -> dict[str, dict[str, str]]:
    """Each LPAR's facts, as the workers bound to it reported them (``reported``: worker id ->
    {"lpar", "facts"}), in ``--libvirt-uri`` order. A fact on which that LPAR's workers differ
    (each its own boot concurrency) names each worker's value; an LPAR none of whose workers
    reported (none ran a scenario there and finished) says so."""
    identities: dict[str, dict[str, str]] = {}
    in_order = sorted(reported.items(), key=lambda kv: worker_number(kv[0]))
    for uri in lpars:
        mine = {worker: said["facts"] for worker, said in in_order if said["lpar"] == uri}
        if not mine:
            identities[uri] = {
                "facts": "not reported: no worker bound to this LPAR ran a scenario there and finished"
            }
            continue
        facts: dict[str, str] = {}
        for key in dict.fromkeys(k for said in mine.values() for k in said):
            values = {w: str(said[key]) for w, said in mine.items() if key in said}
            distinct = set(values.values())
            each = "; ".join(f"{w}: {v}" for w, v in values.items())
            facts[key] = distinct.pop() if len(distinct) == 1 else each
        identities[uri] = facts
    return identities


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
