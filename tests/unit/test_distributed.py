"""The controller's side of ``run --workers``: the worker count, a serial run's records
rebuilt from what the workers' reports carried (order, features, scenarios lost with a worker),
and several LPARs: each ``@each-lpar`` instance scheduled to its LPAR's workers, each LPAR's facts."""

from __future__ import annotations

import argparse
import os
from types import SimpleNamespace
from typing import Any

import pytest

from sim.harness.distributed import (
    COLLECTION_ATTR,
    FACTS_KEY,
    FEATURE_ATTR,
    SCENARIO_ATTR,
    ControllerRecorder,
    LparScheduling,
    bound_lpar,
    lpar_identities,
    pinned_lpar,
    worker_count,
)
from sim.harness.report.results import FAILED, PASSED, ScenarioResult


def test_auto_is_one_worker_per_core() -> None:
    assert worker_count("auto") == (os.cpu_count() or 1)
    assert worker_count("3") == 3


@pytest.mark.parametrize("text", ["0", "-2", "two", "1.5", ""])
def test_a_bad_count_is_refused(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        worker_count(text)


def report(nodeid: str, when: str, **attrs: Any) -> Any:
    return SimpleNamespace(nodeid=nodeid, when=when, failed=when == "???", longrepr="", **attrs)


def scenario(nodeid: str, uri: str) -> dict[str, Any]:
    record = ScenarioResult(nodeid, f"feature {uri}", nodeid, ["WH-001"], outcome=PASSED, feature_uri=uri)
    return record.to_dict()


def feature(uri: str) -> dict[str, Any]:
    return {
        "uri": uri,
        "keyword": "Feature",
        "name": uri,
        "line": 1,
        "description": "",
        "language": "en",
        "tags": [],
    }


def test_records_come_back_in_the_serial_order_and_a_lost_scenario_fails() -> None:
    selected = [{"nodeid": n, "label": f"f: {n}", "requirements": ["WH-001"]} for n in ("a", "b", "c", "d")]
    recorder = ControllerRecorder()
    recorder.pytest_runtest_logreport(
        report(
            "c",
            "teardown",
            **{
                COLLECTION_ATTR: {"selected": selected, "deselected": {"x": "f: x"}},
                SCENARIO_ATTR: scenario("c", "two.feature"),
                FEATURE_ATTR: feature("two.feature"),
            },
        )
    )
    recorder.pytest_runtest_logreport(report("c", "call"))  # a report without a record changes nothing
    recorder.pytest_runtest_logreport(
        report(
            "a",
            "teardown",
            **{SCENARIO_ATTR: scenario("a", "one.feature"), FEATURE_ATTR: feature("one.feature")},
        )
    )
    crashed = report("b", "???", node=SimpleNamespace(gateway=SimpleNamespace(id="gw1")))
    crashed.longrepr = "worker 'gw1' crashed while running 'b'"
    recorder.pytest_runtest_logreport(crashed)
    recorder.pytest_testnodedown(SimpleNamespace(gateway=SimpleNamespace(id="gw1"), workeroutput={}), "boom")
    recorder.finish()
    assert list(recorder.results) == ["a", "b", "c", "d"]
    assert list(recorder.features) == ["one.feature", "two.feature"]
    lost = recorder.results["b"]
    assert (lost.outcome, lost.requirements, lost.ran_on["worker"]) == (FAILED, ["WH-001"], "gw1")
    assert lost.reason == "lost: worker 'gw1' crashed while running 'b'"
    never = recorder.results["d"]
    assert never.outcome == FAILED and never.reason == "lost: never run: worker gw1 died (boom)"
    assert recorder.deselected == {"x": "f: x"} and recorder.not_run() == {"x": "f: x"}


LPARS = ["test:///default", "qemu+ssh://lpar2/system"]


def test_a_worker_is_bound_round_robin_and_an_instance_names_its_lpar_by_its_last_id() -> None:
    assert [bound_lpar(w, LPARS) for w in ("gw0", "gw1", "gw2", None)] == [*LPARS, LPARS[0], LPARS[0]]
    assert pinned_lpar("steps/t.py::test_x[lpar2]", LPARS) == LPARS[1]
    assert pinned_lpar("steps/t.py::test_x[a-b-lpar1]", LPARS) == LPARS[0]
    for plain in ("steps/t.py::test_x", "steps/t.py::test_x[lpar3]", "steps/t.py::test_x[xlpar1]"):
        assert pinned_lpar(plain, LPARS) is None


class FakeNode:
    """A worker as xdist's scheduler sees it; like a real one it runs an item only when it holds a
    second one, or has been told to shut down (pytest needs the next item for teardown)."""

    def __init__(self, worker: str) -> None:
        self.gateway = SimpleNamespace(id=worker)
        self.shutting_down = False
        self.queue: list[int] = []
        self.ran: list[int] = []

    def send_runtest_some(self, indices: list[int]) -> None:
        self.queue.extend(indices)

    def shutdown(self) -> None:
        self.shutting_down = True


def xdist_config(workers: int) -> Any:
    """What xdist's load scheduling reads of pytest's config: the workers (--tx), --maxschedchunk."""
    return SimpleNamespace(getvalue=lambda name: [f"{workers}*popen"], getoption=lambda name: None)


def schedule_and_run(collection: list[str], workers: int) -> list[FakeNode]:
    sched = LparScheduling(xdist_config(workers), None, LPARS)
    nodes = [FakeNode(f"gw{i}") for i in range(workers)]
    for node in nodes:
        sched.add_node(node)
        sched.add_node_collection(node, collection)
    sched.schedule()
    progressed = True
    while progressed:
        progressed = False
        for node in nodes:
            if node.queue and (len(node.queue) >= 2 or node.shutting_down):
                index = node.queue.pop(0)
                node.ran.append(index)
                sched.mark_test_complete(node, index)
                progressed = True
    assert sched.tests_finished and not sched.has_pending, "the run stalled"
    assert all(node.shutting_down for node in nodes)
    return nodes


@pytest.mark.parametrize("workers", [2, 3, 4])
@pytest.mark.parametrize("plain_items", [0, 1, 5, 40])
def test_each_lpar_instance_runs_on_a_worker_of_its_lpar_and_every_item_runs_once(
    workers: int, plain_items: int
) -> None:
    pinned = [f"f.py::test_lpar[lpar{i + 1}]" for i in range(len(LPARS))]
    collection = [*pinned, *(f"f.py::test_{n}" for n in range(plain_items)), "f.py::test_z[lpar2]"]
    nodes = schedule_and_run(collection, workers)
    ran = sorted(index for node in nodes for index in node.ran)
    assert ran == list(range(len(collection)))
    for node in nodes:
        lpar = bound_lpar(str(node.gateway.id), LPARS)
        for index in node.ran:
            assert pinned_lpar(collection[index], LPARS) in (None, lpar), (node.gateway.id, collection[index])


def test_an_instance_whose_lpar_lost_its_last_worker_is_dropped_not_waited_for() -> None:
    collection = ["f.py::test_lpar[lpar1]", "f.py::test_lpar[lpar2]", *(f"f.py::test_{n}" for n in range(8))]
    sched = LparScheduling(xdist_config(2), None, LPARS)
    nodes = [FakeNode("gw0"), FakeNode("gw1")]
    for node in nodes:
        sched.add_node(node)
        sched.add_node_collection(node, collection)
    sched.collection = collection  # scheduled: the LPAR 2 instance still waits, with two others
    sched.pending[:] = [1, 2, 3]
    sched.remove_node(nodes[1])  # gw1, LPAR 2's only worker, dies
    assert 1 not in sched.pending and 1 not in nodes[0].queue


def test_each_lpar_has_its_own_facts_and_its_workers_differences_are_named() -> None:
    recorder = ControllerRecorder()
    said = {
        "gw0": {"libvirt URI": LPARS[0], "KVM host": "x86_64", "boot concurrency": "2 at once: cores"},
        "gw2": {"libvirt URI": LPARS[0], "KVM host": "x86_64", "boot concurrency": "1 at once: measured"},
        "gw1": {"libvirt URI": LPARS[1], "KVM host": "s390x"},
    }
    for worker, facts in said.items():
        output = {FACTS_KEY: {"lpar": bound_lpar(worker, LPARS), "facts": facts}}
        node = SimpleNamespace(gateway=SimpleNamespace(id=worker), workeroutput=output)
        recorder.pytest_testnodedown(node, None)
    identities = lpar_identities([*LPARS, "test:///never.xml"], recorder.lpar_facts)
    assert list(identities) == [*LPARS, "test:///never.xml"]
    assert identities[LPARS[0]] == {
        "libvirt URI": LPARS[0],
        "KVM host": "x86_64",
        "boot concurrency": "gw0: 2 at once: cores; gw2: 1 at once: measured",
    }
    assert identities[LPARS[1]] == {"libvirt URI": LPARS[1], "KVM host": "s390x"}
    assert identities["test:///never.xml"]["facts"].startswith("not reported")
