"""The controller's side of ``run --workers``: the worker count, and a serial run's records
rebuilt from what the workers' reports carried (order, features, scenarios lost with a worker)."""

from __future__ import annotations

import argparse
import os
from types import SimpleNamespace
from typing import Any

import pytest

from sim.harness.distributed import (
    COLLECTION_ATTR,
    FEATURE_ATTR,
    SCENARIO_ATTR,
    ControllerRecorder,
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
