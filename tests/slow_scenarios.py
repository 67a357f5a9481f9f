"""A pytest plugin for tests of an interrupted run: each scenario waits half a second first."""

from __future__ import annotations

import time


def pytest_bdd_before_scenario() -> None:
    time.sleep(0.5)
