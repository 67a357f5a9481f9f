"""A pytest plugin for tests of a late interrupt: the session's end waits 3 seconds, saying so first."""

from __future__ import annotations

import sys
import time


def pytest_sessionfinish() -> None:
    print("slow_finish: waiting", file=sys.stderr, flush=True)
    time.sleep(3)
