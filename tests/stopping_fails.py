"""A pytest plugin for tests of an interrupted run whose clean-up fails: each scenario waits half
a second first, and the session's end raises a TargetError, as a target's teardown does when an
interrupted scenario left pod VM resources (it removes them, then says so)."""

from __future__ import annotations

import time

from sim.errors import TargetError


def pytest_bdd_before_scenario() -> None:
    time.sleep(0.5)


def pytest_sessionfinish() -> None:
    raise TargetError("pod VM resources left behind after the scenario (now removed): domain podvm-x")
